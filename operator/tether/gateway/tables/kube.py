"""Table documents from ConfigMaps: list + watch through the Kubernetes API (aiohttp).

Protocol: ``GET /api/v1/namespaces/<ns>/configmaps?labelSelector=tether.dev/table=v1`` gives
the items and a resourceVersion; ``...&watch=1&resourceVersion=<rv>&allowWatchBookmarks=true``
then streams one JSON event per line. Invariants:
- After every (re)list the store holds exactly the listed ConfigMaps (deleted ones vanish).
- A watch that ends or breaks resumes from the last resourceVersion seen; ``410 Gone`` (as
  HTTP status or as an ERROR event) forces a relist. Network errors back off exponentially
  (0.5 s doubling to 30 s, with jitter) and never stop the loop.
- ``on_loaded`` is called once, after the first complete list was applied.
Credentials come from ``$KUBECONFIG`` (or ~/.kube/config) or the in-cluster ServiceAccount,
loaded with ``kubernetes.config`` only; all API traffic is this module's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from tether.models.table import DATA_KEY, TABLE_LABEL, TABLE_LABEL_VALUE

from ..metrics import TableSync
from .store import TableStore

log = logging.getLogger("tether.gateway.tables")

WATCH_TIMEOUT_SECONDS = 300


@dataclass
class ApiCredentials:
    """Where the API server is and how to authenticate to it."""

    host: str
    ssl_context: ssl.SSLContext | bool | None = None
    token: Callable[[], str | None] = lambda: None


def load_credentials() -> ApiCredentials:
    """KUBECONFIG (or ~/.kube/config) if present, else the in-cluster ServiceAccount."""
    from kubernetes import client as kclient
    from kubernetes import config as kconfig

    cfg = kclient.Configuration()
    kubeconfig = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if os.path.exists(kubeconfig.split(os.pathsep)[0]):
        kconfig.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    else:
        kconfig.load_incluster_config(client_configuration=cfg)
    if cfg.host.startswith("https"):
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        if not cfg.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    else:
        ctx = None

    def token() -> str | None:
        if cfg.refresh_api_key_hook is not None:
            cfg.refresh_api_key_hook(cfg)  # in-cluster: re-reads the rotated token file
        # kubernetes>=3x stores the bearer token under "BearerToken"; older ones "authorization".
        for name in ("BearerToken", "authorization"):
            value = cfg.get_api_key_with_prefix(name)
            if value:
                return value if " " in value else f"Bearer {value}"
        return None

    return ApiCredentials(host=cfg.host.rstrip("/"), ssl_context=ctx, token=token)


class _Gone(Exception):
    """The resourceVersion is too old: relist."""


class ConfigMapWatcher:
    """Keeps a TableStore equal to the labelled ConfigMaps of one namespace."""

    def __init__(
        self,
        creds: ApiCredentials,
        namespace: str,
        store: TableStore,
        on_loaded: Callable[[], None],
        *,
        max_backoff: float = 30.0,
        sync: TableSync | None = None,
    ) -> None:
        self.creds = creds
        self.namespace = namespace
        self.store = store
        self.on_loaded = on_loaded
        self.max_backoff = max_backoff
        self.loaded = False
        self.sync = sync or TableSync()
        selector = quote(f"{TABLE_LABEL}={TABLE_LABEL_VALUE}", safe="")
        self.url = f"{creds.host}/api/v1/namespaces/{namespace}/configmaps?labelSelector={selector}"

    def _headers(self) -> dict[str, str]:
        token = self.creds.token()
        return {"Authorization": token} if token else {}

    async def run(self) -> None:
        """List, then watch, forever (see module docstring)."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(
            total=None, connect=10, sock_read=WATCH_TIMEOUT_SECONDS + 30
        )
        async with aiohttp.ClientSession(timeout=timeout) as session:
            rv: str | None = None
            backoff = 0.5
            while True:
                try:
                    if rv is None:
                        rv = await self._list(session)
                    rv = await self._watch(session, rv)
                    backoff = 0.5
                except _Gone:
                    log.info("watch resourceVersion expired; relisting")
                    self.sync.lost("gone")
                    rv = None
                except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                    if self.sync.synced:  # it worked until now: the back-off starts over
                        backoff = 0.5
                    self.sync.lost("error")
                    log.warning("table watch error (%s); retrying in %.1fs", exc, backoff)
                    await asyncio.sleep(backoff * (0.8 + 0.4 * random.random()))
                    backoff = min(backoff * 2, self.max_backoff)

    async def _list(self, session) -> str:
        async with session.get(self.url, headers=self._headers(), ssl=self.creds.ssl_context) as r:
            if r.status != 200:
                raise ValueError(f"list configmaps: HTTP {r.status}: {(await r.text())[:200]}")
            body = await r.json()
        entries = {
            item["metadata"]["name"]: (item.get("data") or {}).get(DATA_KEY)
            for item in body.get("items") or []
        }
        self.store.replace_all(entries)
        self.store.publish(force=not self.loaded)
        self.sync.listed()
        if not self.loaded:
            self.loaded = True
            self.on_loaded()
        return body["metadata"]["resourceVersion"]

    async def _watch(self, session, rv: str) -> str:
        url = (
            f"{self.url}&watch=1&allowWatchBookmarks=true&resourceVersion={rv}"
            f"&timeoutSeconds={WATCH_TIMEOUT_SECONDS}"
        )
        async with session.get(url, headers=self._headers(), ssl=self.creds.ssl_context) as r:
            if r.status == 410:
                raise _Gone()
            if r.status != 200:
                raise ValueError(f"watch configmaps: HTTP {r.status}: {(await r.text())[:200]}")
            self.sync.event()
            async for line in r.content:
                if not line.strip():
                    continue
                rv = self._event(json.loads(line)) or rv
                self.sync.event()
        return rv

    def _event(self, event: dict) -> str | None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone()
            raise ValueError(f"watch error event: {obj.get('message')}")
        meta = obj.get("metadata") or {}
        if kind in ("ADDED", "MODIFIED"):
            self.store.apply(meta["name"], (obj.get("data") or {}).get(DATA_KEY))
        elif kind == "DELETED":
            self.store.remove(meta["name"])
        self.store.publish()
        return meta.get("resourceVersion")
