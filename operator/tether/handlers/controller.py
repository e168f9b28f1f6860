"""The operator's one idempotent step: bring the tables of some Services up to date.

``Controller.sync(batch)`` reads tether's caches (``ClusterView``), plans each dirty Service
(pure, ``tether.reconcile.plan``), compares each desired ConfigMap with the live one and
writes only those that differ, with the live resourceVersion as a precondition
(``tether.k8s.tables``); it deletes the live tables nobody wants any more, patches the status
of the DestinationRules involved (only when it changed) and posts one Event per table whose
content changed. Persistent sessions come from ``view.sessions`` (Istio labels, BackendLBPolicy)
into every table of the Service; the status of the BackendLBPolicies involved is patched only
when it changed, and problems with a Service's session settings are posted once as a Warning
Event on the Service. Running it twice on the same cluster state writes nothing the second
time.

It writes only while ``may_write()`` holds (this replica leads and its caches are synced),
checked again right before every single write: a replica that stands by writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tether.handlers import metrics
from tether.handlers.cluster import ClusterView, RuleEntry
from tether.handlers.pipeline import Pipeline
from tether.handlers.policies import POLICY, publish_statuses
from tether.k8s import kopf_io
from tether.k8s.events import EventPoster
from tether.k8s.tables import (
    LiveTable,
    RuleStatus,
    StatusPatch,
    TableWriter,
    needs_write,
    table_body,
)
from tether.models import table as t
from tether.reconcile import status as rstatus
from tether.reconcile.hosts import resolve_host
from tether.reconcile.plan import (
    SYSTEM_NAMESPACES,
    PlanSettings,
    ServicePlan,
    TableOutcome,
    plan_service,
)

log = logging.getLogger(__name__)
YIELD_EVERY = 25  # services planned between two yields to the event loop


@dataclass
class Config:
    tables_namespace: str = "tether-system"
    domain: str = "cluster.local"
    root_namespace: str | None = "istio-system"
    dr_version: str = "v1"
    quiet_namespaces: tuple[str, ...] = ()  # extra namespaces without round-robin tables
    write_concurrency: int = 64  # ConfigMap writes in flight at once


def documents(live: Mapping[str, LiveTable]) -> dict[str, t.TableDocument]:
    """The readable, self-consistent documents among live tables (others count as absent)."""
    out = {}
    for name, table in live.items():
        try:
            out[name] = t.loads(table.text or "")
        except t.TableDocumentError as exc:
            log.warning("table %s is unreadable (%s); it will be rewritten", name, exc)
    return out


@dataclass
class Controller:
    config: Config
    view: ClusterView
    writer: TableWriter
    rule_status: RuleStatus
    events: EventPoster
    may_write: Callable[[], bool] = lambda: True
    policy_status: StatusPatch | None = None  # None: BackendLBPolicy status is not written
    plans: dict[tuple[str, str], ServicePlan] = field(default_factory=dict)  # with rules only
    with_sessions: set[tuple[str, str]] = field(default_factory=set)
    session_notes: dict[tuple[str, str], str] = field(default_factory=dict)  # last posted

    def __post_init__(self) -> None:
        metrics.SESSION_SERVICES.set_function(lambda: len(self.with_sessions))

    def _settings(self) -> PlanSettings:
        quiet = SYSTEM_NAMESPACES | {self.config.tables_namespace, *self.config.quiet_namespaces}
        return PlanSettings(self.config.domain, self.config.root_namespace, quiet)

    def _labels(self, key: tuple[str, str], slices) -> dict[str, Mapping[str, str]]:
        if key not in self.view.subset_services and not self.view.rule_index.candidates(*key):
            return {}  # pod labels only matter to subsets, which only rules define
        labels: dict[str, Mapping[str, str]] = {}
        for sl in slices:
            for ep in sl.endpoints:
                if ep.pod and ep.pod not in labels:
                    labels[ep.pod] = self.view.pods.get((key[0], ep.pod)) or {}
        return labels

    async def sync(self, batch: Mapping[Hashable, float | None]) -> set[Hashable]:
        """Reconcile every dirty key of the batch; return the keys to retry (write conflicts).

        A key is a Service ``(namespace, name)`` or ``("#rule", "namespace/name")`` (that
        rule's status only). A first-event time of None marks a resync (not an event).
        """
        if not self.may_write():
            return set()
        settings = self._settings()
        touched: set[str] = set()
        policies: set[str] = set()
        pipe = Pipeline(self.config.write_concurrency)
        for i, (key, first_event) in enumerate(batch.items()):
            if i and i % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let watch events and keep-alives in
            if isinstance(key, tuple) and key and key[0] == "#rule":
                touched.add(key[1])
                continue
            if isinstance(key, tuple) and key and key[0] == POLICY:
                policies.add(key[1])
                continue
            if key in self.plans:  # rules involved before (host changed, rule deleted)
                touched |= set(self.plans[key].rules)
            started = time.perf_counter()
            svc = self.view.services.get(key)
            slices = self.view.slices_of(key) if svc else []
            live = self.view.tables_of(key)
            rules = self.view.rule_index.candidates(*key) if svc else []
            session = self._session(key, svc)
            policies |= self.view.sessions.policies_of(key)
            plan = plan_service(
                svc, slices, self._labels(key, slices), rules, documents(live), settings, session
            )
            metrics.REBUILD_SECONDS.observe(time.perf_counter() - started)
            self._remember(key, plan)
            touched |= set(plan.rules)
            for name, out in plan.tables.items():
                now = live.get(name)
                moved = out.moved if out.changed else (now.moved if now else None)
                body = table_body(name, self.writer.namespace, out.doc, out.text, moved)
                if needs_write(now, body):
                    await pipe.submit(key, self._put(key, body, now, out, first_event))
            for name in live.keys() - plan.tables.keys():
                await pipe.submit(key, self._delete(key, live[name]))
        failed = await pipe.drain()
        await self._publish_status(touched)
        if self.policy_status is not None and policies:
            await publish_statuses(
                self.view.sessions, self.view.policies.get, self.policy_status, policies,
                self.may_write,
            )  # fmt: skip
        metrics.SYNCS.inc()
        return failed

    def _session(self, key: tuple[str, str], svc) -> t.SessionPolicy | None:
        """The Service's session block; its problems posted once as a Warning Event."""
        session, notes = self.view.sessions.session_for(key) if svc else (None, [])
        (self.with_sessions.add if session else self.with_sessions.discard)(key)
        text = "; ".join(notes)
        if text == self.session_notes.get(key, ""):
            return session
        if not text:
            del self.session_notes[key]
            return session
        self.session_notes[key] = text
        ref = {"apiVersion": "v1", "kind": "Service", "namespace": key[0], "name": key[1],
               "uid": svc.uid}  # fmt: skip
        if not self.events.post(ref, "Warning", "SessionSettings", text):
            metrics.EVENTS_DROPPED.inc()
        return session

    def _remember(self, key: tuple[str, str], plan: ServicePlan) -> None:
        old = self.plans.pop(key, None)
        for rule in old.rules if old else ():
            services = self.view.rule_services.get(rule)
            if services is not None:
                services.discard(key)
                if not services:
                    del self.view.rule_services[rule]
        if plan.rules:
            self.plans[key] = plan
            for rule in plan.rules:
                self.view.rule_services.setdefault(rule, set()).add(key)
        if any(o.doc.subset for o in plan.tables.values()):
            self.view.subset_services.add(key)
        else:
            self.view.subset_services.discard(key)

    async def _put(self, key, body, live: LiveTable | None, out: TableOutcome, first_event) -> None:
        if not self.may_write():
            return
        if live is None:
            obj = await self.writer.create(body)
        else:
            obj = await self.writer.replace(body, live.resource_version)
        self.view.record_write(out.name, obj, live)
        metrics.WRITES.labels("put").inc()
        if first_event is not None:
            metrics.EVENT_TO_PUBLISH.observe(time.monotonic() - first_event)
        if live is not None and (out.previous is None or not out.changed):
            log.info("table %s repaired (the live ConfigMap differed)", out.name)
            metrics.REPAIRS.inc()
            return
        policy = out.doc.policy
        metrics.REBUILDS.labels(policy.algorithm or (policy.simple or "").lower()).inc()
        metrics.ENDPOINTS.labels(out.doc.key).set(out.ready_endpoints)
        if out.moved is not None:
            metrics.KEYS_MOVED.labels(out.doc.key).set(out.moved)
        log.info("%s", out.summary())
        self._event(key, out)

    async def _delete(self, key: tuple[str, str], live: LiveTable) -> None:
        if not self.may_write():
            return
        await self.writer.delete(live.name, live.resource_version)
        self.view.record_write(live.name, None, live)
        metrics.WRITES.labels("delete").inc()
        log.info("table %s of %s/%s removed", live.name, *key)

    def _event(self, key: tuple[str, str], out: TableOutcome) -> None:
        """One Event per rebuilt table, on its DestinationRule (on the Service if none)."""
        src = out.doc.source
        if src is not None:
            api = f"networking.istio.io/{self.config.dr_version}"
            ref = {"apiVersion": api, "kind": "DestinationRule", "namespace": src.namespace,
                   "name": src.name, "uid": src.uid}  # fmt: skip
        else:
            svc = self.view.services.get(key)
            ref = {"apiVersion": "v1", "kind": "Service", "namespace": key[0], "name": key[1],
                   "uid": svc.uid if svc else None}  # fmt: skip
        reason = "TableRebuilt" if out.previous is not None else "TablePublished"
        if not self.events.post(ref, "Normal", reason, out.summary()):
            metrics.EVENTS_DROPPED.inc()

    async def _publish_status(self, touched: set[str]) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for rule_key in sorted(touched):
            ns, _, name = rule_key.partition("/")
            entry: RuleEntry | None = self.view.rules.get((ns, name))
            if entry is None:
                continue
            plans = {
                k: self.plans[k]
                for k in self.view.rule_services.get(rule_key, ())
                if k in self.plans
            }
            moved = {
                n: m
                for p in plans.values()
                for n in p.tables
                if (live := self.view.tables.get((self.writer.namespace, n)))
                and (m := live.moved) is not None
            }
            new = rstatus.compute(
                key=rule_key,
                generation=entry.generation,
                host=resolve_host(entry.host, entry.namespace, self.config.domain),
                result=entry.result,
                plans=plans,
                moved=moved,
                current=entry.status,
                now=now,
            )
            if new is None or not self.may_write():
                continue
            try:
                patched = await self.rule_status.patch(ns, name, new, entry.resource_version)
            except kopf_io.Conflict:
                continue  # it changed meanwhile: the watch brings it back as "#rule"
            if patched and rstatus.is_new_invalid(entry.status, new):
                api = f"networking.istio.io/{self.config.dr_version}"
                ref = {"apiVersion": api, "kind": "DestinationRule", "namespace": ns,
                       "name": name, "uid": entry.uid}  # fmt: skip
                self.events.post(ref, "Warning", "Invalid", new["conditions"][0]["message"])
