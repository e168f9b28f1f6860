"""From merged DestinationRules to the table ``Policy`` for one service port and subset.

Precedence, exactly as Istio builds a cluster (``MergeTrafficPolicy``): start from the top-level
policy; a top-level ``portLevelSettings`` entry for the port (first match) replaces its
loadBalancer/connectionPool/outlierDetection/tls *wholesale* (unset = default, not inherited);
a subset's policy then overrides field by field (a set ``loadBalancer`` replaces the whole
object), and the subset's own port-level entry replaces the four fields wholesale again. So per
field: subset port-level > subset > DR port-level > DR top level.

The hash key is chosen as Istio's route builder does: the first *non-nil* ``consistentHash`` in
that same order, the port-level ones included (Istio only consults them when a VirtualService
names the port, istio/istio#41257; tether always does, since tables are per port).

Translation (shared/reference/envoy-hashing.md §9):

- ``maglev`` -> ``maglev``; ``tableSize`` 0 means Envoy's default 65537;
- ``ringHash`` -> ``ring-hash``, ``minimumRingSize`` 0 -> 1024; neither -> ``ring-hash`` with the
  deprecated ``minimumRingSize`` or 1024; ``maxRingSize`` 8388608 and xxHash, as Envoy defaults;
- cookie/header/sourceIp/query-parameter keys map one to one; cookie ``ttl`` absent -> never
  generate (``ttlSeconds`` None), ``0s`` -> session cookie; ``useSourceIp: false`` or no key ->
  no key (Envoy then picks a random host);
- no consistentHash -> ``simple`` with the SimpleLB name; UNSPECIFIED and the deprecated
  LEAST_CONN become LEAST_REQUEST (as Istio), PASSTHROUGH stays, and ``backendUtilization``
  becomes ROUND_ROBIN. The gateway implements ROUND_ROBIN, RANDOM and LEAST_REQUEST (two random
  choices) and treats anything else as ROUND_ROBIN.

tether extensions come from the rule's annotations (see ``tether.models.tether_annotations``):
``tether.dev/hash-balance-factor``, ``tether.dev/algorithm: ketama`` and
``tether.dev/maglev-table-size: auto``. An auto Maglev table is published with
``tableSize`` None until ``resolve_policy`` fills it in from the endpoint count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tether.models.destinationrule import (
    ConsistentHashLB,
    LoadBalancerSettings,
    TrafficPolicy,
)
from tether.models.primes import next_prime, previous_prime
from tether.models.table import CookieAttribute, HashKey, Policy
from tether.models.tether_annotations import parse_tether_annotations
from tether.reconcile.hosts import (
    host_matches,
    resolve_host,
    rules_for_service,
    service_host,
)
from tether.reconcile.merge import MergedRule, Shadowed, merge_rules

__all__ = [
    "ENVOY_DEFAULT_MAGLEV_TABLE_SIZE",
    "EffectiveLoadBalancer",
    "MergedRule",
    "Shadowed",
    "auto_maglev_table_size",
    "effective_load_balancer",
    "host_matches",
    "merge_rules",
    "resolve_host",
    "resolve_policy",
    "rules_for_service",
    "service_host",
    "to_policy",
]

ENVOY_DEFAULT_MAGLEV_TABLE_SIZE = 65537
ENVOY_DEFAULT_MIN_RING_SIZE = 1024
ENVOY_DEFAULT_MAX_RING_SIZE = 8388608
MAGLEV_TABLE_LIMIT = 5000011  # Istio: tableSize must be less than this
_SIMPLE_ALIASES = {"UNSPECIFIED": "LEAST_REQUEST", "LEAST_CONN": "LEAST_REQUEST"}


@dataclass(frozen=True)
class EffectiveLoadBalancer:
    """What Envoy would get for one cluster: its load balancer and the route's hash policy."""

    settings: LoadBalancerSettings | None  # cluster-level lb, None = Istio defaults
    hash: ConsistentHashLB | None  # route-level hash source, None = no hash policy
    origin: str  # where ``settings`` came from, e.g. "subset v2 port 9080"


def _port_merged(
    policy: TrafficPolicy | None, port: int
) -> tuple[LoadBalancerSettings | None, bool]:
    """(load balancer, from port-level?) of ``policy`` for ``port``: Istio's port-level replace."""
    if policy is None:
        return None, False
    entry = policy.port_policy(port)
    if entry is not None:
        return entry.load_balancer, True
    return policy.load_balancer, False


def _hash_of(lb: LoadBalancerSettings | None) -> ConsistentHashLB | None:
    return lb.consistent_hash if lb is not None else None


