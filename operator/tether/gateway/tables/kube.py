"""Table documents from ConfigMaps: list + watch through the Kubernetes API (aiohttp).

Protocol: ``GET /api/v1/namespaces/<ns>/configmaps?labelSelector=tether.dev/table=v1&limit=L``
gives the items page by page (``continue``) and a resourceVersion;
``...&watch=1&resourceVersion=<rv>&allowWatchBookmarks=true`` then streams one JSON event per
line. Invariants:
- Pages are sized to about ``PAGE_BYTES`` (the limit follows the bytes per item seen), so no
  single parse holds the GIL for long, and pages are parsed and applied in the table worker
  thread (``worker``), in order with the watch events that follow them. A watch event is one
  ConfigMap (at most 1 MiB), parsed on the loop; its table is built in the worker.
- After every (re)list the store holds exactly the listed ConfigMaps (deleted ones vanish).
- A watch that ends or breaks resumes from the last resourceVersion seen; ``410 Gone`` (as
  HTTP status, as an ERROR event, or for an expired ``continue``) forces a relist. Network
  errors back off exponentially (0.5 s doubling to 30 s, with jitter) and never stop the loop;
  any other failure (a malformed event, a bug) is logged and followed by a relist after the
  same backoff, so the gateway never stops following its tables.
- A watch event line may be as large as the API server sends for one ConfigMap (its 1 MiB of
  data JSON-escaped inside the event); lines are split by this module, capped at
  ``MAX_EVENT_BYTES``, not by the HTTP client's 512 KiB line limit.
- ``on_loaded`` is called once, after the first complete list was applied and published (the
  watch already runs meanwhile; its events queue behind the list). A relist does not call it
  again and does not make the gateway unready: it keeps routing by its last good tables while
  the relisted ones are applied, and entries the relist lacks are removed at its end.
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

from .store import TableStore
from .worker import Emit, TableWorker

log = logging.getLogger("tether.gateway.tables")

WATCH_TIMEOUT_SECONDS = 300
PAGE_BYTES = 256 << 10  # target size of one list page
PAGE_LIMITS = (10, 500)  # bounds of the items asked for per page (500: client-go's default)
FIRST_LIMIT = 50  # before any table was seen: 50 × a 56 KB 65,537-slot table ≈ 2.8 MB
MAX_EVENT_BYTES = 8 << 20  # one ConfigMap event: 1 MiB of data, escaped, plus metadata


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
    ) -> None:
        self.creds = creds
        self.namespace = namespace
        self.store = store
        self.on_loaded = on_loaded
        self.max_backoff = max_backoff
        self.loaded = False
        self.limit = FIRST_LIMIT
        self.worker: TableWorker | None = None
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
        self.worker = TableWorker(self.store, asyncio.get_running_loop())
        ready: asyncio.Task | None = None
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                rv: str | None = None
                backoff = 0.5
                while True:
                    try:
                        if rv is None:
                            rv = await self._list(session)
                            if ready is None:
                                ready = asyncio.create_task(self._loaded(self.worker.submit(_noop)))
                        rv = await self._watch(session, rv)
                        backoff = 0.5
                    except _Gone:
                        log.info("watch resourceVersion expired; relisting")
                        rv = None
                    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                        log.warning("table watch error (%s); retrying in %.1fs", exc, backoff)
                        await asyncio.sleep(backoff * (0.8 + 0.4 * random.random()))
                        backoff = min(backoff * 2, self.max_backoff)
                    except Exception:  # an event may have been lost: relist, never give up
                        log.exception("table watch failed; relisting in %.1fs", backoff)
                        rv = None
                        await asyncio.sleep(backoff * (0.8 + 0.4 * random.random()))
                        backoff = min(backoff * 2, self.max_backoff)
        finally:
            if ready is not None:
                ready.cancel()
            self.worker.close()

    async def _loaded(self, job: int) -> None:
        await self.worker.settled(job)
        self.store.publish(force=not self.store.swaps)  # the first load swaps once
        self.worker.first_load_done()
        self.loaded = True
        self.on_loaded()

    async def _list(self, session) -> str:
        """Every page of the list, queued to the worker; returns the list's resourceVersion."""
        names: set[str] = set()
        token = ""
        while True:
            url = f"{self.url}&limit={self.limit}"
            if token:
                url += f"&continue={quote(token, safe='')}"
            async with session.get(url, headers=self._headers(), ssl=self.creds.ssl_context) as r:
                if r.status == 410:  # the continue token expired: start over
                    raise _Gone()
                if r.status != 200:
                    raise ValueError(f"list configmaps: HTTP {r.status}: {(await r.text())[:200]}")
                body = await r.read()
            page = self.worker.loop.create_future()
            self.worker.submit(_page_job(self.store, body, page))
            meta, listed = await page
            names.update(listed)
            if listed:  # keep pages near PAGE_BYTES whatever the size of a table
                per_item = max(1, len(body) // len(listed))
                self.limit = min(max(PAGE_BYTES // per_item, PAGE_LIMITS[0]), PAGE_LIMITS[1])
            token = meta.get("continue") or ""
            if not token:
                self.worker.retain(names)
                return meta["resourceVersion"]

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
            buf = bytearray()
            async for chunk in r.content.iter_any():
                start = len(buf)
                buf += chunk
                while (nl := buf.find(b"\n", start)) >= 0:
                    line = bytes(buf[:nl])
                    del buf[: nl + 1]
                    start = 0
                    if line.strip():
                        # one object per line, at most a ConfigMap: parsed here in about a ms
                        rv = self._event(json.loads(line)) or rv
                if len(buf) > MAX_EVENT_BYTES:
                    raise ValueError(f"watch event over {MAX_EVENT_BYTES} bytes")
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
            self.worker.apply(meta["name"], (obj.get("data") or {}).get(DATA_KEY))
        elif kind == "DELETED":
            self.worker.remove(meta["name"])
        return meta.get("resourceVersion")


def _noop(emit: Emit) -> None:
    """A job that only marks a point in the worker's queue."""


def _page_job(store: TableStore, body: bytes, page: asyncio.Future):
    """A worker job: parse one list page, report (metadata, names) to ``page``, then prepare
    its items in order."""
    loop = page.get_loop()

    def job(emit: Emit) -> None:
        try:
            parsed = json.loads(body)
            items = parsed.get("items") or []
            entries = [(i["metadata"]["name"], (i.get("data") or {}).get(DATA_KEY)) for i in items]
            found = (parsed.get("metadata") or {}, [name for name, _ in entries])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            loop.call_soon_threadsafe(_settle, page, None, ValueError(f"list page: {exc}"))
            return
        loop.call_soon_threadsafe(_settle, page, found, None)
        for name, text in entries:
            emit(name, store.prepare(name, text))

    return job


def _settle(fut: asyncio.Future, result, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
