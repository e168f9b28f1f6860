"""Which endpoints a table holds, in which order.

Rules (documented in the README, "Endpoints"):
- A Service port P selects, in every EndpointSlice of the Service, the slice port with P's
  name (unnamed ports match the unnamed slice port); the endpoint's port is that slice port's
  number (the target port), as Envoy's EDS would list it.
- Only IPv4/IPv6 slices count (FQDN slices carry no routable address).
- An address listed twice (slices overlap while the controller moves endpoints) appears once;
  the most available copy wins (ready over serving over neither).
- Only ``ready`` endpoints are hashed. Terminating endpoints stay listed with their flags so
  the document shows them, but they take no new requests: they leave the table the moment they
  start terminating, as Envoy drops unhealthy hosts, while the kubelet lets their in-flight
  requests finish within the grace period.
- A subset keeps only endpoints whose Pod carries all of the subset's labels.
- Order is canonical (by host hash key), so the table never depends on the order in which the
  API lists slices or endpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tether.models.cluster import ServicePort, SliceInfo
from tether.models.table import Endpoint


def host_key(address: str, port: int) -> str:
    """The string Envoy hashes for a host: ``ip:port``, ``[v6]:port`` for IPv6."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _rank(ep: Endpoint) -> tuple[bool, bool, bool]:
    return (ep.ready, ep.serving, not ep.terminating)


def endpoints_for_port(
    port: ServicePort,
    slices: Iterable[SliceInfo],
    *,
    subset_labels: Mapping[str, str] | None = None,
    pod_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[Endpoint, ...]:
    """All endpoints of one Service port (optionally one subset), deduplicated, canonical order."""
    chosen: dict[str, Endpoint] = {}
    for sl in slices:
        if sl.address_type not in ("IPv4", "IPv6"):
            continue
        match = next((p for p in sl.ports if p.name == port.name), None)
        if match is None:
            continue
        for se in sl.endpoints:
            if subset_labels:
                labels = (pod_labels or {}).get(se.pod or "", {})
                if any(labels.get(k) != v for k, v in subset_labels.items()):
                    continue
            key = host_key(se.address, match.port)
            ep = Endpoint(
                address=se.address,
                port=match.port,
                pod=se.pod,
                ready=se.ready,
                serving=se.serving,
                terminating=se.terminating,
                hashKey=key,
            )
            old = chosen.get(key)
            if old is None or _rank(ep) > _rank(old):
                chosen[key] = ep
    return tuple(chosen[k] for k in sorted(chosen))
