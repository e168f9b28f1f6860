"""The Host → route index (DESIGN §3.4), updated per changed table in O(changed · log N).

Host forms accepted for Service ``name`` in namespace ``ns``: ``name``, ``name.ns``,
``name.ns.svc``, ``name.ns.svc.<cluster-domain>``, each optionally with ``:port``.
- ``:port`` equal to a published Service port selects that port's table; no port, or a port
  that is not published for the Service (e.g. the gateway's own port), selects the Service's
  lowest published port.
- A bare ``name`` resolves to the home namespace's Service if there is one, else to the only
  Service of that name; a bare name shared by several other namespaces does not resolve.
- Any other Host takes the default route: ``--default-service ns/name[:port]`` if given, else
  the only published Service when exactly one is published, else none (404 "no route").
- Subset tables are not Host-routable (only a VirtualService could select them); they are kept
  for observability only.

Invariants:
- A ``Router`` never changes once built. ``updated(changes)`` returns a new Router that shares
  every untouched part with this one (persistent HAMT maps, ``immutables.Map``), so a table
  change costs O(tables changed · log N), not O(N), and the gateway still swaps one object: a
  request sees the old or the new route of a Service, never a mix.
- ``Router(routes)`` and any chain of ``updated`` calls reaching the same key → route set
  answer every Host the same way (the index is a function of that set, tested).
- ``added``/``removed`` name the routes that went live or left in the step that built this
  Router; ``authorities`` counts the routes that send to each endpoint address, and ``gone``
  lists the addresses no route sends to any more since the previous Router.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from immutables import Map

from .http import split_host_port

if TYPE_CHECKING:
    from .routes import Route

_EMPTY: Map = Map()
_CACHE_MAX = 4096


class Router:
    """Immutable Host → Route index plus the default route (see module docstring)."""

    __slots__ = (
        "_cache",
        "_conf",
        "added",
        "authorities",
        "bare",
        "by_key",
        "default",
        "gone",
        "hosts",
        "removed",
        "services",
    )

    def __init__(
        self,
        routes: Iterable[Route] = (),
        *,
        cluster_domain: str = "cluster.local",
        home_namespace: str = "default",
        default_service: tuple[str, str, int | None] | None = None,
    ) -> None:
        self._conf = (cluster_domain, home_namespace, default_service)
        self.by_key: Map = _EMPTY  # table key → Route
        self.services: Map = _EMPTY  # (ns, name) → {port: Route} (never mutated once shared)
        self.hosts: Map = _EMPTY  # Host name (bytes) → the ports dict of its Service
        self.bare: Map = _EMPTY  # Service name → sorted tuple of namespaces publishing it
        self.authorities: Map = _EMPTY  # endpoint address → number of routes sending to it
        self.default: Route | None = None
        self.added: tuple[Route, ...] = ()
        self.removed: tuple[Route, ...] = ()
        self.gone: tuple[str, ...] = ()
        self._cache: dict[bytes, Route | None] = {}
        changes = {r.key: r for r in routes}  # a key given twice: the last one stands
        if changes:
            self._fill(self, changes)

    @property
    def routes(self) -> list[Route]:
        """Every route of this Router (O(N): for inspection, not for the request path)."""
        return list(self.by_key.values())

    def __len__(self) -> int:
        return len(self.by_key)

    def updated(self, changes: Mapping[str, Route | None]) -> Router:
        """A new Router with ``changes`` (key → new route, or None to drop it) applied."""
        new = Router.__new__(Router)
        new._conf = self._conf
        new._cache = {}
        self._fill(new, changes)
        return new

    def _fill(self, new: Router, changes: Mapping[str, Route | None]) -> None:
        by_key, services = self.by_key.mutate(), self.services.mutate()
        authorities = self.authorities.mutate()
        added: list[Route] = []
        removed: list[Route] = []
        dropped: set[str] = set()
        touched: set[tuple[str, str]] = set()
        for key, route in changes.items():
            old = by_key.get(key)
            if old is route:
                continue
            if old is not None:
                removed.append(old)
                del by_key[key]
            if route is not None:
                added.append(route)
                by_key[key] = route
            _count(authorities, old, route, dropped)
            doc = (route or old).doc
            if doc.subset:
                continue
            ident = (doc.service.namespace, doc.service.name)
            ports = dict(services.get(ident, ()))
            if route is None:
                ports.pop(doc.service.port, None)
            else:
                ports[doc.service.port] = route
            if ports:
                services[ident] = ports
            elif ident in services:
                del services[ident]
            touched.add(ident)
        new.by_key, new.services = by_key.finish(), services.finish()
        new.authorities = authorities.finish()
        new.added, new.removed = tuple(added), tuple(removed)
        new.gone = tuple(sorted(a for a in dropped if a not in new.authorities))
        new.hosts, new.bare = self._host_forms(new.services, touched)
        new.default = self._default(new.services)

    def _host_forms(self, services: Map, touched: set[tuple[str, str]]) -> tuple[Map, Map]:
        """hosts/bare after the Services in ``touched`` changed (every other entry is shared)."""
        domain, home, _ = self._conf
        hosts, bare = self.hosts.mutate(), self.bare.mutate()
        names = set()
        for ns, name in touched:
            ports = services.get((ns, name))
            for form in (f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.{domain}"):
                if ports is not None:
                    hosts[form.encode()] = ports
                elif form.encode() in hosts:
                    del hosts[form.encode()]
            spaces = set(bare.get(name, ()))
            (spaces.add if ports is not None else spaces.discard)(ns)
            if spaces:
                bare[name] = tuple(sorted(spaces))
            elif name in bare:
                del bare[name]
            names.add(name)
        for name in names:  # bare name: the home namespace's, else the only one, else none
            spaces = bare.get(name, ())
            owner = home if home in spaces else spaces[0] if len(spaces) == 1 else None
            if owner is not None:
                hosts[name.encode()] = services[(owner, name)]
            elif name.encode() in hosts:
                del hosts[name.encode()]
        return hosts.finish(), bare.finish()

    def _default(self, services: Map) -> Route | None:
        default_service = self._conf[2]
        if default_service is not None:
            ns, name, port = default_service
            return self._port_choice(services.get((ns, name)), port)
        if len(services) == 1:
            return self._port_choice(next(iter(services.values())), None)
        return None

    @staticmethod
    def _port_choice(ports: dict[int, Route] | None, port: int | None) -> Route | None:
        if not ports:
            return None
        if port is not None and port in ports:
            return ports[port]
        return ports[min(ports)]

    def lookup(self, host: bytes | None) -> Route | None:
        """Route for a Host header value (None → default route); None when nothing matches."""
        if host is None:
            return self.default
        cache = self._cache
        try:
            return cache[host]
        except KeyError:
            pass
        name, port = split_host_port(host)
        ports = self.hosts.get(name)
        route = self._port_choice(ports, port) if ports else self.default
        if len(cache) > _CACHE_MAX:
            cache.clear()
        cache[host] = route
        return route


def _count(authorities, old: Route | None, new: Route | None, dropped: set[str]) -> None:
    """Move the per-address route counts from ``old``'s endpoints to ``new``'s (set diff)."""
    before = old.authorities if old is not None else frozenset()
    after = new.authorities if new is not None else frozenset()
    for authority in before - after:
        left = authorities[authority] - 1
        if left:
            authorities[authority] = left
        else:
            del authorities[authority]
            dropped.add(authority)
    for authority in after - before:
        authorities[authority] = authorities.get(authority, 0) + 1
