"""From merged DestinationRules to the table ``Policy`` for one service port and subset.

Precedence (which load balancer and hash key apply) lives in ``precedence``.

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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tether.hashing import auto_table_size
from tether.models.destinationrule import (
    ConsistentHashLB,
    DestinationRule,
    LoadBalancerSettings,
)
from tether.models.table import CookieAttribute, HashKey, Policy
from tether.models.tether_annotations import parse_tether_annotations
from tether.reconcile.hosts import (
    DEFAULT_DOMAIN,
    DEFAULT_ROOT_NAMESPACE,
    host_matches,
    resolve_host,
    rules_for_service,
    service_host,
)
from tether.reconcile.merge import MergedRule, Shadowed, merge_rules
from tether.reconcile.precedence import EffectiveLoadBalancer, effective_load_balancer

__all__ = [
    "ENVOY_DEFAULT_MAGLEV_TABLE_SIZE",
    "EffectiveLoadBalancer",
    "MergedRule",
    "ServicePolicy",
    "Shadowed",
    "auto_maglev_table_size",
    "effective_load_balancer",
    "host_matches",
    "merge_rules",
    "resolve_host",
    "resolve_policy",
    "rules_for_service",
    "service_host",
    "service_policy",
    "to_policy",
]

ENVOY_DEFAULT_MAGLEV_TABLE_SIZE = 65537
ENVOY_DEFAULT_MIN_RING_SIZE = 1024
ENVOY_DEFAULT_MAX_RING_SIZE = 8388608
MAGLEV_TABLE_LIMIT = 5000011  # Istio: tableSize must be less than this
_SIMPLE_ALIASES = {"UNSPECIFIED": "LEAST_REQUEST", "LEAST_CONN": "LEAST_REQUEST"}


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
    """The first ladder prime >= 100 x endpoints (65537, then primes near 65537·2^k, 5000011).

    Not simply the smallest prime >= 100·N: a table size that follows N changes on every scale
    event and then remaps nearly every key (measured: 75-99.8 % per step, `make bench`). The
    ladder keeps 65537 up to 655 endpoints and moves only when N crosses a step.
    """
    return auto_table_size(max(n_endpoints, 1), ladder=True)


def resolve_policy(policy: Policy, n_endpoints: int) -> Policy:
    """Fill an auto Maglev ``tableSize`` for ``n_endpoints``; any other policy is returned as is."""
    if policy.algorithm == "maglev" and policy.table_size is None:
        return policy.model_copy(update={"table_size": auto_maglev_table_size(n_endpoints)})
    return policy


@dataclass(frozen=True)
class ServicePolicy:
    """The policy for one service port/subset and where it came from."""

    policy: Policy
    merged: MergedRule | None  # None: no DestinationRule applies (Istio defaults)
    source: DestinationRule | None  # the rule the table is attributed to

    @property
    def shadowed(self) -> tuple[Shadowed, ...]:
        """Parts of other rules for the same host that the merge ignored."""
        return self.merged.shadowed if self.merged is not None else ()


def service_policy(
    valid_rules: Iterable[DestinationRule],
    namespace: str,
    name: str,
    port: int,
    subset: str | None = None,
    *,
    domain: str = DEFAULT_DOMAIN,
    root_namespace: str | None = DEFAULT_ROOT_NAMESPACE,
) -> ServicePolicy:
    """Select, merge and translate in one call; Istio's defaults when no rule applies.

    Pass only rules that passed validation. Raises KeyError for an undefined subset.
    """
    rules = rules_for_service(
        valid_rules, namespace, name, domain=domain, root_namespace=root_namespace
    )
    merged = None
    if rules:
        merged = merge_rules(rules, resolve_host(rules[0].spec.host, rules[0].namespace, domain))
    effective = effective_load_balancer(merged, port, subset)
    if merged is None:
        return ServicePolicy(to_policy(effective), None, None)
    policy = to_policy(effective, merged.annotations(subset))
    return ServicePolicy(policy, merged, merged.source(subset))
