"""What `kubectl tether watch` knows: the Service's current table and where each change came from.

``Tracker.feed(event)`` takes the events of two watches (``tables``: the Service's table
ConfigMaps; ``slices``: its EndpointSlices) and returns the updates to show:

- ``snapshot``: the table found by the first list (the baseline of ``since_start``);
  ``change``: a table whose checksum differs from the last one seen (a new table counts as a
  change from nothing); ``removed``.
- Every change carries the transition matrix from the previous table and the operator's own
  moved fraction (annotation ``tether.dev/keys-moved`` on that ConfigMap version), and the
  transition from the first table seen (one scale is often several table writes).
- ``slice_to_table``: seconds from the first EndpointSlice event that the shown table did not
  yet reflect (an endpoint added, removed, or with another ready flag) to the table event that
  reflects it, both on this process's clock (``Event.seen``). A slice event the table already
  reflects (watch delivery raced the table, or nothing relevant changed) starts no clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from tether.k8s.tables import MOVED_ANNOTATION
from tether.k8s.watch import Event
from tether.models import table as t
from tether.models.cluster import parse_endpointslice
from tether.reconcile.transition import Transition, shares, transition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableView:
    """One version of a table ConfigMap, decoded and verified."""

    configmap: str
    doc: t.TableDocument
    operator_moved: float | None
    shares: dict[str, float]

    @property
    def ready(self) -> int:
        """Endpoints that take new keys."""
        return sum(1 for e in self.doc.endpoints if e.ready)


@dataclass(frozen=True)
class Update:
    """Something to show: a snapshot, a change (with its transition) or a removed table."""

    type: str
    at: datetime
    view: TableView | None
    previous: TableView | None = None
    transition: Transition | None = None
    slice_to_table: float | None = None
    first: TableView | None = None  # the first table this watch saw
    since_start: Transition | None = None  # from ``first`` to ``view``: a whole scale at once


def view_of(cm: dict) -> TableView | None:
    """Decode a table ConfigMap; None (and a warning) when its document fails its checks."""
    meta = cm.get("metadata") or {}
    try:
        doc = t.loads((cm.get("data") or {}).get(t.DATA_KEY) or "")
    except t.TableDocumentError as exc:
        log.warning("table %s is not usable: %s", meta.get("name"), exc)
        return None
    try:
        moved = float((meta.get("annotations") or {})[MOVED_ANNOTATION])
    except (KeyError, ValueError):
        moved = None
    return TableView(meta.get("name", ""), doc, moved, shares(doc))


def _addresses(obj: dict | None, port_name: str) -> dict[str, bool]:
    sl = parse_endpointslice(obj) if obj else None
    if sl is None or not any(p.name == port_name for p in sl.ports):
        return {}
    return {e.address: e.ready for e in sl.endpoints}


class Tracker:
    """The Service's selected table (port, subset) and the clock from slice to table."""

    def __init__(self, port: str | None = None, subset: str | None = None) -> None:
        self.port, self.subset = port, subset
        self.view: TableView | None = None
        self.first: TableView | None = None
        self.slices: dict[str, dict] = {}  # slice name -> last object seen
        # slice name -> (seen, its addresses before) of its first change no table reflects yet
        self.pending: dict[str, tuple[float, dict[str, bool]]] = {}

    def _matches(self, doc: t.TableDocument) -> bool:
        if doc.subset != self.subset:
            return False
        if self.port is None:
            return True
        return self.port in (str(doc.service.port), doc.service.port_name)

    def _select(self, views: list[TableView]) -> TableView | None:
        found = sorted((v for v in views if self._matches(v.doc)), key=lambda v: v.doc.service.port)
        if found and self.port is None:  # no port given: the lowest, as the gateway does
            self.port = str(found[0].doc.service.port)
        return found[0] if found else None

    def feed(self, ev: Event) -> list[Update]:
        """Apply one watch event; return what changed for the user (often nothing)."""
        if ev.source == "slices":
            self._slice(ev)
            return []
        if ev.type == "SYNC":
            views = [v for v in map(view_of, ev.items) if v is not None]
            chosen = self._select(views)
            if self.view is None and chosen is not None:
                self.view = self.first = chosen
                return [Update("snapshot", ev.at, chosen, first=chosen)]
            if self.view is not None and chosen is None:
                return self._removed(ev)
            return self._changed(chosen, ev) if chosen is not None else []
        if ev.type == "DELETED":
            name = (ev.obj.get("metadata") or {}).get("name")
            return self._removed(ev) if self.view and name == self.view.configmap else []
        view = view_of(ev.obj)
        if view is None or self._select([view]) is None:
            return []
        return self._changed(view, ev)

    def _changed(self, view: TableView, ev: Event) -> list[Update]:
        old = self.view
        if old is not None and old.doc.checksum == view.doc.checksum:
            self.view = view  # only metadata changed
            return []
        self.view = view
        done = self._reflected_pending()
        latency = ev.seen - min(self.pending[n][0] for n in done) if done else None
        for n in done:
            del self.pending[n]
        tr = transition(old.doc if old else None, view.doc)
        first = self.first = self.first or view
        since = transition(first.doc, view.doc) if first is not view else None
        return [Update("change", ev.at, view, old, tr, latency, first, since)]

    def _removed(self, ev: Event) -> list[Update]:
        old, self.view = self.view, None
        return [Update("removed", ev.at, None, old)]

    def _port_name(self) -> str:
        return (self.view.doc.service.port_name or "") if self.view else ""

    def _reflects(self, before: dict[str, bool], after: dict[str, bool]) -> bool:
        if self.view is None:
            return not after
        listed = {e.address: e.ready for e in self.view.doc.endpoints}
        subset = self.view.doc.subset is not None  # labels decide membership: unknown here
        for addr, ready in after.items():
            if listed.get(addr) != ready and not (subset and addr not in listed):
                return False
        gone = before.keys() - after.keys()
        if gone:  # an endpoint that moved to another slice did not leave the Service
            port = self._port_name()
            for obj in self.slices.values():
                gone -= _addresses(obj, port).keys()
        return not any(a in listed for a in gone)

    def _slice(self, ev: Event) -> None:
        port = self._port_name()
        if ev.type == "SYNC":
            self.slices = {o["metadata"]["name"]: o for o in ev.items}
            self.pending.clear()
            return
        name = ev.obj["metadata"]["name"]
        before = _addresses(self.slices.get(name), port)
        after = {} if ev.type == "DELETED" else _addresses(ev.obj, port)
        if ev.type == "DELETED":
            self.slices.pop(name, None)
        else:
            self.slices[name] = ev.obj
        if name not in self.pending and not self._reflects(before, after):
            self.pending[name] = (ev.seen, before)  # the clock runs from the first change
        for n in self._reflected_pending():  # the shown table has it (or it was undone)
            del self.pending[n]

    def _reflected_pending(self) -> list[str]:
        """Slices whose pending change the shown table now reflects."""
        port = self._port_name()
        return [
            n
            for n, (_, before) in self.pending.items()
            if self._reflects(before, _addresses(self.slices.get(n), port))
        ]
