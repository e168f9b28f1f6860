"""kopf wiring: indexes and event handlers, nothing else.

Level-triggered and hands-off: tether never writes kopf annotations or finalizers on
DestinationRules, EndpointSlices, Services or Pods (Istio, the endpointslice controller and the
users own them). Indexes keep parsed snapshots; each event handler only works out which
Services are affected and marks them dirty; the coalescer then runs ``Controller.sync``.

Run with ``tether operator`` (see ``tether.cli.operator``), which passes the Controller as
kopf's ``memo``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from tether.handlers import metrics
from tether.handlers.controller import RuleEntry, rule_entry
from tether.models.cluster import SERVICE_NAME_LABEL, parse_endpointslice, parse_service
from tether.reconcile.hosts import host_matches, resolve_host

log = logging.getLogger(__name__)

DR_VERSION = os.environ.get("TETHER_DR_VERSION", "v1")
DR = ("networking.istio.io", DR_VERSION, "destinationrules")


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    """Tune kopf for a read-mostly operator and start the metrics endpoint."""
    settings.batching.batch_window = 0.02  # our own coalescer debounces across objects
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.connect_timeout = 10
    metrics.serve(memo.metrics_port, memo.bind_address)


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    """Stop the coalescer so no flush runs against a closing API session."""
    await memo.coalescer.close()


@kopf.on.probe(id="tables")
def probe_tables(memo: Any, **_: Any) -> int:
    """Liveness detail: how many tables this operator has published or adopted."""
    return len(memo.controller.published)


# -- indexes ------------------------------------------------------------------------------------


@kopf.index("v1", "services")
def tether_services(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict:
    """(namespace, name) → ServiceInfo."""
    return {(namespace, name): parse_service(body)}


@kopf.index("discovery.k8s.io", "v1", "endpointslices", labels={SERVICE_NAME_LABEL: kopf.PRESENT})
def tether_slices(body: kopf.Body, **_: Any) -> dict | None:
    """(namespace, service) → SliceInfo, one per slice."""
    sl = parse_endpointslice(body)
    return {(sl.namespace, sl.service): sl} if sl is not None else None


@kopf.index("discovery.k8s.io", "v1", "endpointslices", labels={SERVICE_NAME_LABEL: kopf.PRESENT})
def tether_pod_services(body: kopf.Body, namespace: str, labels: Any, **_: Any) -> dict:
    """(namespace, pod) → service name, so a Pod's label change finds its Services."""
    service = labels.get(SERVICE_NAME_LABEL)
    out = {}
    for ep in body.get("endpoints") or ():
        ref = ep.get("targetRef") or {}
        if ref.get("kind") == "Pod" and ref.get("name"):
            out[(namespace, ref["name"])] = service
    return out


@kopf.index("v1", "pods")
def tether_pods(namespace: str, name: str, labels: Any, **_: Any) -> dict:
    """(namespace, pod) → labels (for DestinationRule subsets)."""
    return {(namespace, name): dict(labels)}


@kopf.index(*DR)
def tether_rules(body: kopf.Body, **_: Any) -> dict:
    """ "all" and (namespace, name) → RuleEntry (decoded, validated, current status)."""
    entry = rule_entry(body)
    return {"all": entry, (entry.namespace, entry.name): entry}


# -- events -------------------------------------------------------------------------------------


def _bind(memo: Any, kw: dict[str, Any]) -> Any:
    ctl = memo.controller
    ix = ctl.indexes
    ix.services, ix.slices, ix.pods = kw["tether_services"], kw["tether_slices"], kw["tether_pods"]
    ix.rules, ix.pod_services = kw["tether_rules"], kw["tether_pod_services"]
    return ctl


@kopf.on.event("v1", "services")
async def on_service(namespace: str, name: str, memo: Any, **kw: Any) -> None:
    """A Service changed: its tables may gain or lose ports."""
    _bind(memo, kw)
    memo.coalescer.mark((namespace, name))


@kopf.on.event(
    "discovery.k8s.io", "v1", "endpointslices", labels={SERVICE_NAME_LABEL: kopf.PRESENT}
)
async def on_slice(namespace: str, labels: Any, memo: Any, **kw: Any) -> None:
    """Endpoints changed: the Service's tables follow (the hot path of a scale event)."""
    _bind(memo, kw)
    memo.coalescer.mark((namespace, labels[SERVICE_NAME_LABEL]))


@kopf.on.event("v1", "pods")
async def on_pod(type: str, namespace: str, name: str, labels: Any, memo: Any, **kw: Any) -> None:
    """Pod labels matter only for Services whose rules define subsets."""
    ctl = _bind(memo, kw)
    if type == "DELETED":  # its endpoints leave through the EndpointSlice events
        ctl.forget_pod(namespace, name)
        return
    services = kw["tether_pod_services"].get((namespace, name)) or ()
    keys = [(namespace, s) for s in services if (namespace, s) in ctl.subset_services]
    if keys and ctl.pod_labels_changed(namespace, name, labels):
        memo.coalescer.mark(*keys)


@kopf.on.event(*DR)
async def on_rule(body: kopf.Body, namespace: str, name: str, memo: Any, **kw: Any) -> None:
    """A DestinationRule changed: re-plan every Service it matched before or matches now."""
    ctl = _bind(memo, kw)
    entry: RuleEntry = rule_entry(body)
    keys = set(ctl.services_of_rule(entry.key))
    host = resolve_host(entry.host, namespace, ctl.config.domain) if entry.host else ""
    if host:
        for svc_key in kw["tether_services"]:
            fqdn = f"{svc_key[1]}.{svc_key[0]}.svc.{ctl.config.domain}"
            if host_matches(host, fqdn):
                keys.add(svc_key)
    memo.coalescer.mark(*keys, ("#rule", entry.key))
