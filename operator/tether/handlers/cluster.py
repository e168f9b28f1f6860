"""tether's view of the cluster: one watch cache per resource kind, and which Services an
event makes dirty.

Replaces ``@kopf.index``: kopf holds a readiness toggle per indexed object until its first
indexing, and every toggle dropped wakes every waiting worker, so its start-up cost grew with
the square of the number of objects. These caches (``tether.k8s.informer``) cost O(1) per
event, say when their first list is complete (``synced``), and keep watching on a standby
replica. Each change is mapped to the Services it affects in O(1) (a wildcard host scans the
Services once) and handed to ``mark``:

- Service → itself; EndpointSlice → its Service (old and new label); Pod label change → the
  Services with subset tables whose slices list the pod;
- DestinationRule spec change → the Services its old and new host select, the Services whose
  last plan involved it, and ``("#rule", key)`` (its status); a status-only change (such as
  tether's own status write) → ``("#rule", key)`` only;
- BackendLBPolicy → the Services it targets and policy statuses (``handlers.policies``); a
  Service event also marks the status of the policies that target it;
- table ConfigMap changed by anyone but this replica (edited, deleted, created by another
  writer) → the Service it belongs to, which is then repaired. The operator's own writes are
  recorded with ``put_local`` and never come back as a change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tether.handlers import metrics
from tether.handlers.policies import PolicyEntry, SessionIndex, policy_entry
from tether.k8s import kopf_io
from tether.k8s.informer import Informer
from tether.k8s.tables import LiveTable, parse_table
from tether.models import table as t
from tether.models.cluster import SERVICE_NAME_LABEL, ServiceInfo, SliceInfo
from tether.models.cluster import parse_endpointslice as _parse_slice
from tether.models.cluster import parse_service as _parse_service
from tether.models.session import COOKIE_LABEL, HEADER_LABEL
from tether.models.validation import ValidationResult, check
from tether.reconcile.plan import Rule
from tether.reconcile.rule_index import RuleIndex

Key = tuple[str, str]
Mark = Callable[..., None]
SESSION_LABELS = frozenset({COOKIE_LABEL, HEADER_LABEL})


@dataclass(frozen=True)
class RuleEntry:
    """One DestinationRule as cached: identity, decoded rule (None if undecodable), status."""

    namespace: str
    name: str
    uid: str | None
    generation: int | None
    host: str
    rule: Rule | None
    result: ValidationResult
    status: Mapping[str, Any] = field(compare=False)
    resource_version: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """`namespace/name` of the rule."""
        return f"{self.namespace}/{self.name}"


def rule_entry(body: Mapping[str, Any]) -> RuleEntry:
    """Decode and validate a DestinationRule body once, when it enters the cache.

    Equal entries (``==``) mean an equal rule: the resourceVersion and status, which tether's
    own status writes change, are kept out of the comparison.
    """
    meta = dict(body.get("metadata") or {})
    rv = meta.pop("resourceVersion", None)
    meta.pop("managedFields", None)
    dr, result = check(
        {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "metadata": meta,
            "spec": body.get("spec"),
        }
    )
    return RuleEntry(
        namespace=meta.get("namespace") or "default",
        name=meta.get("name") or "",
        uid=meta.get("uid"),
        generation=meta.get("generation"),
        host=str((body.get("spec") or {}).get("host") or ""),
        rule=Rule(dr, result) if dr is not None else None,
        result=result,
        status=dict(body.get("status") or {}),
        resource_version=rv,
    )


def parse_service(obj: Mapping[str, Any]) -> ServiceInfo:
    """A Service, keeping only tether's annotations (not kubectl's last-applied copy) and
    Istio's persistent-session labels (the only labels tether reads)."""
    meta = obj.get("metadata") or {}
    notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith("tether.")}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k in SESSION_LABELS}
    return _parse_service({**obj, "metadata": {**meta, "annotations": notes, "labels": labels}})


def parse_pod(obj: Mapping[str, Any]) -> dict[str, str]:
    """A Pod's labels (what subset membership depends on)."""
    return dict((obj.get("metadata") or {}).get("labels") or {})


