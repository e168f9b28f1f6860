"""Snapshots of the cluster objects the planner needs: Services and EndpointSlices.

These are parsed from plain API dicts (as kopf or the Kubernetes client hand them over) into
small frozen values, so the planner stays pure and its inputs are hashable and comparable.
Only the fields that decide a routing table are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
PUBLISH_ANNOTATION = "tether.dev/publish"


@dataclass(frozen=True)
class ServicePort:
    port: int
    name: str = ""
    target_port: int | str | None = None
    protocol: str = "TCP"
    app_protocol: str | None = None


@dataclass(frozen=True)
class ServiceInfo:
    namespace: str
    name: str
    ports: tuple[ServicePort, ...]
    has_selector: bool = True
    service_type: str = "ClusterIP"
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    uid: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name), the Service's identity."""
        return (self.namespace, self.name)


@dataclass(frozen=True)
class SliceEndpoint:
    address: str
    ready: bool
    serving: bool
    terminating: bool
    pod: str | None = None
    node: str | None = None
    zone: str | None = None


@dataclass(frozen=True)
class SlicePort:
    port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True)
class SliceInfo:
    namespace: str
    name: str
    service: str
    address_type: str
    ports: tuple[SlicePort, ...]
    endpoints: tuple[SliceEndpoint, ...]


def _cond(conditions: Mapping[str, Any], key: str, default: bool) -> bool:
    value = conditions.get(key)
    return default if value is None else bool(value)


def parse_service(obj: Mapping[str, Any]) -> ServiceInfo:
    """Parse a v1 Service dict; ports keep their declared order (the first is the default)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    ports = tuple(
        ServicePort(
            port=int(p["port"]),
            name=p.get("name") or "",
            target_port=p.get("targetPort"),
            protocol=p.get("protocol") or "TCP",
            app_protocol=p.get("appProtocol"),
        )
        for p in spec.get("ports") or ()
    )
    return ServiceInfo(
        namespace=meta.get("namespace") or "default",
        name=meta["name"],
        ports=ports,
        has_selector=bool(spec.get("selector")),
        service_type=spec.get("type") or "ClusterIP",
        annotations=dict(meta.get("annotations") or {}),
        uid=meta.get("uid"),
        labels=dict(meta.get("labels") or {}),
    )


def parse_endpointslice(obj: Mapping[str, Any]) -> SliceInfo | None:
    """Parse a discovery.k8s.io/v1 EndpointSlice; None when it belongs to no Service.

    Conditions follow the API defaults: a nil ``ready`` or ``serving`` means true, a nil
    ``terminating`` means false.
    """
    meta = obj.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service:
        return None
    ports = tuple(
        SlicePort(
            port=int(p["port"]), name=p.get("name") or "", protocol=p.get("protocol") or "TCP"
        )
        for p in obj.get("ports") or ()
        if p.get("port") is not None
    )
    endpoints = []
    for ep in obj.get("endpoints") or ():
        cond = ep.get("conditions") or {}
        ready = _cond(cond, "ready", True)
        ref = ep.get("targetRef") or {}
        pod = ref.get("name") if ref.get("kind", "Pod") == "Pod" else None
        for address in ep.get("addresses") or ():
            endpoints.append(
                SliceEndpoint(
                    address=address,
                    ready=ready,
                    serving=_cond(cond, "serving", ready),
                    terminating=_cond(cond, "terminating", False),
                    pod=pod,
                    node=ep.get("nodeName"),
                    zone=ep.get("zone"),
                )
            )
    return SliceInfo(
        namespace=meta.get("namespace") or "default",
        name=meta["name"],
        service=service,
        address_type=obj.get("addressType") or "IPv4",
        ports=ports,
        endpoints=tuple(endpoints),
    )


def is_published(service: ServiceInfo) -> bool:
    """Whether a Service without a DestinationRule still gets a (round-robin) table.

    Rule: every Service with at least one TCP port, unless annotated
    ``tether.dev/publish: "false"``. Never ExternalName Services (they have no endpoints) and
    never ``default/kubernetes`` (a gateway must not become a side door to the API server).
    """
    if service.annotations.get(PUBLISH_ANNOTATION, "").lower() == "false":
        return False
    if service.service_type == "ExternalName" or service.key == ("default", "kubernetes"):
        return False
    return any(p.protocol == "TCP" for p in service.ports)
