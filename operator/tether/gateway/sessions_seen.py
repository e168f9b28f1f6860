"""Recent sessions per route, and how many of them each table swap moved (issue 12, item 3).

A *session* is a request's affinity hash on a route: the hash of the cookie value (a generated
cookie from its first request on: that request hashes the value it sets), of the header value,
of the client address, or of the query parameter's value. Requests without a hash (no key, or
no value: a random pick; simple policies) are not sessions.

Request path: one ``store`` per request sent to a pod (``ClientProtocol._send_to`` and the
lane's ``lane_send``), into a fixed-size table (``seen_table``, ``wire/seen.c``): the session
and the pod that served it last, with the second it was seen. Memory is fixed at start
(``capacity`` entries × 20 bytes) whatever the traffic; a full set overwrites the session seen
longest ago, and the summary reports the window the table still covers completely.

Swap: when a route's table is replaced (``Gateway.swap``), the gateway itself counts, over the
route's sessions seen within ``window`` seconds, each session's owner before (old table) and
after (new table), and the pod that served it last. No key hash leaves the gateway: it
reports counts per pod only. Bounded work per swap: one pass over the table on the event
loop (O(capacity), a filter with no lookups: ~0.1 ms at 65,536 entries), then at most two
table lookups per active session of the swapped routes in one worker thread without the GIL.

Owner of a session under a table: the Maglev slot or ring point of its hash (bounded load:
the unbounded first choice; ketama and policies without a key: not countable, ``null``).
A route that honours persistent sessions (hard affinity: the hard-affinity path marks its
Route with a non-None ``session``) keeps a session on the pod that served it while that pod
is ready (or terminating and still serving, with drain on); otherwise the table decides.
"""

from __future__ import annotations

import asyncio
from array import array
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from tether.hashing import BoundedLoad, Maglev, RingHash

from .seen_table import BYTES_PER_ENTRY, PySessionTable, py_session_cells, spec_pins
from .wire import _wire

SWAPS_KEPT = 8  # swap records kept per route
CELLS_KEPT = 256  # matrix cells kept per record (the largest; totals stay exact)
GONE = "(gone)"


def make_table(capacity: int, clock: float):
    """The native table when built, else the pure-Python one (same interface)."""
    if _wire is not None:
        return _wire.SessionTable(capacity, clock)
    return PySessionTable(capacity, clock)


session_cells = _wire.session_cells if _wire is not None else py_session_cells


def _chooser(route):
    chooser = route.chooser
    return chooser.inner if isinstance(chooser, BoundedLoad) else chooser


def route_spec(route, pins: array | None = None) -> tuple:
    """(pods, kind, a, b, pins) of a route for ``session_cells``: kind 0 = not countable."""
    pods = array("I", [t.sid for t in route.targets])
    chooser = _chooser(route)
    if route.hkey is None or route.is_ketama or route.mode not in ("hash", "bounded"):
        return pods, 0, None, None, pins
    if isinstance(chooser, Maglev):
        return pods, 1, chooser.table, None, pins
    if isinstance(chooser, RingHash):
        return pods, 2, chooser.hashes, chooser.indices, pins
    return pods, 0, None, None, pins


def countable(route) -> bool:
    """True when the owner of a session under this route can be computed."""
    return route_spec(route)[1] != 0


