"""Persistent sessions in the operator's caches: BackendLBPolicies, Service labels, and which
Services and policy statuses an event makes dirty.

``SessionIndex`` keeps, for every Service, the keys of the BackendLBPolicies whose
``targetRefs`` name it (maintained in O(targets) per policy event). Everything it answers is
computed for one Service or one policy at a time, never over the whole cluster:

- ``session_for(service)``: the session block of that Service's tables, from the policies
  targeting it and its own Istio labels and tether annotations (``models.policy_attachment``:
  a policy wins over the label; the oldest policy wins over younger ones);
- ``outcomes_for(policy)``: the ``Accepted`` outcome of one policy on each of its targets,
  judged with every policy that targets the same Services (so ``Conflicted`` is exact).

Dirty keys: a policy spec change marks the Services it targeted before and after, its own
status ``("#policy", key)`` and that of every other policy on those Services (a conflict may
start or end); a status-only change marks its status only. A Service event marks the status of
the policies targeting it (a target that appears or goes away changes ``TargetNotFound``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tether.handlers import metrics
from tether.k8s import kopf_io
from tether.k8s.tables import StatusPatch
from tether.models.cluster import ServiceInfo
from tether.models.gateway_api import BackendLBPolicy, parse_backend_lb_policy
from tether.models.policy_attachment import ServiceView, TargetOutcome, attach, policy_status
from tether.models.table import SessionPolicy

Key = tuple[str, str]
POLICY = "#policy"


@dataclass(frozen=True)
class PolicyEntry:
    """One BackendLBPolicy as cached: the parsed policy, its errors, and its live status.

    Equal entries (``==``) mean an equal policy: the status and resourceVersion, which
    tether's own status writes change, are kept out of the comparison.
    """

    policy: BackendLBPolicy
    errors: tuple[str, ...]
    status: Mapping[str, Any] = field(compare=False)
    resource_version: str | None = field(default=None, compare=False)


def policy_entry(body: Mapping[str, Any]) -> PolicyEntry:
    """Parse and check a BackendLBPolicy once, when it enters the cache."""
    policy, errors = parse_backend_lb_policy(body)
    meta = body.get("metadata") or {}
    return PolicyEntry(
        policy, tuple(errors), dict(body.get("status") or {}), meta.get("resourceVersion")
    )


def _view(svc: ServiceInfo) -> ServiceView:
    return ServiceView(svc.labels, svc.annotations)


def _split(policy_key: str) -> Key:
    ns, _, name = policy_key.partition("/")
    return ns, name


class SessionIndex:
    """Which policies target which Service, and the session answers derived from them."""

    def __init__(
        self,
        services: Callable[[Key], ServiceInfo | None],
        policies: Callable[[Key], PolicyEntry | None],
    ) -> None:
        self._service = services
        self._policy = policies
        self.by_service: dict[Key, set[str]] = {}

    @staticmethod
    def _targets(entry: PolicyEntry | None) -> set[Key]:
        if entry is None:
            return set()
        ns = entry.policy.namespace
        return {(ns, ref.name) for ref in entry.policy.target_refs}

    def policies_of(self, service: Hashable) -> set[str]:
        """Keys (``namespace/name``) of the policies whose targetRefs name ``service``."""
        return set(self.by_service.get(service, ()))  # type: ignore[call-overload]

    def on_policy(self, key: Key, old: PolicyEntry | None, new: PolicyEntry | None) -> list:
        """Update the index for one policy event; the dirty keys it causes."""
        policy_key = f"{key[0]}/{key[1]}"
        if old is not None and new is not None and old == new:
            return [(POLICY, policy_key)]  # status (or resourceVersion) only
        before, after = self._targets(old), self._targets(new)
        for svc in before - after:
            keys = self.by_service.get(svc)
            if keys is not None:
                keys.discard(policy_key)
                if not keys:
                    del self.by_service[svc]
        for svc in after:
            self.by_service.setdefault(svc, set()).add(policy_key)
        touched = before | after
        siblings = {p for svc in touched for p in self.by_service.get(svc, ())}
        siblings.add(policy_key)
        return [*sorted(touched), *((POLICY, p) for p in sorted(siblings))]

    def on_service(self, key: Key) -> list:
        """The policy statuses a Service event can change."""
        return [(POLICY, p) for p in sorted(self.by_service.get(key, ()))]

    def _entries(self, keys: Iterable[str]) -> list[tuple[BackendLBPolicy, list[str]]]:
        found = (self._policy(_split(k)) for k in keys)
        return [(e.policy, list(e.errors)) for e in found if e is not None]

    def session_for(self, service: Key) -> tuple[SessionPolicy | None, list[str]]:
        """The session block of one Service's tables (None: no sessions) and its notes."""
        svc = self._service(service)
        if svc is None:
            return None, []
        result = attach(self._entries(self.by_service.get(service, ())), {service: _view(svc)})
        return result.sessions.get(service), result.notes.get(service, [])

    def outcomes_for(self, policy_key: str) -> list[TargetOutcome] | None:
        """One outcome per target of the policy (None when the policy is not cached)."""
        entry = self._policy(_split(policy_key))
        if entry is None:
            return None
        targets = self._targets(entry)
        views = {k: _view(svc) for k in targets if (svc := self._service(k)) is not None}
        related = {p for k in targets for p in self.by_service.get(k, ())} | {policy_key}
        return attach(self._entries(sorted(related)), views).outcomes.get(policy_key, [])


def _same_status(new: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    return list(new.get("ancestors") or []) == list(current.get("ancestors") or [])


async def publish_statuses(
    index: SessionIndex,
    policies: Callable[[Key], PolicyEntry | None],
    patcher: StatusPatch,
    keys: Iterable[str],
    may_write: Callable[[], bool],
) -> int:
    """Patch the status of each policy in ``keys`` whose Accepted conditions changed.

    Gateway API conventions (``models.policy_attachment.policy_status``); other controllers'
    ancestor entries are kept. Returns the number of patches written. A conflict (the policy
    changed since the cache saw it) is skipped: its watch event marks it again.
    """
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    written = 0
    for policy_key in sorted(keys):
        entry = policies(_split(policy_key))
        outcomes = index.outcomes_for(policy_key)
        if entry is None or outcomes is None:
            continue
        new = policy_status(entry.policy, outcomes, entry.status, now)
        if _same_status(new, entry.status) or not may_write():
            continue
        ns, name = _split(policy_key)
        with contextlib.suppress(kopf_io.Conflict):
            if await patcher.patch(ns, name, new, entry.resource_version):
                written += 1
                metrics.POLICY_STATUS_WRITES.inc()
    return written
