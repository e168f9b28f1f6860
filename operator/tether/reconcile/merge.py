"""Several DestinationRules for one host, merged as Istio's ``mergeDestinationRule`` does.

- Order: ``creationTimestamp`` ascending (oldest first), then name, then namespace.
- Subsets are concatenated by name; for a duplicate name the first (oldest) definition wins and
  later ones are dropped whole (no field merge).
- The top-level ``trafficPolicy`` is taken whole from the first rule that has one; later
  top-level policies are ignored whole. (So a newer rule's policy applies when every older rule
  for the host only adds subsets.)

Callers pass only valid rules: an invalid rule is one Istio's webhook would have refused, so it
never takes part in a merge (the operator keeps the last good table for it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tether.models.destinationrule import DestinationRule, Subset, TrafficPolicy

_LATEST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Shadowed:
    """A part of a rule that the merge ignored, and the rule that won instead."""

    rule: str  # namespace/name of the ignored rule
    part: str  # "trafficPolicy" or "subset <name>"
    winner: str  # namespace/name of the rule whose definition is used


@dataclass(frozen=True)
class MergedRule:
    host: str
    rules: tuple[DestinationRule, ...]  # precedence order, oldest first
    traffic_policy: TrafficPolicy | None
    policy_rule: DestinationRule | None  # the rule whose top-level trafficPolicy is used
    subsets: tuple[Subset, ...]
    subset_rules: Mapping[str, DestinationRule] = field(default_factory=dict)
    shadowed: tuple[Shadowed, ...] = ()

    @property
    def primary(self) -> DestinationRule:
        """The oldest rule (Istio keeps its exportTo and identity for the merged rule)."""
        return self.rules[0]

    def subset(self, name: str) -> Subset | None:
        """The subset definition that won for ``name``, or None."""
        return next((s for s in self.subsets if s.name == name), None)

    def source(self, subset: str | None = None) -> DestinationRule:
        """The rule a table is attributed to: the subset's rule, else the policy's, else oldest."""
        if subset is not None and subset in self.subset_rules:
            return self.subset_rules[subset]
        return self.policy_rule or self.primary

    def annotations(self, subset: str | None = None) -> Mapping[str, str]:
        """tether annotations to honour for a table: those of ``source(subset)``."""
        return self.source(subset).metadata.annotations


def precedence_key(rule: DestinationRule) -> tuple[datetime, str, str]:
    """Istio's sort: creationTimestamp ascending, then name, then namespace."""
    created = rule.metadata.creation_timestamp or _LATEST
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return (created, rule.name, rule.namespace)


def merge_rules(rules: Iterable[DestinationRule], host: str | None = None) -> MergedRule | None:
    """Merge rules for one host (as returned by ``rules_for_service``); None when there are none.

    Invariant: the result depends only on the set of rules, never on the order given.
    """
    ordered = tuple(sorted(rules, key=precedence_key))
    if not ordered:
        return None
    policy: TrafficPolicy | None = None
    policy_rule: DestinationRule | None = None
    subsets: list[Subset] = []
    subset_rules: dict[str, DestinationRule] = {}
    shadowed: list[Shadowed] = []
    for rule in ordered:
        if rule.spec.traffic_policy is not None:
            if policy_rule is None:
                policy, policy_rule = rule.spec.traffic_policy, rule
            else:
                shadowed.append(Shadowed(rule.key, "trafficPolicy", policy_rule.key))
        for subset in rule.spec.subsets:
            if subset is None:
                continue
            if subset.name in subset_rules:
                winner = subset_rules[subset.name].key
                shadowed.append(Shadowed(rule.key, f"subset {subset.name}", winner))
                continue
            subsets.append(subset)
            subset_rules[subset.name] = rule
    return MergedRule(
        host=host if host is not None else ordered[0].spec.host,
        rules=ordered,
        traffic_policy=policy,
        policy_rule=policy_rule,
        subsets=tuple(subsets),
        subset_rules=subset_rules,
        shadowed=tuple(shadowed),
    )
