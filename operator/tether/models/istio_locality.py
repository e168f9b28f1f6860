"""Istio's checks of ``localityLbSetting`` and ``zoneAwareLbSetting`` (rules #24-#29).

Mirrors ``agent.ValidateLocalityLbSetting`` and ``agent.ValidateZoneAwareLbSetting`` (1.31):
the first structural problem of a locality setting returns at once, the
missing-outlier-detection notice is a *warning*, failover entries are all checked. Go iterates
maps in random order; tether uses the document order, so with several bad weights the message
is Istio's for one of the possible orders.
"""

from __future__ import annotations

from tether.models.destinationrule import (
    LocalityLoadBalancerSetting,
    ZoneAwareLoadBalancerSetting,
)
from tether.models.go_errors import Validation, append_validation, warning

TOPOLOGY_LABELS = (
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
)
_FAILOVER_WARNING = "outlier detection policy must be provided for failover"


def _locality_param(locality: str) -> tuple[str, str, str, int] | None:
    items = locality.split("/", 2)
    if any(item == "" for item in items):
        return None
    padded = [*items, "", ""]
    return padded[0], padded[1], padded[2], len(items) - 1


def validate_localities(localities: list[str]) -> str | None:
    """Istio ``validateLocalities``: one wildcard at the end, no empty part, no overlap."""
    seen: dict[str, dict[str, dict[str, bool]]] = {}
    for locality in localities:
        overlap = f"locality {locality} overlap with previous specified ones"
        stars = locality.count("*")
        if stars and (stars > 1 or not locality.endswith("*")):
            return (
                f"locality {locality} wildcard '*' number can not exceed 1 and must be in the end"
            )
        if "*" in seen:
            return overlap
        param = _locality_param(locality)
        if param is None:
            return f"locality {locality} must not contain empty region/zone/subzone info"
        region, zone, subzone, index = param
        if index == 0:
            if region in seen:
                return overlap
            seen[region] = {"*": {"*": True}}
        elif index == 1:
            if region in seen:
                if "*" in seen[region] or zone in seen[region]:
                    return overlap
                seen[region][zone] = {"*": True}
            else:
                seen[region] = {zone: {"*": True}}
        elif region in seen:
            if "*" in seen[region]:
                return overlap
            if zone in seen[region]:
                zones = seen[region][zone]
                if zones.get("*") or zones.get(subzone):
                    return overlap
                zones[subzone] = True
            else:
                seen[region][zone] = {subzone: True}
        else:
            seen[region] = {zone: {subzone: True}}
    return None


def validate_locality_lb(
    lb: LocalityLoadBalancerSetting | None, has_outlier_detection: bool
) -> Validation:
    """Istio ``ValidateLocalityLbSetting`` (errors #25-#27, #29; warning #28)."""
    v = Validation()
    if lb is None:
        return v
    if lb.distribute and lb.failover:
        return append_validation(v, "can not simultaneously specify 'distribute' and 'failover'")
    if lb.failover and lb.failover_priority:
        for label in lb.failover_priority:
            if label in TOPOLOGY_LABELS:
                return append_validation(
                    v,
                    f"can not simultaneously set 'failover' and topology label '{label}' "
                    "in 'failover_priority'",
                )
    sources: list[str] = []
    for entry in lb.distribute:
        sources.append(entry.from_)
        for weight in entry.to.values():
            if weight <= 0 or weight > 100:
                return append_validation(v, "locality weight must be in range [1, 100]")
        total = sum(entry.to.values()) % (1 << 32)  # Go sums into a uint32
        if total != 100:
            return append_validation(v, f"total locality weight {total} != 100")
        v = append_validation(v, validate_localities(list(entry.to)))
    v = append_validation(v, validate_localities(sources))
    if (lb.failover or lb.failover_priority) and not has_outlier_detection:
        v = append_validation(v, warning(_FAILOVER_WARNING))
    for failover in lb.failover:
        if failover.from_ == failover.to:
            v = append_validation(v, "locality lb failover settings must specify different regions")
        if "/" in failover.from_ or "/" in failover.to:
            v = append_validation(v, "locality lb failover only specify region")
        if "*" in failover.to or "*" in failover.from_:
            v = append_validation(v, "locality lb failover region should not contain '*' wildcard")
    return v


def validate_zone_aware_lb(
    za: ZoneAwareLoadBalancerSetting | None, has_outlier_detection: bool
) -> Validation:
    """Istio ``ValidateZoneAwareLbSetting``: no topology label in ``failoverPriority``, the
    missing-outlier-detection warning, then every failover entry (all checked, none returns)."""
    v = Validation()
    if za is None:
        return v
    for label in za.failover_priority:
        if label in TOPOLOGY_LABELS:
            v = append_validation(
                v,
                f"'failover_priority' for zone aware lb must not use topology label '{label}'; "
                "region- and zone-level routing are handled automatically",
            )
    if (za.failover or za.failover_priority) and not has_outlier_detection:
        v = append_validation(v, warning(_FAILOVER_WARNING))
    for failover in za.failover:
        if failover.from_ == failover.to:
            v = append_validation(
                v, "zone aware lb failover settings must specify different regions"
            )
        if "/" in failover.from_ or "/" in failover.to:
            v = append_validation(
                v,
                "zone aware lb failover only specifies region; zone and subzone failover are "
                "handled automatically",
            )
        if "*" in failover.to or "*" in failover.from_:
            v = append_validation(
                v, "zone aware lb failover region should not contain '*' wildcard"
            )
    return v
