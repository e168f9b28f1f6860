"""The set of table documents a gateway routes by, fed by a source (ConfigMaps or a directory).

Invariants:
- A document is adopted only if ``tether.models.table.loads`` accepts it *and* a route can be
  built from it (table decoded or rebuilt with a matching digest). Otherwise the previous good
  document of the same source entry stays in use; the error is logged and counted.
- ``publish()`` builds a complete new ``Router`` and hands it over in one assignment, so a
  request sees either the old or the new table set, never a mix.
- Unchanged documents (same checksum) keep their ``Route`` object, so round-robin position
  and in-flight counts survive unrelated updates.
- Two entries publishing the same table key: the entry whose name sorts first wins (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tether.models.table import TableDocumentError, loads

from ..routes import Route, Router, build_route

log = logging.getLogger("tether.gateway.tables")


class TableStore:
    """Last good route per source entry; see module docstring."""

    def __init__(
        self,
        on_swap: Callable[[Router], None],
        on_error: Callable[[str, str], None],
        *,
        cluster_domain: str = "cluster.local",
        home_namespace: str = "default",
        default_service: tuple[str, str, int | None] | None = None,
    ) -> None:
        self._on_swap = on_swap
        self._on_error = on_error
        self._router_args = {
            "cluster_domain": cluster_domain,
            "home_namespace": home_namespace,
            "default_service": default_service,
        }
        self.routes: dict[str, Route] = {}
        self._raw: dict[str, bytes] = {}
        self.dirty = False

    def apply(self, name: str, text: str | bytes | None) -> bool:
        """Adopt entry ``name``'s document if valid; return True when the route set changed."""
        if text is None:
            self._on_error(name, "no table.json in the ConfigMap")
            return False
        raw = text.encode() if isinstance(text, str) else text
        if self._raw.get(name) == raw:
            return False
        try:
            doc = loads(raw)
            old = self.routes.get(name)
            if old is not None and old.doc.checksum == doc.checksum:
                self._raw[name] = raw
                return False
            route = build_route(doc)
        except TableDocumentError as exc:
            self._raw[name] = raw  # do not re-report the same bad bytes
            self._on_error(name, str(exc))
            return False
        self._raw[name] = raw
        self.routes[name] = route
        self.dirty = True
        return True

    def remove(self, name: str) -> bool:
        """Forget entry ``name`` (ConfigMap deleted / file removed)."""
        self._raw.pop(name, None)
        if self.routes.pop(name, None) is None:
            return False
        self.dirty = True
        return True

    def replace_all(self, entries: dict[str, str | bytes | None]) -> None:
        """Make the store hold exactly ``entries`` (a relist); bad ones keep their old route."""
        for name in [n for n in self.routes if n not in entries]:
            self.remove(name)
        for name in [n for n in self._raw if n not in entries]:
            self._raw.pop(name, None)
        for name, text in entries.items():
            self.apply(name, text)

    def publish(self, force: bool = False) -> Router | None:
        """Build and hand over a new Router if anything changed (or ``force``)."""
        if not (self.dirty or force):
            return None
        self.dirty = False
        chosen: dict[str, Route] = {}
        for name in sorted(self.routes):
            route = self.routes[name]
            if route.key in chosen:
                log.warning("table %s from %s ignored: key already published", route.key, name)
                continue
            chosen[route.key] = route
        router = Router(chosen.values(), **self._router_args)
        self._on_swap(router)
        return router
