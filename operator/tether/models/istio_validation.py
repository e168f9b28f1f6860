"""Istio's webhook validation of a DestinationRule (``ValidateDestinationRule``), rules #1-#39.

Same rules, same order, same messages, same error/warning split as Istio's
``pkg/config/validation``, for every field tether models (numbers refer to the table in
shared/reference/istio-destinationrule.md §3). Quirks mirrored on purpose:

- warnings raised inside ``portLevelSettings`` or a subset's policy are dropped (Istio folds them
  with ``appendErrors``, which keeps errors only);
- ``maglev.tableSize: 0`` gives two errors (#21 and #23), ``tableSize: 1`` is accepted;
- nothing checks a consistentHash without a key, ``ttl`` sign or precision, header/query names,
  ``ringHash.minimumRingSize`` range, duplicate or zero ``port.number``, ``useSourceIp: false``.

The non-load-balancing parts (outlierDetection, connectionPool, tls, tunnel, proxyProtocol) are
checked by ``istio_policy``. A ``null`` subset or port-level entry decodes as an empty one (see
``jsonpb``), so Istio's "may not be null" messages cannot occur for a rule read from JSON.
Held to Istio's own code by the corpus in tests/fixtures/istio-verdicts (``make istio-diff``).
"""

from __future__ import annotations

from tether.models.destinationrule import (
    DestinationRule,
    LoadBalancerSettings,
    PortTrafficPolicy,
    Subset,
    TrafficPolicy,
    WorkloadSelector,
)
from tether.models.go_errors import Err, Validation, append_errors, append_validation, warning
from tether.models.istio_locality import validate_locality_lb, validate_zone_aware_lb
from tether.models.istio_names import (
    go_quote,
    is_dns1123_label,
    validate_labels,
    validate_wildcard_domain,
)
from tether.models.istio_policy import (
    validate_connection_pool,
    validate_duration,
    validate_outlier_detection,
    validate_proxy_protocol,
    validate_tls,
    validate_tunnel,
)
from tether.models.primes import envoy_is_prime

MAGLEV_TABLE_LIMIT = 5000011
_SELECTOR = "destination rule with workload selector cannot have "
_SELECTOR_MULTIPLE = _SELECTOR + "multiple entries in exportTo"
_SELECTOR_BEYOND = _SELECTOR + "exportTo beyond current namespace"
DEPRECATED_RING_SIZE = (
    "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash "
    "configuration instead"
)


def validate_load_balancer(lb: LoadBalancerSettings | None, has_outlier: bool) -> Validation:
    """Istio ``validateLoadBalancer`` (#16-#24, #30-#33; locality #25-#29)."""
    v = Validation()
    if lb is None:
        return v
    ch = lb.consistent_hash
    if ch is not None:
        cookie = ch.http_cookie
        if cookie is not None:
            if cookie.name == "":
                v = append_validation(v, "name required for HttpCookie")
            names: set[str] = set()
            for attr in cookie.attributes:
                name = attr.name
                if name == "":
                    v = append_validation(v, "cookie attribute name cannot be empty")
                elif name in names:
                    v = append_validation(v, f"duplicate cookie attribute name: {name}")
                names.add(name)
        if ch.minimum_ring_size != 0:
            v = append_validation(v, warning(DEPRECATED_RING_SIZE))
        if ch.minimum_ring_size != 0 and (ch.ring_hash is not None or ch.maglev is not None):
            v = append_validation(
                v, "only one of MinimumRingSize or Maglev/Ringhash can be specified"
            )
        if ch.maglev is not None:
            size = ch.maglev.table_size
            if size == 0:
                v = append_validation(v, "tableSize must be set for maglev")
            if size >= MAGLEV_TABLE_LIMIT:
                v = append_validation(v, "tableSize must be less than 5000011 for maglev")
            if not envoy_is_prime(size):
                v = append_validation(v, "tableSize must be a prime number for maglev")
    if lb.locality_lb_setting is not None and lb.zone_aware_lb_setting is not None:
        v = append_validation(v, "only one of localityLbSetting and zoneAwareLbSetting can be set")
    v = append_validation(
        v,
        validate_locality_lb(lb.locality_lb_setting, has_outlier),
        validate_zone_aware_lb(lb.zone_aware_lb_setting, has_outlier),
    )
    warm = lb.warmup
    if warm is not None:
        if warm.duration is None:
            v = append_validation(v, "duration is required")
        else:
            v = append_validation(v, validate_duration(warm.duration))
        if warm.minimum_percent is not None and warm.minimum_percent > 100:
            v = append_validation(v, "minimumPercent value should be less than or equal to 100")
        if warm.aggression is not None and warm.aggression <= 0:
            v = append_validation(v, "aggression should be greater than 0")
    return v


