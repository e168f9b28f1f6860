"""The planner: one Service, its EndpointSlices and the DestinationRules → its table documents.

``plan_service`` is pure and idempotent: the same inputs give byte-identical documents, so the
operator can call it on every event and write only what changed. Rules:

- The rules that apply are chosen and merged as Istio does (``reconcile.hosts``/``merge``).
- One table per TCP Service port, plus one per port and subset of the merged rule.
- A Service without a rule is published with round robin when ``is_published`` says so and
  its namespace is not one of ``quiet_namespaces`` (system namespaces and tether's own).
- An invalid rule never changes a table: if it was the source of published tables, those keep
  their policy (that of the last valid generation) and only follow endpoint changes; otherwise
  it is left out, exactly as if Istio's webhook had refused it.
- Persistent sessions (``session``, from the Service's labels or a BackendLBPolicy) go into
  every table of the Service, subsets included; a document carries ``schemaVersion`` 2 exactly
  when it has a session block, so documents without one stay byte-identical to version 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tether.models import table as t
from tether.models.cluster import ServiceInfo, ServicePort, SliceInfo, is_published
from tether.models.destinationrule import DestinationRule
from tether.models.validation import ValidationResult
from tether.reconcile import tables
from tether.reconcile.endpoints import endpoints_for_port
from tether.reconcile.hosts import rules_for_service, service_host
from tether.reconcile.merge import MergedRule, merge_rules
from tether.reconcile.moved import moved_fraction
from tether.reconcile.policy import effective_load_balancer, resolve_policy, to_policy

ROUND_ROBIN = t.Policy(type="simple", simple="ROUND_ROBIN")


SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})


@dataclass(frozen=True)
class PlanSettings:
    domain: str = "cluster.local"
    root_namespace: str | None = "istio-system"
    # Services here get a table only through a DestinationRule, never the round-robin default
    # (system services, and tether's own namespace: the gateway must not route to itself).
    quiet_namespaces: frozenset[str] = SYSTEM_NAMESPACES


@dataclass(frozen=True)
class Rule:
    """A decoded DestinationRule with its validation result."""

    rule: DestinationRule
    result: ValidationResult

    @property
    def key(self) -> str:
        """`namespace/name` of the rule."""
        return self.rule.key


@dataclass(frozen=True)
class TableOutcome:
    name: str  # ConfigMap name
    doc: t.TableDocument  # sealed
    text: str  # exactly what goes into the ConfigMap
    previous: t.TableDocument | None
    moved: float | None  # fraction of keys moved, None when not applicable

    @property
    def changed(self) -> bool:
        """True when the ConfigMap must be written (new table or different checksum)."""
        return self.previous is None or self.previous.checksum != self.doc.checksum

    @property
    def ready_endpoints(self) -> int:
        """Number of endpoints in the table that take traffic."""
        return sum(1 for e in self.doc.endpoints if e.ready)

    def summary(self) -> str:
        """Event text, e.g. 'maglev table for httpbin.default:8000 rebuilt: 3→4 endpoints, …'."""
        doc, policy = self.doc, self.doc.policy
        where = f"{doc.service.name}.{doc.service.namespace}:{doc.service.port}"
        if doc.subset:
            where += f" subset {doc.subset}"
        prev = self.previous
        before = 0 if prev is None else sum(1 for e in prev.endpoints if e.ready)
        if prev is None:
            verb = "published"
        elif prev.policy != policy:
            verb = f"switched from {_kind(prev.policy)}"
        else:
            verb = "rebuilt"
        text = (
            f"{_kind(policy)} table for {where} {verb}: {before}→{self.ready_endpoints} endpoints"
        )
        if self.moved is not None:
            text += f", {self.moved * 100:.1f}% of keys moved"
        session = doc.session
        if session is not None and (prev is None or prev.session != session):
            text += f"; persistent {session.kind} sessions {session.name!r} ({session.signing})"
        elif session is None and prev is not None and prev.session is not None:
            text += "; persistent sessions off"
        return text


def _kind(policy: t.Policy) -> str:
    return policy.algorithm if policy.type == "consistentHash" else (policy.simple or "").lower()


@dataclass(frozen=True)
class RuleOutcome:
    key: str  # namespace/name of the DestinationRule
    ready: bool
    reason: str  # Published | Invalid | Merged
    message: str
    tables: tuple[str, ...] = ()  # ConfigMap names attributed to this rule


@dataclass(frozen=True)
class ServicePlan:
    service: tuple[str, str]
    tables: Mapping[str, TableOutcome] = field(default_factory=dict)  # the complete desired set
    rules: Mapping[str, RuleOutcome] = field(default_factory=dict)


def _seal(
    name: str,
    doc: t.TableDocument,
    previous: Mapping[str, t.TableDocument],
) -> TableOutcome:
    table = tables.build(doc.policy, doc.endpoints, ship=True)
    sealed = doc.model_copy(update={"table": table}).sealed()
    text = sealed.dumps()
    if len(text) > t.MAX_DOCUMENT_BYTES and table is not None:
        # too big for a ConfigMap: ship without the data (the gateway rebuilds and checks the
        # digest); dropping it is what build(ship=False) gives, without building twice
        table = table.model_copy(update={"data": None})
        sealed = doc.model_copy(update={"table": table}).sealed()
        text = sealed.dumps()
    prev = previous.get(name)
    moved = None
    if prev is None or prev.checksum != sealed.checksum:
        moved = moved_fraction(prev, sealed)
    return TableOutcome(name, sealed, text, prev, moved)


def _document(
    svc: ServiceInfo,
    port: ServicePort,
    slices: Sequence[SliceInfo],
    pod_labels: Mapping[str, Mapping[str, str]],
    policy: t.Policy,
    settings: PlanSettings,
    *,
    subset: str | None = None,
    subset_labels: Mapping[str, str] | None = None,
    source: DestinationRule | t.Source | None = None,
    session: t.SessionPolicy | None = None,
) -> t.TableDocument:
    endpoints = endpoints_for_port(port, slices, subset_labels=subset_labels, pod_labels=pod_labels)
    policy = resolve_policy(policy, sum(1 for e in endpoints if e.ready))
    if isinstance(source, DestinationRule):
        meta = source.metadata
        source = t.Source(
            namespace=meta.namespace, name=meta.name, generation=meta.generation, uid=meta.uid
        )
    return t.TableDocument(
        schemaVersion=t.schema_version_for(session),
        service=t.Service(
            namespace=svc.namespace,
            name=svc.name,
            host=service_host(svc.namespace, svc.name, settings.domain),
            port=port.port,
            portName=port.name or None,
        ),
        subset=subset,
        subsetLabels=dict(subset_labels) if subset is not None else None,
        source=source,
        policy=policy,
        endpoints=endpoints,
        session=session,
    )


def _tcp_ports(svc: ServiceInfo) -> list[ServicePort]:
    return [p for p in svc.ports if p.protocol == "TCP"]


def _from_merged(svc, slices, pod_labels, merged: MergedRule | None, settings, session):
    docs: dict[str, tuple[t.TableDocument, str | None]] = {}
    for port in _tcp_ports(svc):
        if merged is None:
            doc = _document(svc, port, slices, pod_labels, ROUND_ROBIN, settings, session=session)
            docs[t.configmap_name(svc.namespace, svc.name, port.port)] = (doc, None)
            continue
        lb = effective_load_balancer(merged, port.port)
        policy = to_policy(lb, merged.annotations())
        source = merged.source()
        doc = _document(
            svc, port, slices, pod_labels, policy, settings, source=source, session=session
        )
        docs[t.configmap_name(svc.namespace, svc.name, port.port)] = (doc, source.key)
        for subset in merged.subsets:
            lb = effective_load_balancer(merged, port.port, subset.name)
            policy = to_policy(lb, merged.annotations(subset.name))
            source = merged.source(subset.name)
            doc = _document(
                svc,
                port,
                slices,
                pod_labels,
                policy,
                settings,
                subset=subset.name,
                subset_labels=subset.labels or {},
                source=source,
                session=session,
            )
            name = t.configmap_name(svc.namespace, svc.name, port.port, subset.name)
            docs[name] = (doc, source.key)
    return docs


def _frozen(svc, slices, pod_labels, previous: Mapping[str, t.TableDocument], settings, session):
    docs: dict[str, tuple[t.TableDocument, str | None]] = {}
    ports = {p.port: p for p in _tcp_ports(svc)}
    for name, prev in previous.items():
        port = ports.get(prev.service.port)
        if port is None:
            continue
        doc = _document(
            svc,
            port,
            slices,
            pod_labels,
            prev.policy,
            settings,
            subset=prev.subset,
            subset_labels=prev.subset_labels,
            source=prev.source,
            session=session,
        )
        key = f"{prev.source.namespace}/{prev.source.name}" if prev.source else None
        docs[name] = (doc, key)
    return docs


def plan_service(
    svc: ServiceInfo | None,
    slices: Sequence[SliceInfo],
    pod_labels: Mapping[str, Mapping[str, str]],
    rules: Sequence[Rule],
    previous: Mapping[str, t.TableDocument],
    settings: PlanSettings = PlanSettings(),
    session: t.SessionPolicy | None = None,
) -> ServicePlan:
    """The complete desired set of tables for one Service, and what each rule's status says.

    ``previous`` holds the documents published for this Service now (by ConfigMap name);
    ``rules`` may hold every rule in the cluster (only those that apply are used);
    ``session`` is the Service's persistent-session block (None: no sessions).
    Invariant: tables whose content is unchanged carry the previous checksum, so callers write
    exactly the tables with ``changed``.
    """
    if svc is None:
        return ServicePlan(service=("", ""))
    by_rule = {r.rule.key: r for r in rules}
    applicable = [
        by_rule[d.key]
        for d in rules_for_service(
            [r.rule for r in rules],
            svc.namespace,
            svc.name,
            domain=settings.domain,
            root_namespace=settings.root_namespace,
        )
    ]
    invalid = [r for r in applicable if not r.result.valid]
    valid = [r for r in applicable if r.result.valid]
    sources = {f"{d.source.namespace}/{d.source.name}" for d in previous.values() if d.source}
    frozen = [r for r in invalid if r.key in sources]
    merged = None if frozen else merge_rules([r.rule for r in valid])
    if frozen:
        docs = _frozen(svc, slices, pod_labels, previous, settings, session)
    else:
        if merged is None and (svc.namespace in settings.quiet_namespaces or not is_published(svc)):
            docs = {}
        else:
            docs = _from_merged(svc, slices, pod_labels, merged, settings, session)
    outcomes = {name: _seal(name, doc, previous) for name, (doc, _) in docs.items()}
    return ServicePlan(
        service=svc.key,
        tables=outcomes,
        rules=_rule_outcomes(applicable, docs, frozen, merged),
    )


def _rule_outcomes(applicable, docs, frozen, merged: MergedRule | None) -> dict[str, RuleOutcome]:
    attributed: dict[str, list[str]] = {}
    for name, (_, key) in docs.items():
        if key is not None:
            attributed.setdefault(key, []).append(name)
    out: dict[str, RuleOutcome] = {}
    frozen_keys = {r.key for r in frozen}
    shadow: dict[str, list[str]] = {}
    if merged is not None:
        for s in merged.shadowed:
            shadow.setdefault(s.rule, []).append(f"{s.part} ignored: {s.winner} takes precedence")
    for r in applicable:
        names = tuple(sorted(attributed.get(r.key, ())))
        if not r.result.valid:
            message = r.result.message
            if r.key in frozen_keys:
                message += "; tables keep the last valid generation's policy"
            out[r.key] = RuleOutcome(r.key, False, "Invalid", message, names)
        elif frozen:
            out[r.key] = RuleOutcome(
                r.key,
                False,
                "Blocked",
                "an older invalid DestinationRule for this host "
                "holds the published tables at its last valid generation",
                names,
            )
        elif r.key in shadow:
            out[r.key] = RuleOutcome(r.key, True, "Merged", "; ".join(shadow[r.key]), names)
        else:
            out[r.key] = RuleOutcome(r.key, True, "Published", "", names)
    return out
