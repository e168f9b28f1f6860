"""A list+watch cache of one resource kind: tether's own view of the cluster.

``Informer.run`` lists the objects in pages, then watches from the list's resourceVersion,
and keeps ``store``: ``(namespace, name)`` → ``(resourceVersion, parsed value)``. Invariants:

- After every complete (re)list the store holds exactly the listed objects that ``parse``
  kept; objects gone meanwhile are reported deleted.
- ``on_change(key, old, new)`` is called once per real change (``None`` = absent), on the
  event loop, never for an event that repeats the stored resourceVersion.
- ``synced`` is set after the first complete list (also when the resource does not exist,
  e.g. a CRD not installed yet: that is an empty list, retried with back-off of at most
  ``ABSENT_RETRY`` seconds, so a CRD installed later is picked up within that time). An
  ``optional`` informer also counts a refusal (403) of its *first* list as an empty list, so a
  missing RBAC rule for an optional kind never keeps the operator from syncing; once synced,
  a 403 keeps the cache as it is and retries.
- A watch that ends resumes from the last resourceVersion; ``410 Gone`` relists; other
  failures back off (0.5 s doubling to 30 s, with jitter) and never stop the loop.
- ``put_local``/``drop_local`` record the result of the operator's own write at once; a later
  event with an older resourceVersion does not undo it (watch events arrive in order, so an
  older one can only be the echo of what preceded that write).

Unlike ``@kopf.index``, it costs O(1) per event whatever the number of objects, and it keeps
watching while the operator stands by, so a standby replica takes over with a warm cache.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from tether.k8s import kopf_io

log = logging.getLogger("tether.k8s.informer")

V = TypeVar("V")
Key = tuple[str, str]
OnChange = Callable[[Key, Any, Any], None]

PAGE = 500
WATCH_SECONDS = (240, 360)  # server-side timeout of one watch request, randomised
READ_TIMEOUT = 90.0  # bookmarks arrive about every minute: silence past this = dead stream
ABSENT_RETRY = 10.0  # longest wait between two lists of a resource the API does not serve


class Gone(Exception):
    """The resourceVersion is too old (HTTP 410): relist."""


def _older(rv: str, than: str) -> bool:
    try:
        return int(rv) < int(than)
    except ValueError:
        return False


class Informer(Generic[V]):
    """Cache of one resource kind (optionally one namespace, a label/field selector)."""

    def __init__(
        self,
        name: str,
        settings: kopf_io.Settings,
        resource: kopf_io.Resource,
        parse: Callable[[dict], V | None],
        *,
        namespace: str | None = None,
        labels: str | None = None,
        fields: str | None = None,
        namespaces: tuple[str, ...] = (),
        on_change: OnChange | None = None,
        optional: bool = False,
    ) -> None:
        self.name = name
        self.optional = optional
        self.settings = settings
        self.resource = resource
        self.parse = parse
        self.namespace = namespace
        self.selectors = {
            k: v for k, v in (("labelSelector", labels), ("fieldSelector", fields)) if v
        }
        self.namespaces = namespaces
        self.on_change: OnChange = on_change or (lambda key, old, new: None)
        self.store: dict[Key, tuple[str, V]] = {}
        self.synced = asyncio.Event()
        self.relists = 0
        self._rv = ""

    def get(self, key: Hashable) -> V | None:
        """The cached value of one object, or None."""
        item = self.store.get(key)  # type: ignore[arg-type]
        return item[1] if item is not None else None

    def values(self) -> list[V]:
        """Every cached value (a copy: safe to iterate while events arrive)."""
        return [v for _, v in self.store.values()]

    # -- local writes ------------------------------------------------------------------------

    def put_local(self, key: Key, obj: dict) -> None:
        """Record an object the operator just wrote (the API's response)."""
        self._apply(key, obj, notify=False)

    def drop_local(self, key: Key) -> None:
        """Record an object the operator just deleted."""
        self.store.pop(key, None)

    # -- applying events ---------------------------------------------------------------------

    def _key(self, obj: dict) -> Key | None:
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or ""
        if ns and not kopf_io.namespace_matches(ns, self.namespaces):
            return None
        return (ns, meta.get("name") or "")

    def _apply(self, key: Key, obj: dict, notify: bool = True) -> None:
        rv = (obj.get("metadata") or {}).get("resourceVersion") or ""
        held = self.store.get(key)
        if held is not None and (held[0] == rv or _older(rv, held[0])):
            return
        value = self.parse(obj)
        old = held[1] if held is not None else None
        if value is None:
            self.store.pop(key, None)
        else:
            self.store[key] = (rv, value)
        if notify and (old is not None or value is not None):
            self.on_change(key, old, value)

    def handle(self, kind: str | None, obj: dict) -> None:
        """Apply one watch event (ADDED, MODIFIED, DELETED; others are ignored)."""
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        key = self._key(obj)
        if key is None:
            return
        if kind == "DELETED":
            self._delete(key)
        else:
            self._apply(key, obj)

    def replace(self, items: list[dict]) -> None:
        """Apply a complete list: the store then holds exactly these objects."""
        self._replace(items)
        self.synced.set()

    def _delete(self, key: Key) -> None:
        held = self.store.pop(key, None)
        if held is not None:
            self.on_change(key, held[1], None)

    def _replace(self, items: list[dict]) -> None:
        seen: set[Key] = set()
        for obj in items:
            key = self._key(obj)
            if key is not None:
                seen.add(key)
                self._apply(key, obj)
        for key in [k for k in self.store if k not in seen]:
            self._delete(key)

    # -- the loop ----------------------------------------------------------------------------

    def _path(self) -> str:
        return kopf_io.url(self.resource, namespace=self.namespace)

    async def _list(self) -> None:
        items: list[dict] = []
        params = {**self.selectors, "limit": str(PAGE)}
        while True:
            page, rv, cont = await kopf_io.list_page(self.settings, self._path(), params)
            items += page
            if not cont:
                break
            params["continue"] = cont
        self.replace(items)
        self._rv = rv
        self.relists += 1

    async def _watch(self) -> None:
        params = {
            **self.selectors,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": self._rv,
            "timeoutSeconds": str(random.randint(*WATCH_SECONDS)),
        }
        async for event in kopf_io.stream(self.settings, self._path(), params, READ_TIMEOUT):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone()
                raise kopf_io.APIError(obj, status=obj.get("code") or 500, headers={})
            self.handle(kind, obj)
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self._rv = rv

    async def run(self) -> None:
        """List, then watch forever (relist on 410, back off on failures). Never returns."""
        failures = 0
        listed = False
        while True:
            try:
                if not listed:
                    await self._list()
                    listed = True
                await self._watch()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Gone:
                listed = False
            except kopf_io.NotFound:
                self.replace([])  # the resource is not served (CRD missing): nothing exists
                listed = False
                failures += 1
                await self._sleep(failures, ABSENT_RETRY)
            except kopf_io.Forbidden as exc:
                failures += 1
                listed = False
                if self.optional and not self.synced.is_set():
                    log.warning("%s: not allowed to list (%r); treated as empty", self.name, exc)
                    self.replace([])
                else:
                    log.warning("%s: list/watch refused (%r); retrying", self.name, exc)
                await self._sleep(failures)
            except Exception as exc:  # network, API server down, 5xx after retries
                failures += 1
                if getattr(exc, "status", None) == 410:
                    listed = False
                log.warning("%s: list/watch failed (%r); retrying", self.name, exc)
                await self._sleep(failures)

    @staticmethod
    async def _sleep(failures: int, longest: float = 30.0) -> None:
        delay = min(0.5 * 2 ** (failures - 1), longest)
        await asyncio.sleep(delay * (0.5 + random.random() / 2))
