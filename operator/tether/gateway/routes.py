"""Routes: one per published table (service port): its targets, hash key and chooser.

The Host → route index (DESIGN §3.4) is ``router.Router``, re-exported here.

Invariants:
- A ``Route`` is built from one document (off the event loop) and never rebuilt; its table
  does not change once it is live. The Host index over the routes is ``router``.
- A route keeps what routing needs, not the document: the Service's name, namespace, port,
  FQDN and subset as plain strings and ints, the targets, and the table as one flat array.
  Parts that are the same for many routes (a uniform round-robin schedule, a hash key) are
  shared. So a route is a handful of objects for the cyclic collector, whatever its table
  size, and references nothing that leads back to it.
- ``targets[:n_ready]`` are the ready endpoints, the only ones the soft policy (table, round
  robin, …) ever picks; a route with persistent sessions appends the endpoints that drain
  (terminating but serving), which only an honoured session value reaches (``sessions``).
"""

from __future__ import annotations

import logging
import random

from xxhash import xxh64_intdigest

from tether.hashing import CookieKey, HeaderKey, Maglev, SourceIpKey
from tether.hashing.keys.config import key_from_model
from tether.hashing.keys.parse import cookie_needle, scan_cookie
from tether.hashing.session import DRAINING, endpoint_states, spec_from_model
from tether.models.table import TableDocument, TableDocumentError

from .accesslog import fragment
from .exchange import NOT_FORWARDED
from .lookup import bounded, build_chooser, ready_endpoints
from .router import Router
from .sessions import SessionRoute

__all__ = ["Route", "Router", "Target", "build_route"]

log = logging.getLogger("tether.gateway")

_RANDOM = random.Random()
_getrandbits = _RANDOM.getrandbits

# What the native lane (wire/lane.c) evaluates itself for a request's first attempt when no
# endpoint is ejected; anything else goes to Route.pick_first.
LANE_PYTHON, LANE_ROUND_ROBIN, LANE_HASH, LANE_SESSION = 0, 1, 2, 3
KEY_COOKIE, KEY_HEADER, KEY_SOURCE_IP = 1, 2, 3


class Target:
    """One ready endpoint: where to connect and what to log."""

    __slots__ = (
        "authority", "codes", "host", "log_fragment", "log_honour", "log_variants", "pod", "port",
        "sid", "weight",
    )  # fmt: skip

    def __init__(self, host: str, port: int, pod: str | None, weight: int) -> None:
        self.host = host
        self.port = port
        self.pod = pod or ""
        self.weight = weight
        self.authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.codes: dict[int, int] = {}  # replaced by the gateway's live metrics dict
        self.log_fragment = ""  # access-log JSON members (upstream, pod, route, affinity)
        self.log_honour = ""  # the same with a session value honoured (native lane)
        self.log_variants: dict[tuple[str, str], str] = {}  # other session decisions
        self.sid = 0  # the pod's id in the gateway's recent-sessions table (sessions_seen)


_UNIFORM: dict[int, list[int]] = {}  # n → [0 .. n-1], shared by every route (never mutated)
_KEYS: dict = {}  # policy.hashKey → (hash key,), shared by every route with that key
_SHARED_MAX = 4096


def _shared(cache: dict, key, make):
    """``cache[key]``, made once; the cache is emptied past _SHARED_MAX entries (a bound,
    not an eviction policy: sharing saves memory, it is never needed for correctness)."""
    value = cache.get(key)
    if value is None:
        if len(cache) >= _SHARED_MAX:
            cache.clear()
        value = cache[key] = make()
    return value


def _shared_keys(spec) -> tuple:
    return _shared(_KEYS, spec, lambda: (key_from_model(spec),))


def _session_pods(doc: TableDocument) -> tuple[str, ...]:
    """(authority, pod, authority, pod, …) of the endpoints a persistent session may stay on
    (``endpoint_states``: the ready ones, and terminating ones that still serve while the
    session drains), in document order; flat, so one object for the collector."""
    states = endpoint_states(doc.endpoints, doc.session.drain if doc.session else True)
    out: list[str] = []
    for ep in doc.endpoints:
        if ep.authority in states:
            out += (ep.authority, ep.pod or "")
    return tuple(out)