class ClusterView:
    """The caches, the indexes derived from them, and the event → dirty Services mapping."""

    def __init__(
        self,
        settings: kopf_io.Settings,
        *,
        tables_namespace: str,
        domain: str,
        dr_version: str,
        namespaces: tuple[str, ...] = (),
        mark: Mark = lambda *keys: None,
    ) -> None:
        self.mark = mark
        self.rule_index = RuleIndex(domain)
        self.by_service: dict[Key, set[str]] = {}  # service -> its slice names
        self.owned: dict[Key, set[str]] = {}  # service -> its table ConfigMap names
        self.subset_services: set[Key] = set()  # maintained by the controller
        self.rule_services: dict[str, set[Key]] = {}  # rule -> services it was planned with
        ns = namespaces
        self.services: Informer[ServiceInfo] = Informer(
            "services", settings, kopf_io.SERVICES, parse_service, namespaces=ns,
            on_change=self._on_service,
        )  # fmt: skip
        self.slices: Informer[SliceInfo] = Informer(
            "endpointslices", settings, kopf_io.ENDPOINTSLICES, _parse_slice,
            labels=SERVICE_NAME_LABEL, namespaces=ns, on_change=self._on_slice,
        )  # fmt: skip
        self.pods: Informer[dict[str, str]] = Informer(
            "pods", settings, kopf_io.PODS, parse_pod, namespaces=ns, on_change=self._on_pod
        )
        self.rules: Informer[RuleEntry] = Informer(
            "destinationrules", settings, kopf_io.destinationrules(dr_version), rule_entry,
            namespaces=ns, on_change=self._on_rule,
        )  # fmt: skip
        self.tables: Informer[LiveTable] = Informer(
            "tables", settings, kopf_io.CONFIGMAPS, parse_table, namespace=tables_namespace,
            labels=f"{t.TABLE_LABEL}={t.TABLE_LABEL_VALUE}", on_change=self._on_table,
        )  # fmt: skip
        # Gateway API is optional: no CRD (404) or no RBAC rule (403) is an empty list.
        self.policies: Informer[PolicyEntry] = Informer(
            "backendlbpolicies", settings, kopf_io.BACKENDLBPOLICIES, policy_entry,
            namespaces=ns, on_change=self._on_policy, optional=True,
        )  # fmt: skip
        self.sessions = SessionIndex(self.services.get, self.policies.get)
        self.informers = (
            self.services, self.slices, self.pods, self.rules, self.tables, self.policies
        )  # fmt: skip
        self._tasks: list[asyncio.Task[None]] = []

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start every list+watch loop (idempotent)."""
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(i.run(), name=f"tether-{i.name}") for i in self.informers
            ]

    @property
    def synced(self) -> bool:
        """True once every cache has completed its first list."""
        return all(i.synced.is_set() for i in self.informers)

    async def wait_synced(self) -> None:
        """Return once every cache has completed its first list."""
        await asyncio.gather(*(i.synced.wait() for i in self.informers))

    async def close(self) -> None:
        """Stop every list+watch loop."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def sizes(self) -> dict[str, int]:
        """Objects held per cache (the ``tether_operator_cached_objects`` gauge)."""
        return {i.name: len(i.store) for i in self.informers}

    # -- reading -----------------------------------------------------------------------------

    def slices_of(self, key: Key) -> list[SliceInfo]:
        """The EndpointSlices of one Service, in name order."""
        names = sorted(self.by_service.get(key, ()))
        found = [self.slices.get((key[0], n)) for n in names]
        return [s for s in found if s is not None]

    def tables_of(self, key: Hashable) -> dict[str, LiveTable]:
        """The table ConfigMaps that belong to one Service now, by name."""
        out = {}
        for name in self.owned.get(key, ()):  # type: ignore[call-overload]
            live = self.tables.get(self._table_key(name))
            if live is not None:
                out[name] = live
        return out

    def _table_key(self, name: str) -> Key:
        return (self.tables.namespace or "", name)

    def all_keys(self) -> list[Hashable]:
        """Every Service, every owner of a table, and every rule: what a full resync covers."""
        keys: dict[Hashable, None] = dict.fromkeys(self.services.store)
        keys.update(dict.fromkeys(k for k, names in self.owned.items() if names))
        keys.update(dict.fromkeys(("#rule", f"{ns}/{n}") for ns, n in self.rules.store))
        keys.update(dict.fromkeys(("#policy", f"{ns}/{n}") for ns, n in self.policies.store))
        return list(keys)

    def entries(self) -> list[RuleEntry]:
        """Every cached DestinationRule."""
        return self.rules.values()

    # -- event → dirty keys ------------------------------------------------------------------

    def _on_service(self, key: Key, old: Any, new: Any) -> None:
        self.mark(key, *self.sessions.on_service(key))

    def _on_policy(self, key: Key, old: PolicyEntry | None, new: PolicyEntry | None) -> None:
        self.mark(*self.sessions.on_policy(key, old, new))

    def _on_slice(self, key: Key, old: SliceInfo | None, new: SliceInfo | None) -> None:
        dirty = []
        for sl, add in ((old, False), (new, True)):
            if sl is None:
                continue
            svc = (sl.namespace, sl.service)
            names = self.by_service.setdefault(svc, set())
            if add:
                names.add(sl.name)
            else:
                names.discard(sl.name)
                if not names:
                    del self.by_service[svc]
            dirty.append(svc)
        self.mark(*dict.fromkeys(dirty))

    def _on_pod(self, key: Key, old: Any, new: Any) -> None:
        if new is None or old == new:
            return  # a deleted pod leaves through its EndpointSlice
        ns, pod = key
        dirty = [
            svc
            for svc in self.subset_services
            if svc[0] == ns
            and any(ep.pod == pod for sl in self.slices_of(svc) for ep in sl.endpoints)
        ]
        if dirty:
            self.mark(*dirty)

    def _on_rule(self, key: Key, old: RuleEntry | None, new: RuleEntry | None) -> None:
        rule_key = f"{key[0]}/{key[1]}"
        if old is not None and new is not None and old == new:
            self.mark(("#rule", rule_key))  # status (or resourceVersion) only
            return
        dirty: dict[Hashable, None] = dict.fromkeys(self.rule_services.get(rule_key, ()))
        self.rule_index.remove(rule_key)
        for entry in (old, new):
            if entry is not None and entry.rule is not None:
                host = self.rule_index.host_of(entry.rule)
                dirty.update(dict.fromkeys(self.rule_index.services_of_host(host, self._svc_keys)))
        if new is not None and new.rule is not None:
            self.rule_index.put(new.rule)
        metrics.INVALID_RULES.set(sum(not e.result.valid for e in self.rules.values()))
        self.mark(*dirty, ("#rule", rule_key))

    def _svc_keys(self) -> Iterable[Key]:
        return list(self.services.store)

    def _on_table(self, key: Key, old: LiveTable | None, new: LiveTable | None) -> None:
        name = key[1]
        dirty = []
        for live, add in ((old, False), (new, True)):
            if live is None:
                continue
            names = self.owned.setdefault(live.service_key, set())
            if add:
                names.add(name)
            else:
                names.discard(name)
                if not names:
                    del self.owned[live.service_key]
            dirty.append(live.service_key)
        self.mark(*dict.fromkeys(dirty))

    def record_write(self, name: str, obj: dict | None, old: LiveTable | None) -> None:
        """Record the operator's own write (``obj`` = API response; None = deleted)."""
        key = self._table_key(name)
        if old is not None:
            names = self.owned.get(old.service_key)
            if names is not None:
                names.discard(name)
                if not names:
                    del self.owned[old.service_key]
        if obj is None:
            self.tables.drop_local(key)
            return
        self.tables.put_local(key, obj)
        live = self.tables.get(key)
        if live is not None:
            self.owned.setdefault(live.service_key, set()).add(name)
