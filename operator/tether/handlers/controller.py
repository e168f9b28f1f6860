"""The operator's one idempotent step: bring the tables of some Services up to date.

``Controller.sync(batch)`` reads kopf's indexes (Services, EndpointSlices, Pods,
DestinationRules), plans each dirty Service (pure, ``tether.reconcile.plan``), writes only the
ConfigMaps whose checksum changed, deletes tables nobody wants any more, patches the status of
the DestinationRules involved (only when it changed) and posts one Event per rebuilt table.
Running it twice on the same cluster state writes nothing the second time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from tether.handlers import metrics
from tether.k8s.tables import RuleStatus, TableStore
from tether.models import table as t
from tether.models.cluster import ServiceInfo, SliceInfo
from tether.models.validation import ValidationResult, check
from tether.reconcile import status as rstatus
from tether.reconcile.hosts import resolve_host
from tether.reconcile.plan import (
    SYSTEM_NAMESPACES,
    PlanSettings,
    Rule,
    ServicePlan,
    TableOutcome,
    plan_service,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleEntry:
    """One DestinationRule as indexed: identity, decoded rule (None if undecodable), status."""

    namespace: str
    name: str
    uid: str | None
    generation: int | None
    host: str
    rule: Rule | None
    result: ValidationResult
    status: Mapping[str, Any]

    @property
    def key(self) -> str:
        """`namespace/name` of the rule, unique in the index."""
        return f"{self.namespace}/{self.name}"


def rule_entry(body: Mapping[str, Any]) -> RuleEntry:
    """Decode and validate a DestinationRule body once, when kopf indexes it."""
    meta = body.get("metadata") or {}
    dr, result = check({k: body.get(k) for k in ("apiVersion", "kind", "metadata", "spec")})
    return RuleEntry(
        namespace=meta.get("namespace") or "default",
        name=meta.get("name") or "",
        uid=meta.get("uid"),
        generation=meta.get("generation"),
        host=str((body.get("spec") or {}).get("host") or ""),
        rule=Rule(dr, result) if dr is not None else None,
        result=result,
        status=dict(body.get("status") or {}),
    )


@dataclass
class Config:
    tables_namespace: str = "tether-system"
    domain: str = "cluster.local"
    root_namespace: str | None = "istio-system"
    dr_version: str = "v1"
    quiet_namespaces: tuple[str, ...] = ()  # extra namespaces without round-robin tables


@dataclass
class Indexes:
    """Live views of kopf's indexes, bound on every event (all are populated by then)."""

    services: Any = None
    slices: Any = None
    pods: Any = None
    rules: Any = None
    pod_services: Any = None


def _one(index: Any, key: Hashable) -> Any:
    store = index.get(key) if index is not None else None
    return next(iter(store), None) if store else None