class SessionsSeen:
    """The gateway's recent sessions: ids, the table, swap records and the summary."""

    def __init__(self, capacity: int, window: float, clock: float, loop) -> None:
        self.window = window
        self.table = make_table(capacity, clock)
        self.loop = loop
        self._routes: dict[str, int] = {}  # route key → id, while it is published
        self._pods: dict[tuple[str, str], int] = {}  # (authority, pod) → id, while listed
        self._names: dict[int, tuple[str, str]] = {}  # id → (pod, authority), while listed
        self._next = 0  # the last id given (ids are never reused)
        self.swaps: dict[str, deque] = {}  # route key → its last swap records
        self._pool: ThreadPoolExecutor | None = None
        self._pending: set[asyncio.Future] = set()

    def _id(self) -> int:
        self._next += 1
        return self._next

    def _pod_id(self, authority: str, pod: str) -> int:
        sid = self._pods.get((authority, pod))
        if sid is None:
            sid = self._pods[(authority, pod)] = self._id()
            self._names[sid] = (pod, authority)
        return sid

    def bind(self, route) -> None:
        """Give a route going live its key's id and its targets their pods' ids."""
        rid = self._routes.get(route.key)
        if rid is None:
            rid = self._routes[route.key] = self._id()
        route.sid = rid
        for target in route.targets:
            target.sid = self._pod_id(target.authority, target.pod)

    def spec(self, route) -> tuple:
        """The route's spec for ``session_cells`` (pins when it honours persistent sessions)."""
        if getattr(route, "session", None) is None:
            return route_spec(route)
        from tether.hashing.session.decide import endpoint_states

        session = route.doc.session
        states = endpoint_states(route.doc.endpoints, session.drain if session else True)
        pins = [self._pod_id(e.authority, e.pod or "") for e in route.doc.endpoints
                if e.authority in states]  # fmt: skip
        return route_spec(route, spec_pins(pins))

    def _pool_(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="tether-sessions")
        return self._pool

    def _count(self, snap: bytes, jobs: list) -> asyncio.Future:
        fut = self.loop.run_in_executor(self._pool_(), _count_all, snap, jobs)
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)
        return fut

    # -- swaps ----------------------------------------------------------------------------

    def swapped(self, router, clock: float) -> None:
        """Bind the routes ``router`` added; count the sessions each replaced table moves."""
        for route in router.added:
            self.bind(route)
        old = {r.key: r for r in router.removed}
        pairs = [(old.pop(r.key), r) for r in router.added if r.key in old]
        for key in old:  # routes that left for good
            self.swaps.pop(key, None)
            self._routes.pop(key, None)
        if router.gone:
            gone = set(router.gone)
            for key in [k for k in self._pods if k[0] in gone]:
                self._names.pop(self._pods.pop(key), None)
        if not pairs or not self.table.used:
            return
        rids = array("I", sorted({new.sid for _, new in pairs}))
        snap = self.table.snapshot(rids, clock, self.window)
        if not snap:
            return
        at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        names = _names(r for pair in pairs for r in pair)
        jobs = [(o, n, self.spec(o), self.spec(n)) for o, n in pairs]
        self._count(snap, jobs).add_done_callback(lambda f: self._recorded(f, at, names))

    def _recorded(self, fut: asyncio.Future, at: str, names: dict) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        for key, counted in fut.result():
            if counted["active"]:
                record = _record(counted, names, self._names)
                record["at"] = at
                self.swaps.setdefault(key, deque(maxlen=SWAPS_KEPT)).append(record)

    async def settled(self) -> None:
        """Wait until every swap counted so far is recorded."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
            await asyncio.sleep(0)  # the done callbacks run

    def close(self) -> None:
        """Stop the counting thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- summary (admin /sessions) ----------------------------------------------------------

    async def summary(self, router, clock: float, route_key: str | None = None) -> dict:
        """The JSON summary: table figures, and per route its sessions per pod and swaps."""
        capacity, used, active, age, evictions, stores = self.table.stats(clock, self.window)
        effective = self.window if age is None else max(0, min(self.window, age - 1))
        if route_key is not None:
            route = router.by_key.get(route_key)
            routes = [route] if route is not None else []
        else:
            routes = [r for r in router.routes if r.sid]
        rids = array("I", sorted(r.sid for r in routes))
        snap = self.table.snapshot(rids, clock, self.window) if rids else b""
        jobs = [(r, r, None, self.spec(r)) for r in routes]
        counted = await self._count(snap, jobs) if jobs else []
        listed = []
        for route, (_, now) in zip(routes, counted, strict=True):
            if now["active"] or route.key in self.swaps or route_key is not None:
                names = _names([route])
                swaps = list(self.swaps.get(route.key, ()))
                listed.append(_route_summary(route, now, names, self._names, swaps))
        return {
            "capacity": capacity,
            "bytesPerEntry": BYTES_PER_ENTRY,
            "memoryBytes": capacity * BYTES_PER_ENTRY,
            "used": used,
            "active": active,
            "windowSeconds": self.window,
            "effectiveWindowSeconds": effective,
            "evictions": evictions,
            "stores": stores,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "routes": listed,
        }


