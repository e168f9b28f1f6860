"""Validate a DestinationRule: Istio's rules first, then tether's own.

``validate(dr)`` runs Istio's webhook rules (``istio_validation``) and then checks that Istio
accepts but Envoy would reject or tether cannot honour, each with a message that says so:

- ``httpHeaderName: ""`` / ``httpQueryParameterName: ""`` (Envoy requires a non-empty name);
- a ring size above 8388608 (Envoy's ``ring_hash`` limit, the proxy would NACK it);
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
    parse_destination_rule,
)
from tether.models.go_errors import Err, Validation, append_validation
from tether.models.istio_validation import validate_istio
from tether.models.tether_annotations import parse_tether_annotations

ENVOY_MAX_RING_SIZE = 8388608
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


def _tether_errors(dr: DestinationRule) -> list[str]:
    errors: list[str] = []
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
        ring = max(ch.minimum_ring_size, ch.ring_hash.minimum_ring_size if ch.ring_hash else 0)
        if ring > ENVOY_MAX_RING_SIZE:
            errors.append(
                f"minimumRingSize {ring} exceeds Envoy's maximum ring size {ENVOY_MAX_RING_SIZE}"
            )
    errors += parse_tether_annotations(dr.metadata.annotations)[1]
    return errors


def validate(dr: DestinationRule) -> ValidationResult:
    """Istio's errors and warnings, then tether's errors; ``valid`` iff Istio and tether accept."""
    v = validate_istio(dr)
    for message in _tether_errors(dr):
        v = append_validation(v, message)
    return ValidationResult.from_validation(v)


def check(obj: Any) -> tuple[DestinationRule | None, ValidationResult]:
    """Decode and validate a raw object; the rule is None when it cannot be decoded."""
    try:
        dr = parse_destination_rule(obj)
    except DestinationRuleParseError as exc:
        err = Err.of(str(exc))
        return None, ValidationResult(err.messages, (), err.text(), DECODE_PREFIX)
    return dr, validate(dr)
