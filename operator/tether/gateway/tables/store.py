"""The set of table documents a gateway routes by, fed by a source (ConfigMaps or a directory).

Invariants:
- A document is adopted only if ``tether.models.table.loads`` accepts it *and* a route can be
  built from it (table decoded or rebuilt with a matching digest). Otherwise the previous good
  document of the same source entry stays in use; the error is logged and counted.
- Changes are applied per entry: ``prepare`` does the costly part (parse, verify, build the
  route) and touches only the worker-side view of what each entry last sent; ``commit`` adopts
  the outcome in O(1). ``apply`` is both in a row. ``tables.worker`` runs ``prepare`` off the
  event loop and ``commit``/``publish`` on it, in the order the documents arrived.
- ``publish()`` hands over a new ``Router`` derived from the previous one with only the
  changed keys replaced (O(changed · log N)), in one assignment: a request sees the old or the
  new route of a table, never a mix.
- Unchanged documents (same checksum) keep their ``Route`` object, so round-robin position
  and in-flight counts survive unrelated updates.
- Hash drain (``gateway.hashdrain``, with ``hash_drain=True``): each entry's new route is
  built from its previous one, so keys of a pod that drains stay there across updates.
- Two entries publishing the same table key: the entry whose name sorts first wins (logged);
  when it goes away, the next one takes over.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from tether.models.table import TableDocumentError, loads

from ..hashdrain import build_drain_route
from ..routes import Route, Router, build_route

log = logging.getLogger("tether.gateway.tables")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What ``prepare`` decided for one entry: a new route, a removal, an error, or nothing."""

    route: Route | None = None
    removed: bool = False
    error: str | None = None


UNCHANGED = Outcome()
REMOVED = Outcome(removed=True)


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
        hash_drain: bool = False,
    ) -> None:
        self._on_swap = on_swap
        self._on_error = on_error
        self.router = Router(
            (),
            cluster_domain=cluster_domain,
            home_namespace=home_namespace,
            default_service=default_service,
        )
        self.swaps = 0  # Routers handed over so far
        self.routes: dict[str, Route] = {}  # entry → its last good route (committed)
        self._claims: dict[str, set[str]] = {}  # table key → entries publishing it
        self._dirty: set[str] = set()  # keys whose winner may differ from self.router's
        # The worker's view (only prepare/forget touch it): entry → digest of the last bytes
        # seen (not the bytes: 10,000 tables would keep them all), and the checksum of its last
        # good document.
        self._raw: dict[str, bytes] = {}
        self._good: dict[str, str] = {}
        # entry → the route its last good document built: the route it had before its next
        # one (jobs run in arrival order, so this is what commit will have replaced; reading
        # the committed routes from the worker thread would race the loop).
        self._prev: dict[str, Route] = {}
        self.hash_drain = hash_drain

    @property
    def dirty(self) -> bool:
        """True when a committed change is not published yet."""
        return bool(self._dirty)

    # -- worker side ----------------------------------------------------------------------

    def prepare(self, name: str, text: str | bytes | None) -> Outcome:
        """Parse, verify and build entry ``name``'s document (costly; no shared state but the
        worker's view). Call in arrival order per entry, then ``commit`` the outcome."""
        if text is None:
            return Outcome(error="no table.json in the ConfigMap")
        raw = text.encode() if isinstance(text, str) else text
        seen = hashlib.blake2b(raw, digest_size=16).digest()
        if self._raw.get(name) == seen:
            return UNCHANGED
        self._raw[name] = seen  # a bad document is reported once, not on every relist
        try:
            doc = loads(raw)
            if self._good.get(name) == doc.checksum:
                return UNCHANGED
            if self.hash_drain:
                route = build_drain_route(doc, self._prev.get(name))
            else:
                route = build_route(doc)
        except TableDocumentError as exc:
            return Outcome(error=str(exc))
        self._good[name] = doc.checksum
        self._prev[name] = route
        return Outcome(route=route)

    def forget(self, name: str) -> Outcome:
        """The worker-side half of removing entry ``name``."""
        self._raw.pop(name, None)
        self._good.pop(name, None)
        self._prev.pop(name, None)
        return REMOVED

    def known(self) -> list[str]:
        """Entries the worker's view holds (what a relist compares against)."""
        return list(self._raw)

    # -- event-loop side ------------------------------------------------------------------

    def commit(self, name: str, outcome: Outcome) -> bool:
        """Adopt a prepared outcome in O(1); True when entry ``name``'s route changed."""
        if outcome.error is not None:
            self._on_error(name, outcome.error)
            return False
        if outcome.removed:
            old = self.routes.pop(name, None)
            if old is None:
                return False
            self._release(name, old.key)
            return True
        route = outcome.route
        if route is None:
            return False
        old = self.routes.get(name)
        self.routes[name] = route
        if old is not None and old.key != route.key:
            self._release(name, old.key)
        self._claims.setdefault(route.key, set()).add(name)
        self._dirty.add(route.key)
        return True

    def _release(self, name: str, key: str) -> None:
        claims = self._claims.get(key)
        if claims is not None:
            claims.discard(name)
            if not claims:
                del self._claims[key]
        self._dirty.add(key)

    def apply(self, name: str, text: str | bytes | None) -> bool:
        """Prepare and commit in one step (on the caller's thread); True if the route changed."""
        return self.commit(name, self.prepare(name, text))

    def remove(self, name: str) -> bool:
        """Forget entry ``name`` (ConfigMap deleted / file removed)."""
        return self.commit(name, self.forget(name))

    def replace_all(self, entries: dict[str, str | bytes | None]) -> None:
        """Make the store hold exactly ``entries`` (a relist); bad ones keep their old route."""
        for name in self.known() + list(self.routes):
            if name not in entries:
                self.remove(name)
        for name, text in entries.items():
            self.apply(name, text)

    def publish(self, force: bool = False) -> Router | None:
        """Hand over a Router with the changed keys replaced if anything changed (or ``force``)."""
        changes: dict[str, Route | None] = {}
        for key in sorted(self._dirty):
            claims = self._claims.get(key)
            if not claims:
                changes[key] = None
                continue
            winner, *others = sorted(claims)
            changes[key] = self.routes[winner]
            for name in others:
                log.warning("table %s from %s ignored: key already published by %s", key, name,
                            winner)  # fmt: skip
        self._dirty.clear()
        router = self.router.updated(changes)
        if not (force or router.added or router.removed):
            return None
        self.router = router
        self.swaps += 1
        self._on_swap(router)
        return router