def _names(routes) -> dict[int, tuple[str, str]]:
    """Pod id → (pod, authority) of the routes' targets."""
    return {t.sid: (t.pod, t.authority) for r in routes for t in r.targets}


def _named(sid: int, names: dict, known: dict) -> tuple[str, str | None]:
    if sid == 0:
        return "(none)", None
    return names.get(sid) or known.get(sid) or (GONE, None)


def _cells(counts: dict, names: dict, known: dict) -> list[dict]:
    cells = []
    for (a, b), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:CELLS_KEPT]:
        (fp, fe), (tp, te) = _named(a, names, known), _named(b, names, known)
        cells.append({"from": fp, "fromEndpoint": fe, "to": tp, "toEndpoint": te, "sessions": n})
    return cells


def _count_all(snap: bytes, jobs: list) -> list[tuple[str, dict]]:
    """Worker thread: the raw counts of each (old route, new route, old spec, new spec)."""
    out = []
    for old, new, old_spec, new_spec in jobs:
        moves, away, total = session_cells(snap, new.sid, old_spec, new_spec)
        ok = new_spec[1] != 0 and (old_spec is None or old_spec[1] != 0)
        out.append((new.key, {
            "fromChecksum": old.doc.checksum,
            "toChecksum": new.doc.checksum,
            "countable": ok,
            "active": total,
            "moves": moves,
            "away": away,
        }))  # fmt: skip
    return out


def _record(counted: dict, names: dict, known: dict) -> dict:
    """A swap record (JSON) from raw counts; pods named while the swap's routes were known."""
    ok = counted["countable"]
    moves, away = counted["moves"], counted["away"]
    return {
        "fromChecksum": counted["fromChecksum"],
        "toChecksum": counted["toChecksum"],
        "countable": ok,
        "active": counted["active"],
        "moved": sum(n for (a, b), n in moves.items() if a != b) if ok else None,
        "away": sum(away.values()) if ok else None,
        "matrix": _cells(moves, names, known) if ok else [],
        "awayMatrix": _cells(away, names, known) if ok else [],
    }


def _route_summary(route, now: dict, names: dict, known: dict, swaps: list) -> dict:
    """One route of the summary: its sessions per pod (by owner now, or by the pod that served
    them last when owners are not countable) and its last swaps."""
    per_pod: dict[int, int] = {}
    by_owner = now["countable"]
    for (served, owner), n in now["moves"].items():
        sid = owner if by_owner else served
        per_pod[sid] = per_pod.get(sid, 0) + n
    pods = []
    for sid, n in per_pod.items():
        pod, endpoint = _named(sid, names, known)
        pods.append({"pod": pod, "endpoint": endpoint, "active": n})
    doc = route.doc
    return {
        "route": route.key,
        "service": {
            "namespace": doc.service.namespace,
            "name": doc.service.name,
            "port": doc.service.port,
            "subset": doc.subset,
        },
        "checksum": doc.checksum,
        "affinity": route.kind,
        "countable": by_owner,
        "active": now["active"],
        "podsBy": "owner" if by_owner else "lastServed",
        "pods": sorted(pods, key=lambda p: (p["pod"], p["endpoint"] or "")),
        "away": sum(away for away in now["away"].values()) if by_owner else None,
        "swaps": swaps,
    }
