"""Which pods a ReplicaSet deletes when it scales down, as Kubernetes v1.34 ranks them.

``ActivePodsWithRanks.Less`` (pkg/controller/controller_utils.go) prefers for deletion, in order:
1. unassigned over assigned pods; 2. Pending < Unknown < Running; 3. not ready < ready;
4. lower ``controller.kubernetes.io/pod-deletion-cost``; 5. more active pods of the set on the
same node; 6. both ready: ready more recently, compared on a log2 scale of nanoseconds since
``now`` (same bucket: lower UID first); 7. more container restarts; 8. created more recently
(log2 scale, same bucket: lower UID). Equal timestamps fall through; a pair that no rule
separates is a tie, which Go's unstable sort leaves in any order.

The controller compares at the moment it syncs, which ``plan`` does not know: a comparison
that changes between ``now`` and ``now + horizon`` (a pod's age crossing a power of two) counts
as a tie, so the prediction enumerates both outcomes instead of guessing one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cmp_to_key

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE = {"Pending": 0, "Unknown": 1, "Running": 2}


@dataclass(frozen=True)
class PodFacts:
    """What the ReplicaSet controller looks at when it picks pods to delete."""

    name: str
    uid: str = ""
    node: str = ""
    phase: str = "Running"
    ready: bool = True
    ready_since: datetime | None = None
    created: datetime | None = None
    restarts: int = 0
    deletion_cost: int = 0


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def pod_facts(pod: Mapping) -> PodFacts:
    """Read PodFacts from a Pod object (as the API returns it, a dict)."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    ready = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"),
        {},
    )
    try:
        cost = int((meta.get("annotations") or {}).get(DELETION_COST, "0"))
    except ValueError:
        cost = 0
    is_ready = ready.get("status") == "True"
    return PodFacts(
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        node=spec.get("nodeName") or "",
        phase=status.get("phase") or "Pending",
        ready=is_ready,
        ready_since=_time(ready.get("lastTransitionTime")) if is_ready else None,
        created=_time(meta.get("creationTimestamp")),
        restarts=max(
            (c.get("restartCount", 0) for c in status.get("containerStatuses") or []), default=0
        ),
        deletion_cost=cost,
    )


def _log_rank(t: datetime, now: datetime) -> int:
    ns = (now - t) / timedelta(microseconds=1) * 1000
    return int(math.log2(ns)) if ns > 0 else -1


def _by_time(a: PodFacts, b: PodFacts, ta, tb, now: datetime) -> int | None:
    """Rules 6 and 8: None when the times are equal (fall through to the next rule)."""
    if ta == tb:
        return None
    if ta is None or tb is None:  # afterOrZero: a zero time comes first
        return -1 if ta is None else 1
    diff = _log_rank(ta, now) - _log_rank(tb, now)
    if diff == 0:
        return -1 if a.uid < b.uid else (1 if b.uid < a.uid else 0)
    return -1 if diff < 0 else 1


def compare(a: PodFacts, b: PodFacts, now: datetime, colocated: Mapping[str, int]) -> int:
    """Negative when the controller deletes ``a`` before ``b``, positive for after, 0 tie."""
    if bool(a.node) != bool(b.node):
        return -1 if not a.node else 1
    keys = (
        (_PHASE.get(a.phase, 0), _PHASE.get(b.phase, 0)),
        (a.ready, b.ready),
        (a.deletion_cost, b.deletion_cost),
        (-colocated.get(a.node, 0), -colocated.get(b.node, 0)),
    )
    for x, y in keys:
        if x != y:
            return -1 if x < y else 1
    if a.ready and b.ready:
        by_ready = _by_time(a, b, a.ready_since, b.ready_since, now)
        if by_ready is not None:
            return by_ready
    if a.restarts != b.restarts:
        return -1 if a.restarts > b.restarts else 1
    by_age = _by_time(a, b, a.created, b.created, now)
    return 0 if by_age is None else by_age


def _ambiguous(order: Sequence[PodFacts], remove: int, stable) -> tuple[int, int]:
    """[lo, hi): the stretch of ``order`` around the cut at ``remove`` that a sort may order
    either way. Ties are not transitive (A ties B on equal timestamps while a third pod sorts
    between them by UID), so Go's sort may put any pod lying between two tied pods on either
    side of them: a tied pair across the cut makes its whole stretch uncertain, and any tied
    pair overlapping that stretch widens it, until nothing does. Empty: the cut is certain."""
    n = len(order)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if stable(order[i], order[j]) == 0]
    lo = hi = remove
    changed = True
    while changed:
        changed = False
        for i, j in pairs:
            meets = (i < remove <= j) or (lo < hi and i < hi and j >= lo)
            if meets and (i < lo or j + 1 > hi):
                lo, hi, changed = min(lo, i), max(hi, j + 1), True
    return lo, hi


@dataclass(frozen=True)
class Removal:
    """Pods a scale-down deletes: all of ``certain``, plus ``choose`` of ``tied``."""

    certain: tuple[str, ...]
    tied: tuple[str, ...]
    choose: int


def removal(pods: Sequence[PodFacts], remove: int, now: datetime, horizon: float = 10.0) -> Removal:
    """The pods the ReplicaSet controller deletes to remove ``remove`` of ``pods``.

    Comparisons that differ between ``now`` and ``now + horizon`` seconds count as ties.
    """
    if remove <= 0:
        return Removal((), (), 0)
    if remove >= len(pods):
        return Removal(tuple(p.name for p in pods), (), 0)
    colocated = Counter(p.node for p in pods if p.phase not in ("Succeeded", "Failed"))
    later = now + timedelta(seconds=horizon)

    def stable(a: PodFacts, b: PodFacts) -> int:
        c = compare(a, b, now, colocated)
        return c if c == compare(a, b, later, colocated) else 0

    order = sorted(pods, key=cmp_to_key(stable))
    lo, hi = _ambiguous(order, remove, stable)
    certain, tied = order[:lo], order[lo:hi]
    if len(tied) == remove - len(certain):  # no real tie: the edge pod (and its equals) go
        certain, tied = certain + tied, []
    return Removal(
        tuple(p.name for p in certain), tuple(p.name for p in tied), remove - len(certain)
    )