def _validate_port_policies(namespace: str, entries: tuple[PortTrafficPolicy, ...]) -> Err:
    """Istio ``validatePortTrafficPolicies`` (#14, #15); errors only."""
    err = Err()
    for entry in entries:
        if entry.port is None:
            err = append_errors(err, "portTrafficPolicy must have valid port")
        fields = (entry.outlier_detection, entry.connection_pool, entry.load_balancer, entry.tls)
        if all(f is None for f in fields):
            err = append_errors(err, "port traffic policy must have at least one field")
        else:
            err = append_errors(
                err,
                validate_outlier_detection(entry.outlier_detection),
                validate_connection_pool(entry.connection_pool),
                validate_load_balancer(entry.load_balancer, entry.outlier_detection is not None),
                validate_tls(namespace, entry.tls),
            )
    return err


def validate_traffic_policy(namespace: str, policy: TrafficPolicy | None) -> Validation:
    """Istio ``validateTrafficPolicy`` (#11, #12, then every part, in Istio's order)."""
    if policy is None:
        return Validation()
    fields = (
        policy.outlier_detection,
        policy.connection_pool,
        policy.load_balancer,
        policy.tls,
        policy.port_level_settings or None,
        policy.tunnel,
        policy.proxy_protocol,
        policy.retry_budget,
    )
    if all(f is None for f in fields):
        return Validation(Err.of("traffic policy must have at least one field"))
    if policy.tunnel is not None and policy.proxy_protocol is not None:
        return Validation(Err.of("tunnel and proxyProtocol must not be set together"))
    return append_validation(
        validate_outlier_detection(policy.outlier_detection),
        validate_connection_pool(policy.connection_pool),
        validate_load_balancer(policy.load_balancer, policy.outlier_detection is not None),
        validate_tls(namespace, policy.tls),
        _validate_port_policies(namespace, policy.port_level_settings),
        validate_tunnel(policy.tunnel),
        validate_proxy_protocol(policy.proxy_protocol),
    )


def _validate_subset(namespace: str, subset: Subset) -> Err:
    """Istio ``validateSubset`` (#7-#10, then the subset policy; warnings dropped)."""
    if subset.name == "":
        name_error: str | None = "subset name cannot be empty"
    elif not is_dns1123_label(subset.name):
        name_error = f"subset name is invalid: {subset.name}"
    else:
        name_error = None
    return append_errors(
        Err.of(name_error),
        Err.multierror(validate_labels(subset.labels)),
        validate_traffic_policy(namespace, subset.traffic_policy),
    )


def _validate_export_to(namespace: str, export_to: tuple[str, ...], selector: bool) -> Err:
    """Istio ``validateExportTo`` for a DestinationRule (#34-#37)."""
    err = Err()
    if not export_to:
        return err
    seen: dict[str, None] = {}  # insertion-ordered set: linear in the number of entries
    for entry in export_to:
        key = namespace if entry == "." else entry
        if key in seen:
            if key != entry:
                message = f"duplicate entries in exportTo: . and current namespace {namespace}"
            else:
                message = f"duplicate entries in exportTo for entry {entry}"
            err = append_errors(err, message)
        elif key == "~":
            err = append_errors(
                err, "exportTo ~ (none) is not allowed for Istio configuration objects"
            )
        elif key != "*" and not is_dns1123_label(key):
            err = append_errors(
                err, "only .,*, or a valid DNS 1123 label is allowed as exportTo entry"
            )
        else:
            seen[key] = None
    if selector and seen:
        if namespace in seen:
            if len(seen) > 1:
                err = append_errors(err, _SELECTOR_MULTIPLE)
        else:
            err = append_errors(err, _SELECTOR_BEYOND)
    if "*" in seen and len(export_to) > 1:
        err = append_errors(
            err, "cannot have both public (*) and non-public exportTo values for a resource"
        )
    return err


def _validate_workload_selector(selector: WorkloadSelector | None) -> Validation:
    """Istio ``validateWorkloadSelector`` (#38 errors, #39 warning)."""
    v = Validation()
    if selector is None:
        return v
    for key, value in selector.match_labels.items():
        pair = go_quote(f"{key}={value}")
        if key == "":
            v = append_validation(v, f"empty key is not supported in selector: {pair}")
        if "*" in key or "*" in value:
            v = append_validation(v, f"wildcard is not supported in selector: {pair}")
    if not selector.match_labels:
        v = append_validation(v, warning("workload selector specified without labels"))
    return v


def validate_istio(dr: DestinationRule) -> Validation:
    """Istio ``ValidateDestinationRule``: the same errors and warnings, in Istio's order."""
    spec = dr.spec
    v = append_validation(
        Validation(),
        validate_wildcard_domain(spec.host),
        validate_traffic_policy(dr.namespace, spec.traffic_policy),
    )
    names: set[str] = set()
    for subset in spec.subsets:
        if subset.name in names:
            v = append_validation(v, f"duplicate subset names: {subset.name}")
        names.add(subset.name)
        v = append_validation(v, _validate_subset(dr.namespace, subset))
    has_selector = spec.workload_selector is not None
    v = append_validation(v, _validate_export_to(dr.namespace, spec.export_to, has_selector))
    return append_validation(v, _validate_workload_selector(spec.workload_selector))