@dataclass
class Controller:
    config: Config
    tables: TableStore
    rule_status: RuleStatus
    indexes: Indexes = field(default_factory=Indexes)
    published: dict[str, t.TableDocument] = field(default_factory=dict)  # ConfigMap -> doc
    owners: dict[str, tuple[str, str]] = field(default_factory=dict)  # ConfigMap -> service
    moved: dict[str, float] = field(default_factory=dict)  # ConfigMap -> last keys moved
    plans: dict[tuple[str, str], ServicePlan] = field(default_factory=dict)
    subset_services: set[tuple[str, str]] = field(default_factory=set)
    _pod_labels: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    loaded: bool = False

    # -- event-side helpers (cheap, synchronous) -----------------------------------------

    def services_of_rule(self, rule_key: str) -> list[tuple[str, str]]:
        """Services whose last plan involved the rule (so a host change re-plans them)."""
        return [k for k, p in self.plans.items() if rule_key in p.rules]

    def pod_labels_changed(self, namespace: str, name: str, labels: Mapping[str, str]) -> bool:
        """True the first time a pod is seen and whenever its labels differ from last time."""
        key, new = (namespace, name), dict(labels)
        changed = self._pod_labels.get(key) != new
        self._pod_labels[key] = new
        return changed

    def forget_pod(self, namespace: str, name: str) -> None:
        """Drop what was remembered about a deleted pod (keeps memory bounded under churn)."""
        self._pod_labels.pop((namespace, name), None)

    # -- sync ---------------------------------------------------------------------------

    async def _load_published(self) -> set[tuple[str, str]]:
        found = await self.tables.list()
        for name, pt in found.items():
            self.owners[name] = pt.service_key
            if pt.moved is not None:
                self.moved[name] = pt.moved
            try:
                self.published[name] = t.loads(pt.text or "")
            except t.TableDocumentError as exc:
                log.warning("table %s is unreadable (%s); it will be rewritten", name, exc)
        self.loaded = True
        return {pt.service_key for pt in found.values()}

    def _snapshot(self, key: tuple[str, str]):
        svc: ServiceInfo | None = _one(self.indexes.services, key)
        slices: list[SliceInfo] = list(self.indexes.slices.get(key, ())) if svc else []
        labels: dict[str, Mapping[str, str]] = {}
        for sl in slices:
            for ep in sl.endpoints:
                if ep.pod and ep.pod not in labels:
                    labels[ep.pod] = _one(self.indexes.pods, (key[0], ep.pod)) or {}
        return svc, slices, labels

    def _entries(self) -> list[RuleEntry]:
        return list(self.indexes.rules.get("all", ())) if self.indexes.rules is not None else []

    async def sync(self, batch: Mapping[Hashable, float]) -> None:
        """Reconcile every dirty Service of the batch, then the status of the rules involved.

        On the first call it adopts the tables already published (an operator restart), and
        re-plans their Services too, so tables of deleted Services or rules are removed.
        """
        if not self.loaded:
            now = time.monotonic()
            batch = {**dict.fromkeys(await self._load_published(), now), **batch}
        settings = PlanSettings(
            self.config.domain,
            self.config.root_namespace,
            SYSTEM_NAMESPACES | {self.config.tables_namespace, *self.config.quiet_namespaces},
        )
        entries = self._entries()
        rules = [e.rule for e in entries if e.rule is not None]
        touched: set[str] = set()
        for key, first_event in batch.items():
            if isinstance(key, tuple) and key and key[0] == "#rule":
                touched.add(key[1])
                continue
            touched |= self._rules_of(key)  # rules involved before (host changed, deleted)
            started = time.perf_counter()
            svc, slices, labels = self._snapshot(key)
            previous = {n: d for n, d in self.published.items() if self.owners.get(n) == key}
            plan = plan_service(svc, slices, labels, rules, previous, settings)
            metrics.REBUILD_SECONDS.observe(time.perf_counter() - started)
            await self._apply(key, plan, previous, first_event)
            touched |= set(plan.rules)
            self._remember(key, plan)
        await self._publish_status(entries, touched)
        metrics.SYNCS.inc()

    def _rules_of(self, key: tuple[str, str]) -> set[str]:
        plan = self.plans.get(key)
        return set(plan.rules) if plan else set()

    def _remember(self, key: tuple[str, str], plan: ServicePlan) -> None:
        if plan.tables or plan.rules:
            self.plans[key] = plan
        else:
            self.plans.pop(key, None)
        if any(o.doc.subset for o in plan.tables.values()):
            self.subset_services.add(key)
        else:
            self.subset_services.discard(key)

    async def _apply(self, key, plan: ServicePlan, previous, first_event: float) -> None:
        for name, out in plan.tables.items():
            if not out.changed:
                continue
            if out.moved is not None:
                self.moved[name] = out.moved
            await self.tables.put(
                name, out.doc, out.text, exists=name in previous, moved=self.moved.get(name)
            )
            self.published[name], self.owners[name] = out.doc, key
            metrics.WRITES.labels("put").inc()
            metrics.EVENT_TO_PUBLISH.observe(time.monotonic() - first_event)
            policy = out.doc.policy
            metrics.REBUILDS.labels(policy.algorithm or (policy.simple or "").lower()).inc()
            metrics.ENDPOINTS.labels(out.doc.key).set(out.ready_endpoints)
            if out.moved is not None:
                metrics.KEYS_MOVED.labels(out.doc.key).set(out.moved)
            log.info("%s", out.summary())
            self._event(key, out)
        for name in [n for n in previous if n not in plan.tables]:
            await self.tables.delete(name)
            metrics.WRITES.labels("delete").inc()
            self.published.pop(name, None)
            self.owners.pop(name, None)
            self.moved.pop(name, None)
            log.info("table %s of %s/%s removed", name, *key)

    def _event(self, key: tuple[str, str], out: TableOutcome) -> None:
        """One Event per rebuilt table, on its DestinationRule (on the Service if none)."""
        src = out.doc.source
        if src is not None:
            api, kind, ns, name, uid = (
                f"networking.istio.io/{self.config.dr_version}",
                "DestinationRule",
                src.namespace,
                src.name,
                src.uid,
            )
        else:
            svc = _one(self.indexes.services, key)
            api, kind, ns, name, uid = "v1", "Service", key[0], key[1], svc.uid if svc else None
        body = {
            "apiVersion": api,
            "kind": kind,
            "metadata": {"namespace": ns, "name": name, "uid": uid},
        }
        reason = "TableRebuilt" if out.previous is not None else "TablePublished"
        kopf.event(body, type="Normal", reason=reason, message=out.summary())

    async def _publish_status(self, entries: list[RuleEntry], touched: set[str]) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        invalid = 0
        for entry in entries:
            invalid += not entry.result.valid
            if entry.key not in touched:
                continue
            plans = {k: p for k, p in self.plans.items() if entry.key in p.rules}
            host = resolve_host(entry.host, entry.namespace, self.config.domain)
            new = rstatus.compute(
                key=entry.key,
                generation=entry.generation,
                host=host,
                result=entry.result,
                plans=plans,
                moved=self.moved,
                current=entry.status,
                now=now,
            )
            if new is None:
                continue
            patched = await self.rule_status.patch(entry.namespace, entry.name, new)
            if patched and rstatus.is_new_invalid(entry.status, new):
                body = {
                    "apiVersion": f"networking.istio.io/{self.config.dr_version}",
                    "kind": "DestinationRule",
                    "metadata": {
                        "namespace": entry.namespace,
                        "name": entry.name,
                        "uid": entry.uid,
                    },
                }
                kopf.event(
                    body,
                    type="Warning",
                    reason="Invalid",
                    message=new["conditions"][0]["message"],
                )
        metrics.INVALID_RULES.set(invalid)
