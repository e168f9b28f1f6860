"""The status tether writes on a DestinationRule, computed from the plans it took part in.

Pure: the caller passes the rule's current status and gets back the new one, or None when
nothing changed (so a status write never triggers another write). ``lastTransitionTime`` only
moves when the Ready condition's status or reason changes.

Status fields (also shown by ``kubectl get dr`` printer columns):
``observedGeneration``, ``conditions`` (one ``Ready``), ``services``, ``endpoints``,
``algorithm``, ``tableSize``, ``checksum`` and ``keysMoved`` of the rule's first table (the
first port of the first Service, no subset), and ``tables``: one entry per published table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tether.models.validation import ValidationResult
from tether.reconcile.plan import RuleOutcome, ServicePlan, TableOutcome


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reason: str
    message: str


def _table_entry(out: TableOutcome, moved: Mapping[str, float]) -> dict[str, Any]:
    doc, policy = out.doc, out.doc.policy
    entry: dict[str, Any] = {
        "configMap": out.name,
        "service": f"{doc.service.namespace}/{doc.service.name}",
        "port": doc.service.port,
        "endpoints": out.ready_endpoints,
        "algorithm": policy.algorithm or (policy.simple or "").lower(),
        "checksum": doc.checksum,
    }
    if doc.subset:
        entry["subset"] = doc.subset
    if doc.table is not None:
        entry["tableSize"] = doc.table.size
    if out.name in moved:
        entry["keysMoved"] = round(moved[out.name], 4)
    return entry


def verdict(result: ValidationResult | None, outcomes: list[RuleOutcome], host: str) -> Verdict:
    """The Ready condition: invalid beats everything; no matching Service is not Ready."""
    if result is not None and not result.valid:
        message = result.message
        frozen = [o for o in outcomes if o.tables]
        if frozen:
            message += "; published tables keep the last valid generation's policy"
        return Verdict(False, "Invalid", message)
    blocked = [o for o in outcomes if o.reason == "Blocked"]
    if blocked:
        return Verdict(False, "Blocked", blocked[0].message)
    if not outcomes:
        return Verdict(False, "NoMatchingService", f"no Service matches host {host}")
    merged = [o.message for o in outcomes if o.reason == "Merged" and o.message]
    if merged:
        return Verdict(True, "Merged", "; ".join(dict.fromkeys(merged)))
    n = sum(len(o.tables) for o in outcomes)
    return Verdict(True, "Published", f"{n} table{'s' if n != 1 else ''} published")


def compute(
    *,
    key: str,
    generation: int | None,
    host: str,
    result: ValidationResult | None,
    plans: Mapping[tuple[str, str], ServicePlan],
    moved: Mapping[str, float],
    current: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any] | None:
    """The new status of rule ``key``, or None when ``current`` already says all of it."""
    outcomes = [p.rules[key] for p in plans.values() if key in p.rules]
    v = verdict(result, outcomes, host)
    tables = []
    for svc_key in sorted(plans):
        plan = plans[svc_key]
        names = set(plan.rules[key].tables) if key in plan.rules else set()
        tables += [_table_entry(plan.tables[n], moved) for n in sorted(names) if n in plan.tables]
    tables.sort(key=lambda e: (e["service"], e["port"], e.get("subset", "")))
    current = dict(current or {})
    old = next((c for c in current.get("conditions") or () if c.get("type") == "Ready"), {})
    status_word = "True" if v.ready else "False"
    transition = (
        old.get("lastTransitionTime")
        if (old.get("status") == status_word and old.get("reason") == v.reason)
        else now
    )
    new: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": [
            {
                "type": "Ready",
                "status": status_word,
                "reason": v.reason,
                "message": v.message,
                "observedGeneration": generation,
                "lastTransitionTime": transition or now,
            }
        ],
        "services": sorted({e["service"] for e in tables}),
        "tables": tables,
    }
    first = next((e for e in tables if "subset" not in e), tables[0] if tables else None)
    for field_name in ("endpoints", "algorithm", "tableSize", "checksum", "keysMoved"):
        new[field_name] = first.get(field_name) if first else None
    if result is not None and result.warnings:
        new["warnings"] = list(result.warnings)
    else:
        new["warnings"] = None
    if all(current.get(k) == v2 for k, v2 in new.items()):
        return None
    return new


def is_new_invalid(current: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """True when ``new`` turns the rule Invalid or changes its Invalid message (warn once)."""

    def ready(s):
        return next((c for c in (s or {}).get("conditions") or () if c.get("type") == "Ready"), {})

    a, b = ready(current), ready(new)
    return b.get("reason") == "Invalid" and (a.get("reason"), a.get("message")) != (
        b.get("reason"),
        b.get("message"),
    )
