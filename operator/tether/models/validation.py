"""Validate a DestinationRule: Istio's rules first, then tether's own.

``validate(dr)`` runs Istio's webhook rules (``istio_validation``) and then checks that Istio
accepts but Envoy would reject or tether cannot honour, each with a message that says so
(``STRICTER_THAN_ISTIO`` lists them with their reason; the README shows the same table):

- ``httpHeaderName: ""`` / ``httpQueryParameterName: ""`` (Envoy requires a non-empty name);
- ``maglev.tableSize: 1`` (Envoy's ``isPrime`` passes 1, then its Maglev build computes
  ``hash % (tableSize - 1)``, a division by zero);
- tables beyond tether's per-rule budget (``table_cost``): a rule's tables are built in one pass
  of the operator, so one huge rule must not delay every other Service; this also bounds a
  single ring to 65536 entries (Envoy accepts up to 8388608), the largest that still ships in a
  ConfigMap instead of being rebuilt by every gateway;
- unusable ``tether.dev/*`` annotations (see ``tether_annotations``).

An invalid rule must never change a published table: the operator sets ``Ready=False``, reason
``Invalid``, message ``result.message``, and keeps the last good table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tether.models.destinationrule import (
    DestinationRule,
    DestinationRuleParseError,
    LoadBalancerSettings,
    TrafficPolicy,
    parse_destination_rule,
)
from tether.models.go_errors import Err, Validation, append_validation
from tether.models.istio_validation import validate_istio
from tether.models.tether_annotations import TetherOptions, parse_tether_annotations

TABLE_BUDGET = 1 << 21  # weighted table entries per service port for one rule (~1 s to plan)
RING_ENTRY_WEIGHT = 32  # a ring entry costs ~32 Maglev slots to build, encode and compare
TABLE_BASE_COST = 4096  # any table, even round robin: endpoints, document, checksum
DEFAULT_RING, DEFAULT_MAGLEV = 1024, 65537
STRICTER_THAN_ISTIO: tuple[tuple[str, str], ...] = (
    ("httpHeaderName must not be empty", "Envoy rejects an empty header name"),
    ("httpQueryParameterName must not be empty", "Envoy rejects an empty parameter name"),
    (
        "tableSize 1 is not usable for maglev",
        "Envoy's isPrime passes 1, then its Maglev build divides by tableSize - 1 (zero)",
    ),
    (
        "tables too large for tether",
        "one rule's tables are planned in one pass; a bounded cost keeps every other "
        "Service's tables on time (also caps a ring at 65536 entries, the most a ConfigMap holds)",
    ),
    ("annotation tether.dev/", "tether's own options must be usable"),
)
INVALID_PREFIX = "configuration is invalid: "
DECODE_PREFIX = "error decoding configuration: "


@dataclass(frozen=True)
class ValidationResult:
    """Errors (the rule must not be used) and warnings (used, but worth telling the user)."""

    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    error_text: str = ""  # Go ``err.Error()`` of the aggregated errors, exactly as Istio prints
    prefix: str = INVALID_PREFIX

    @property
    def valid(self) -> bool:
        """True iff there are no errors (warnings never make a rule invalid)."""
        return not self.errors

    @property
    def message(self) -> str:
        """What Istio's webhook answers (``configuration is invalid: ...``), trailing newlines
        trimmed so it fits a status condition; empty when valid."""
        return (self.prefix + self.error_text).rstrip("\n") if self.errors else ""

    @staticmethod
    def from_validation(v: Validation) -> ValidationResult:
        """Flatten Istio's Validation, keeping its exact error text."""
        return ValidationResult(v.err.messages, v.warning.messages, v.err.text())


def load_balancers(dr: DestinationRule) -> Iterator[LoadBalancerSettings]:
    """Every loadBalancer in the rule: top level, port level, subsets and their port level."""
    policies = [dr.spec.traffic_policy]
    policies += [s.traffic_policy for s in dr.spec.subsets if s is not None]
    for policy in policies:
        if policy is None:
            continue
        if policy.load_balancer is not None:
            yield policy.load_balancer
        for entry in policy.port_level_settings:
            if entry is not None and entry.load_balancer is not None:
                yield entry.load_balancer


