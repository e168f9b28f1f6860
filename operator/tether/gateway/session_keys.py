"""The gateway's session-signing key ring: the last good one, from a Secret or a file.

Sources (``--session-keys-secret``, default ``tether-session-keys`` in the tables namespace;
``--session-keys-file`` for use outside Kubernetes and in tests):

- the Secret is watched alone (``fieldSelector=metadata.name=NAME``, so the gateway's Role
  names it in ``resourceNames``: get/list/watch on that one Secret, nothing else), with the
  table watcher's loop (resume, relist on 410, back off);
- the file is re-read every ``--poll-interval`` when its size or mtime changed.

Invariants: a ring is adopted only if ``models.session_keys.loads_keyring`` accepts it;
anything else (bad JSON, short secrets, duplicate ids, the Secret deleted or its key missing)
keeps the last good ring, logged and counted (``tether_gateway_session_keyring_loads_total
{result="error"}``). ``on_loaded`` is called once, after the first complete pass, found or
not: a gateway without keys still routes (signed values cannot be issued or honoured until
a ring arrives; they fall back to the soft policy). Secrets never reach a log line.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
from collections.abc import Callable
from urllib.parse import quote

from tether.hashing.session import KeyRing, to_keyring
from tether.models.session_keys import SECRET_KEY, KeyRingError, loads_keyring

log = logging.getLogger("tether.gateway")


class SessionKeys:
    """The key ring in use and how it got there (see module docstring)."""

    __slots__ = ("loads", "on_change", "ring", "version")

    def __init__(self, loads: dict[str, int] | None = None) -> None:
        self.ring: KeyRing | None = None
        self.version = 0
        self.loads = loads if loads is not None else {}
        self.on_change: Callable[[KeyRing], None] = lambda ring: None

    def _count(self, result: str) -> None:
        self.loads[result] = self.loads.get(result, 0) + 1

    def load(self, text: str | bytes) -> bool:
        """Adopt ``keyring.json``; False (the last good ring kept) when it is not usable."""
        try:
            ring = to_keyring(loads_keyring(text))
        except (KeyRingError, ValueError) as exc:
            self.error("session key ring", str(exc).splitlines()[0])
            return False
        self.ring = ring
        self.version += 1
        self._count("ok")
        log.info("session keys: %d key(s) loaded (%s)", len(ring.keys),
                 ", ".join(k.id for k in ring.keys))  # fmt: skip
        self.on_change(ring)
        return True

    def error(self, name: str, why: str) -> None:
        """A source could not give a usable ring: keep the last good one."""
        self._count("error")
        log.error("%s rejected, keeping the last good key ring: %s", name, why)

    def remove(self, name: str) -> None:
        """The Secret is gone: keep the ring (the operator re-creates it; values stay valid)."""
        log.warning("Secret %s deleted; keeping the last good session key ring", name)

    def put(self, name: str, obj: dict) -> None:
        """A Secret (list item or watch object) with ``keyring.json``."""
        raw = (obj.get("data") or {}).get(SECRET_KEY)
        if not isinstance(raw, str):
            self.error(f"Secret {name}", f"no {SECRET_KEY} key")
            return
        try:
            text = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            self.error(f"Secret {name}", f"{SECRET_KEY} is not base64")
            return
        self.load(text)


def secret_watcher(creds, namespace: str, name: str, keys: SessionKeys, on_loaded):
    """A watcher of the single key Secret ``name`` (the TLS Secret watcher's loop)."""
    from .tls.sources import SecretWatcher

    class KeySecretWatcher(SecretWatcher):
        def _secret(self, secret_name: str, obj: dict) -> None:
            self.names.add(secret_name)
            keys.put(secret_name, obj)

        async def _loaded(self, job: int) -> None:
            """Nothing to publish: ``_list`` reports the first pass itself."""

    query = "fieldSelector=" + quote(f"metadata.name={name}", safe="")
    return KeySecretWatcher(creds, namespace, query, keys, on_loaded)


async def watch_key_file(
    path: str, keys: SessionKeys, interval: float, on_loaded: Callable[[], None]
) -> None:
    """Poll ``path`` forever; ``on_loaded`` after the first pass (file present or not)."""
    stamp = None
    first = True
    while True:
        try:
            st = os.stat(path)
            now = (st.st_ino, st.st_mtime_ns, st.st_size)
            if now != stamp:
                stamp = now
                data = await asyncio.to_thread(_read, path)
                keys.load(data)
        except OSError as exc:
            if stamp is not None or first:
                keys.error(path, exc.strerror or str(exc))
            stamp = None
        if first:
            first = False
            on_loaded()
        await asyncio.sleep(interval)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(1 << 20)