def _smooth_schedule(weights: list[int]) -> list[int]:
    """nginx's smooth weighted round robin, one full cycle (capped to 4096 picks); read only."""
    if len(set(weights)) <= 1:
        n = len(weights)
        return _shared(_UNIFORM, n, lambda: list(range(n)))
    total, current, out = sum(weights), [0] * len(weights), []
    for _ in range(min(total, 4096)):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(weights)), key=lambda i: current[i])
        current[best] -= total
        out.append(best)
    return out


class Route:
    """A published table made usable: targets, how to hash, how to choose, in-flight counts.

    ``pick(request, attempt, tried, ejected)`` returns a target index or None; for attempt 0 it
    computes ``request.hash`` (the affinity hash, None when the policy has no key or the key
    was absent and not generated).
    """

    __slots__ = (
        "active",
        "authorities",
        "checksum",
        "chooser",
        "fqdn",
        "hist",
        "hkey",
        "is_cookie",
        "is_ketama",
        "key",
        "keys",
        "kind",
        "lane",
        "lane_choose",
        "lane_key",
        "local_codes",
        "mode",
        "n_ready",
        "name",
        "namespace",
        "needle",
        "port",
        "rr",
        "schedule",
        "session",
        "session_pods",
        "sid",
        "size",
        "subset",
        "table",
        "targets",
        "total_active",
    )

    def __init__(self, doc: TableDocument) -> None:
        service = doc.service
        self.key = doc.key
        self.checksum = doc.checksum  # which document this route was built from
        self.namespace = service.namespace
        self.name = service.name
        self.port = service.port
        self.fqdn = service.host
        self.subset = doc.subset
        _, ready = ready_endpoints(doc)
        self.targets = [Target(ep.address, ep.port, ep.pod, ep.weight) for ep in ready]
        self.active = [0] * len(self.targets)
        self.hist = None  # metrics attached by the gateway when the route goes live
        self.local_codes: dict[int, int] = {}
        self.total_active = 0
        self.sid = 0  # the route's id in the recent-sessions table, bound when it goes live
        self.session_pods = _session_pods(doc)
        self.rr = 0
        self.chooser = None
        self.keys: tuple = ()
        self.hkey = None  # the single hash key Istio emits (keys[0]), None = random pick
        self.is_cookie = False
        self.is_ketama = False
        self.lane = LANE_PYTHON
        self.lane_key = 0
        self.lane_choose = None  # chooser.choose when the table is not a Maglev one
        self.needle: bytes | None = None  # cookie b"name=", or the header's lower-case name
        self.table = None  # Maglev table (host index per slot) and its size
        self.size = 0
        policy = doc.policy
        if policy.type == "consistentHash":
            try:
                chooser, hosts = build_chooser(doc)
                if chooser is not None and policy.hash_balance_factor > 0:
                    chooser = bounded(chooser, hosts, policy.hash_balance_factor)
            except ValueError as exc:  # config errors from the hashing layer
                raise TableDocumentError(str(exc)) from None
            self.chooser = chooser
            self.is_ketama = policy.algorithm == "ketama"
            self.mode = "bounded" if policy.hash_balance_factor > 0 else "hash"
            if policy.hash_key is not None:
                self.keys = _shared_keys(policy.hash_key)
                self.is_cookie = isinstance(self.keys[0], CookieKey)
                self.hkey = self.keys[0]
                self.kind = policy.hash_key.kind
            else:
                self.kind = "random"
        else:
            simple = (policy.simple or "ROUND_ROBIN").upper()
            self.mode = {"LEAST_REQUEST": "least", "LEAST_CONN": "least", "RANDOM": "random"}.get(
                simple, "rr"
            )
            self.kind = {"least": "leastRequest", "random": "random"}.get(self.mode, "roundRobin")
        self.schedule = _smooth_schedule([t.weight for t in self.targets])
        self.n_ready = len(self.targets)
        self.session = None if doc.session is None else self._sessions(doc)
        self._extra_targets(doc)
        self.authorities = tuple(dict.fromkeys(t.authority for t in self.targets))
        for target in self.targets:
            target.log_fragment = fragment(target.authority, target.pod, self.key, self.kind)
            if self.session is not None:
                target.log_honour = fragment(
                    target.authority, target.pod, self.key, self.kind, "honour", "valid"
                )
        self._lane_hints()

    def _sessions(self, doc: TableDocument) -> SessionRoute:
        """The session map; draining endpoints become targets after the ready ones."""
        svc = doc.service
        spec = spec_from_model(doc.session, svc.namespace, svc.name)
        states = endpoint_states(doc.endpoints, spec.drain)
        self._append_targets(doc, {a for a, state in states.items() if state == DRAINING})
        index = {t.authority: i for i, t in enumerate(self.targets)}
        return SessionRoute(spec, states, index)

    def _append_targets(self, doc: TableDocument, authorities) -> dict[str, int]:
        """Make every endpoint of ``doc`` in ``authorities`` a target (those not targets yet go
        after the existing ones, in document order, so ready targets keep their indices);
        return authority → target index for them. ``active`` is sized to the targets."""
        index = {t.authority: i for i, t in enumerate(self.targets)}
        out: dict[str, int] = {}
        for ep in doc.endpoints:
            a = ep.authority
            if a not in authorities:
                continue
            if a not in index:
                index[a] = len(self.targets)
                self.targets.append(Target(ep.address, ep.port, ep.pod, ep.weight))
            out[a] = index[a]
        self.active = [0] * len(self.targets)
        return out

    def _extra_targets(self, doc: TableDocument) -> None:
        """Targets beyond the ready ones and the sessions' (a subclass's hook; none here)."""

    def _lane_hints(self) -> None:
        """Fill lane/lane_key/needle/table/size/lane_choose (see LANE_*; Python decides else)."""
        if self.session is not None:
            # the lane honours valid signed cookies itself; everything else goes to Python
            self.lane = LANE_SESSION if self.session.native_ok else LANE_PYTHON
            return
        if not self.targets:
            return
        if self.mode == "rr":
            self.lane = LANE_ROUND_ROBIN
            return
        chooser, key = self.chooser, self.hkey
        if self.mode != "hash" or self.is_ketama or chooser is None or key is None:
            return
        if isinstance(key, CookieKey):
            self.needle = cookie_needle(key.name, True)
            if self.needle is None:  # the name can never match
                return
            self.lane_key = KEY_COOKIE
        elif isinstance(key, HeaderKey):
            lname = key.name.lower().encode()
            if lname in NOT_FORWARDED or lname == b"cookie":
                return
            self.needle = lname
            self.lane_key = KEY_HEADER
        elif isinstance(key, SourceIpKey):
            self.lane_key = KEY_SOURCE_IP
        else:
            return
        if isinstance(chooser, Maglev):
            if not chooser.size:
                return
            self.table = chooser.table
            self.size = chooser.size
        else:
            self.lane_choose = chooser.choose
        self.lane = LANE_HASH

    # -- choosing ---------------------------------------------------------------------------

    def pick_first(self, request) -> int | None:
        """``pick(request, 0, None, None)`` with the common consistent-hash case unrolled.

        ``request`` is an Exchange. A cookie key over a Maglev table is evaluated inline, as
        Envoy's CookieHashMethod (a non-empty value → XXH64) and ``Maglev.choose(h, 0)``.
        """
        needle = self.needle
        if self.lane_key == KEY_COOKIE and self.table is not None:
            cookies = request.cookies
            value = scan_cookie(cookies, needle) if cookies else None
            if value:
                h = request.hash = xxh64_intdigest(value)
                return self.table[h % self.size]
        if self.mode != "hash" or self.is_ketama or not self.n_ready:
            return self.pick(request, 0, None, None)
        key = self.hkey
        h = (
            None
            if key is None
            else key.evaluate(request, request.add_cookie if self.is_cookie else None)
        )
        request.hash = h
        if h is None:
            h = request.rand = _getrandbits(64)
        return self.chooser.choose(h, 0)

    def pick(self, request, attempt: int, tried: set | None, ejected: dict | None) -> int | None:
        """Target index for this attempt, skipping tried/ejected targets when others remain."""
        n = self.n_ready
        if not n:
            return None
        mode = self.mode
        if mode == "rr":
            sched = self.schedule
            for _ in range(len(sched)):
                i = sched[self.rr % len(sched)]
                self.rr += 1
                if not _skip(self.targets[i], i, tried, ejected):
                    return i
            return None
        if mode == "hash" or mode == "bounded":
            if attempt == 0:
                key = self.hkey
                if key is None:
                    h = None
                elif self.is_ketama:
                    h = self._hash(request)
                else:
                    h = key.evaluate(request, request.add_cookie if self.is_cookie else None)
                request.hash = h
            else:
                h = request.hash
            if h is None:
                if request.rand is None:
                    request.rand = _getrandbits(64)
                h = request.rand
            chooser = self.chooser
            if self.is_ketama:
                text = request.key_text
                if text is not None and attempt == 0:
                    i = chooser.choose_key(text)
                    if i is not None and not _skip(self.targets[i], i, tried, ejected):
                        return i
                mode = "random"  # no key, or its host failed: any live target
            else:
                # Envoy's retry: attempt k uses choose(h, k); targets already tried or ejected
                # are passed over (its previous-hosts predicate), bounded by 2·n selections.
                for a in range(attempt, attempt + 2 * n + 1):
                    if mode == "bounded":
                        i = chooser.choose(h, a, self.active, self.total_active)
                    else:
                        i = chooser.choose(h, a)
                    if i is None:
                        return None
                    if not (tried or ejected) or not _skip(self.targets[i], i, tried, ejected):
                        request.attempt = a
                        return i
                # Every selection in the bound hit a skipped target (the walk can stay on one
                # host for many attempts): a live target still answers, chosen by the hash so
                # every gateway replica picks the same one.
                live = [i for i in range(n) if not _skip(self.targets[i], i, tried, ejected)]
                return live[h % len(live)] if live else None
        live = [i for i in range(n) if not _skip(self.targets[i], i, tried, ejected)]
        if not live:
            return None
        if mode == "least" and len(live) > 1:
            a, b = _RANDOM.sample(live, 2)
            return a if self.active[a] <= self.active[b] else b
        return _RANDOM.choice(live)

    def _hash(self, request) -> int | None:
        """Envoy's hash policy over this route's key(s); may generate the affinity cookie."""
        keys = self.keys
        if not keys:
            return None
        key = keys[0]
        h = key.evaluate(request, request.add_cookie if self.is_cookie else None)
        if self.is_ketama:
            request.key_text = _key_text(key, request)
        return h


def _skip(target: Target, i: int, tried: set | None, ejected: dict | None) -> bool:
    return bool((tried and i in tried) or (ejected and target.authority in ejected))


def _key_text(key, request) -> str | None:
    """The raw key string for ketama (which hashes the string itself, not XXH64)."""
    from tether.hashing import HeaderKey, QueryKey, SourceIpKey, cookie_value, query_value

    if isinstance(key, CookieKey):
        v = cookie_value(request.header_values(b"cookie"), key.name) or request.generated
    elif isinstance(key, HeaderKey):
        vals = request.header_values(key.name.lower().encode())
        v = vals[0] if vals else None
    elif isinstance(key, QueryKey):
        v = query_value(request.path, key.name)
    elif isinstance(key, SourceIpKey):
        v = request.remote_ip
    else:  # pragma: no cover
        v = None
    if isinstance(v, bytes):
        v = v.decode("latin-1")
    return v or None


def build_route(doc: TableDocument) -> Route:
    """Route for one document; TableDocumentError if its table cannot be used."""
    route = Route(doc)
    log.debug("route %s: %d targets, mode %s", route.key, len(route.targets), route.mode)
    return route