def _lb_cost(lb: LoadBalancerSettings | None, options: TetherOptions) -> int:
    """Weighted entries of the table one loadBalancer asks for (see TABLE_BUDGET)."""
    ch = lb.consistent_hash if lb is not None else None
    if ch is None:
        return TABLE_BASE_COST
    if ch.maglev is not None and options.algorithm is None:
        size = DEFAULT_MAGLEV if options.maglev_table_size_auto else ch.maglev.table_size
        return max(TABLE_BASE_COST, size)
    ring = ch.ring_hash.minimum_ring_size if ch.ring_hash is not None else ch.minimum_ring_size
    return RING_ENTRY_WEIGHT * max(ring, DEFAULT_RING)


def _policy_lbs(policy: TrafficPolicy | None) -> list[LoadBalancerSettings | None]:
    if policy is None:
        return [None]
    return [policy.load_balancer] + [e.load_balancer for e in policy.port_level_settings]


def table_cost(dr: DestinationRule, options: TetherOptions) -> int:
    """Upper bound of the weighted table entries one service port of this rule needs: the
    top-level table plus one per subset, each at its largest candidate (port-level or not)."""
    top = _policy_lbs(dr.spec.traffic_policy)
    cost = max(_lb_cost(lb, options) for lb in top)
    for subset in dr.spec.subsets:
        policy = subset.traffic_policy
        own = _policy_lbs(policy) if policy and policy.load_balancer else []
        cost += max(_lb_cost(lb, options) for lb in [*own, *top])
    return cost


def _tether_errors(dr: DestinationRule) -> list[str]:
    errors: list[str] = []
    options, annotation_errors = parse_tether_annotations(dr.metadata.annotations)
    for lb in load_balancers(dr):
        ch = lb.consistent_hash
        if ch is None:
            continue
        if ch.http_header_name == "":
            errors.append("httpHeaderName must not be empty (Envoy rejects an empty header name)")
        if ch.http_query_parameter_name == "":
            errors.append(
                "httpQueryParameterName must not be empty (Envoy rejects an empty parameter name)"
            )
        if ch.maglev is not None and ch.maglev.table_size == 1:
            errors.append(
                "tableSize 1 is not usable for maglev (Envoy would divide by tableSize - 1)"
            )
    cost = table_cost(dr, options)
    if cost > TABLE_BUDGET:
        errors.append(
            f"tables too large for tether: {cost} weighted entries per service port (a ring "
            f"entry counts {RING_ENTRY_WEIGHT}, a Maglev slot 1, any table at least "
            f"{TABLE_BASE_COST}), over the budget of {TABLE_BUDGET} per rule"
        )
    return errors + annotation_errors


def validate(dr: DestinationRule, *, stricter: bool = True) -> ValidationResult:
    """Istio's errors and warnings, then (``stricter``, and only when Istio accepts) tether's own
    errors; ``valid`` iff Istio and tether accept. ``stricter=False`` gives Istio's verdict."""
    v = validate_istio(dr)
    # tether's own checks judge only what Istio accepts, so a rule Istio refuses gets exactly
    # Istio's message
    for message in _tether_errors(dr) if stricter and not v.err else ():
        v = append_validation(v, message)
    return ValidationResult.from_validation(v)


def check(obj: Any, *, stricter: bool = True) -> tuple[DestinationRule | None, ValidationResult]:
    """Decode and validate a raw object; the rule is None when it cannot be decoded."""
    try:
        dr = parse_destination_rule(obj)
    except DestinationRuleParseError as exc:
        err = Err.of(str(exc))
        return None, ValidationResult(err.messages, (), err.text(), DECODE_PREFIX)
    return dr, validate(dr, stricter=stricter)