def effective_load_balancer(
    rule: MergedRule | None, port: int, subset: str | None = None
) -> EffectiveLoadBalancer:
    """The load balancer and hash source for ``port``/``subset``, Istio's precedence.

    Raises KeyError for a subset the merged rule does not define (Istio builds no cluster).
    """
    top = rule.traffic_policy if rule is not None else None
    settings, from_port = _port_merged(top, port)
    origin = f"port {port}" if from_port else "top level"
    top_entry = top.port_policy(port) if top is not None else None
    hashes = [
        _hash_of(top_entry.load_balancer) if top_entry else None,
        _hash_of(top.load_balancer) if top else None,
    ]
    if subset is not None:
        defined = rule.subset(subset) if rule is not None else None
        if defined is None:
            raise KeyError(f"subset {subset!r} is not defined")
        sp = defined.traffic_policy
        if sp is not None:
            if sp.load_balancer is not None:
                settings, origin = sp.load_balancer, f"subset {subset}"
            entry = sp.port_policy(port)
            if entry is not None:
                settings, origin = entry.load_balancer, f"subset {subset} port {port}"
            hashes = [
                _hash_of(entry.load_balancer) if entry else None,
                _hash_of(sp.load_balancer),
                *hashes,
            ]
    chosen = next((h for h in hashes if h is not None), None)
    return EffectiveLoadBalancer(settings, chosen, origin)


def _hash_key(ch: ConsistentHashLB | None) -> HashKey | None:
    if ch is None:
        return None
    if ch.http_header_name is not None:
        return HashKey(kind="header", name=ch.http_header_name)
    if ch.http_query_parameter_name is not None:
        return HashKey(kind="queryParameter", name=ch.http_query_parameter_name)
    if ch.use_source_ip:
        return HashKey(kind="sourceIp")
    cookie = ch.http_cookie
    if cookie is None:
        return None
    attributes = tuple(
        CookieAttribute(name=a.name, value=a.value) for a in cookie.attributes if a is not None
    )
    return HashKey(
        kind="cookie",
        name=cookie.name,
        path=cookie.path,
        ttlSeconds=cookie.ttl.seconds if cookie.ttl is not None else None,
        attributes=attributes,
    )


def _simple(lb: LoadBalancerSettings | None) -> Policy:
    name = "UNSPECIFIED"
    if lb is not None and lb.simple is not None:
        name = lb.simple
    elif lb is not None and lb.backend_utilization is not None:
        name = "ROUND_ROBIN"
    return Policy(type="simple", simple=_SIMPLE_ALIASES.get(name, name))


def to_policy(lb: EffectiveLoadBalancer, annotations: Mapping[str, str] | None = None) -> Policy:
    """Translate to the table Policy as Istio -> Envoy would; tether annotations applied.

    Call it for valid rules only (``tether.models.validation.validate``): it raises ValueError
    for what validation rejects (bad annotations, empty header name).
    """
    options, errors = parse_tether_annotations(annotations or {})
    if errors:
        raise ValueError("; ".join(errors))
    settings = lb.settings
    ch = settings.consistent_hash if settings is not None else None
    if ch is None:
        return _simple(settings)
    key = _hash_key(lb.hash)
    common = {
        "type": "consistentHash",
        "hashKey": key,
        "hashBalanceFactor": options.hash_balance_factor,
    }
    if options.algorithm == "ketama":
        return Policy(algorithm="ketama", **common)
    if ch.maglev is not None:
        size = (
            None
            if options.maglev_table_size_auto
            else ch.maglev.table_size or ENVOY_DEFAULT_MAGLEV_TABLE_SIZE
        )
        return Policy(algorithm="maglev", tableSize=size, **common)
    if ch.ring_hash is not None:
        min_ring = ch.ring_hash.minimum_ring_size or ENVOY_DEFAULT_MIN_RING_SIZE
    else:
        min_ring = ch.minimum_ring_size or ENVOY_DEFAULT_MIN_RING_SIZE
    return Policy(
        algorithm="ring-hash",
        minRingSize=min_ring,
        maxRingSize=ENVOY_DEFAULT_MAX_RING_SIZE,
        hashFunction="xx-hash",
        **common,
    )


def auto_maglev_table_size(n_endpoints: int) -> int:
    """Smallest prime >= 100 x endpoints (at least 101), capped below Istio's 5000011 limit."""
    return min(next_prime(100 * max(n_endpoints, 1)), previous_prime(MAGLEV_TABLE_LIMIT - 1))


def resolve_policy(policy: Policy, n_endpoints: int) -> Policy:
    """Fill an auto Maglev ``tableSize`` for ``n_endpoints``; any other policy is returned as is."""
    if policy.algorithm == "maglev" and policy.table_size is None:
        return policy.model_copy(update={"table_size": auto_maglev_table_size(n_endpoints)})
    return policy
