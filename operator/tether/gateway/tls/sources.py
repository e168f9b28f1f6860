"""Where the TLS listener's certificates come from: a directory, or ``kubernetes.io/tls`` Secrets.

- Directory (``--tls-dir``, for use outside Kubernetes and for tests): pairs ``NAME.crt`` +
  ``NAME.key``, and ``NAME/tls.crt`` + ``NAME/tls.key`` (a Secret mounted as a volume). It is
  re-scanned every ``--poll-interval``; a pair is re-read when either file changed, with the
  table directory's rules (regular files only, at most ``MAX_PEM_BYTES``, in a worker thread).
- Secrets in ``--tls-namespace``: ``--tls-secrets a,b`` watches each named Secret alone
  (``fieldSelector=metadata.name=NAME``, so a Role can grant exactly those names), or
  ``--tls-secret-selector`` watches the Secrets with those labels. Only ``kubernetes.io/tls``
  Secrets are served, from their ``tls.crt`` and ``tls.key``.
Both call ``on_loaded`` once, after the first complete pass (whatever it found), and then apply
every change as it is seen: new handshakes use it, open connections keep theirs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..tables.directory import Skipped, read_table_file
from ..tables.kube import ApiCredentials, ConfigMapWatcher
from .certs import CertStore

if TYPE_CHECKING:
    from ..config import TLSConfig

log = logging.getLogger("tether.gateway.tls")

MAX_PEM_BYTES = 1 << 20
TLS_SECRET_TYPE = "kubernetes.io/tls"


def _pairs(root: str) -> dict[str, tuple[str, str]]:
    """Certificate name -> (cert path, key path) found in the directory ``root``."""
    out = {}
    for entry in sorted(os.listdir(root)):
        if entry.startswith("."):  # a mounted volume's ..data and timestamped directories
            continue
        full = os.path.join(root, entry)
        if entry.endswith(".crt"):
            key = full[:-4] + ".key"
            if os.path.exists(key):
                out[entry[:-4]] = (full, key)
        elif os.path.isdir(full):
            crt, key = os.path.join(full, "tls.crt"), os.path.join(full, "tls.key")
            if os.path.exists(crt) and os.path.exists(key):
                out[entry] = (crt, key)
    return out


def scan_pairs(path: str, seen: dict, skipped: dict) -> tuple[list[str], dict] | None:
    """One pass over ``path`` (blocking: run it in a thread): (names gone, {name: (cert, key)}).

    ``seen`` holds the stamps of the pairs read so far and is updated. None when the directory
    cannot be listed.
    """
    try:
        root = os.path.realpath(path)
        pairs = _pairs(root)
    except OSError as exc:
        log.warning("cannot list certificate directory %s: %s", path, exc)
        return None
    gone = [n for n in seen if n not in pairs]
    for name in gone:
        del seen[name]
    changed = {}
    for name, (crt, key) in pairs.items():
        try:
            stamp = tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in map(os.stat, (crt, key)))
            if seen.get(name) == stamp:
                continue
            (_, cert_pem), (_, key_pem) = (read_table_file(p, root, MAX_PEM_BYTES)
                                           for p in (crt, key))  # fmt: skip
        except (Skipped, OSError) as exc:
            if skipped.get(name) != str(exc):
                log.warning("certificate %s skipped: %s", name, exc)
            skipped[name] = str(exc)
            continue
        skipped.pop(name, None)
        seen[name] = stamp
        changed[name] = (cert_pem, key_pem)
    return gone, changed


def _apply(store: CertStore, gone: list[str], changed: dict) -> None:
    for name in gone:
        store.remove(name)
    for name, (cert_pem, key_pem) in changed.items():
        store.put(name, cert_pem, key_pem)


async def watch_cert_dir(
    path: str, store: CertStore, interval: float, on_loaded: Callable[[], None]
) -> None:
    """Poll ``path`` forever (module docstring); ``on_loaded`` after the first readable pass."""
    seen: dict = {}
    skipped: dict = {}
    while (result := await asyncio.to_thread(scan_pairs, path, seen, skipped)) is None:
        await asyncio.sleep(interval)
    _apply(store, *result)
    on_loaded()
    while True:
        await asyncio.sleep(interval)
        result = await asyncio.to_thread(scan_pairs, path, seen, skipped)
        if result is not None:
            _apply(store, *result)


class SecretWatcher(ConfigMapWatcher):
    """Keeps ``store`` equal to the TLS Secrets one query selects: list, then watch (the
    table watcher's loop: resume from the last resourceVersion, relist on 410, back off)."""

    def __init__(
        self,
        creds: ApiCredentials,
        namespace: str,
        query: str,
        store: CertStore,
        on_loaded: Callable[[], None],
    ) -> None:
        super().__init__(creds, namespace, None, on_loaded)  # type: ignore[arg-type]
        self.url = f"{creds.host}/api/v1/namespaces/{namespace}/secrets?{query}"
        self.certs = store
        self.names: set[str] = set()  # the Secrets this query gave

    @classmethod
    def named(cls, creds, namespace: str, name: str, store, on_loaded) -> SecretWatcher:
        """A watcher of the single Secret ``name``."""
        query = "fieldSelector=" + quote(f"metadata.name={name}", safe="")
        return cls(creds, namespace, query, store, on_loaded)

    @classmethod
    def selected(cls, creds, namespace: str, selector: str, store, on_loaded) -> SecretWatcher:
        """A watcher of the Secrets matching a label selector."""
        return cls(creds, namespace, "labelSelector=" + quote(selector, safe=""), store, on_loaded)

    async def _list(self, session) -> str:
        async with session.get(self.url, headers=self._headers(), ssl=self.creds.ssl_context) as r:
            if r.status != 200:
                raise ValueError(f"list secrets: HTTP {r.status}: {(await r.text())[:200]}")
            body = await r.json()
        listed = {item["metadata"]["name"]: item for item in body.get("items") or []}
        for name in self.names - listed.keys():
            self.certs.remove(name)
        self.names = set()
        for name, item in listed.items():
            self._secret(name, item)
        if not self.loaded:
            self.loaded = True
            self.on_loaded()
        return body["metadata"]["resourceVersion"]

    def _event(self, event: dict) -> str | None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            return super()._event(event)  # raises: relist on 410, else retry
        meta = obj.get("metadata") or {}
        if kind in ("ADDED", "MODIFIED"):
            self._secret(meta["name"], obj)
        elif kind == "DELETED":
            self.names.discard(meta["name"])
            self.certs.remove(meta["name"])
        return meta.get("resourceVersion")

    def _secret(self, name: str, obj: dict) -> None:
        self.names.add(name)
        if obj.get("type") != TLS_SECRET_TYPE:
            self.certs.error(name, f"Secret type {obj.get('type')!r}, not {TLS_SECRET_TYPE}")
            return
        data = obj.get("data") or {}
        try:
            cert_pem = base64.b64decode(data.get("tls.crt", ""), validate=True)
            key_pem = base64.b64decode(data.get("tls.key", ""), validate=True)
        except (binascii.Error, ValueError):
            self.certs.error(name, "tls.crt or tls.key is not base64")
            return
        self.certs.put(name, cert_pem, key_pem)


async def watch_certificates(
    tls: TLSConfig, store: CertStore, interval: float, on_loaded: Callable[[], None]
) -> None:
    """Run the configured certificate source forever; ``on_loaded`` once every part of it
    completed its first pass."""
    if tls.cert_dir:
        await watch_cert_dir(tls.cert_dir, store, interval, on_loaded)
        return
    from ..tables.kube import load_credentials

    creds = await asyncio.get_running_loop().run_in_executor(None, load_credentials)
    if tls.secret_selector:
        watchers = [SecretWatcher.selected(creds, tls.namespace, tls.secret_selector, store,
                                           on_loaded)]  # fmt: skip
    else:
        pending = set(tls.secrets)

        def loaded(name: str) -> None:
            pending.discard(name)
            if not pending:
                on_loaded()

        watchers = [
            SecretWatcher.named(creds, tls.namespace, name, store, lambda n=name: loaded(n))
            for name in tls.secrets
        ]
    await asyncio.gather(*(w.run() for w in watchers))
