"""Small builders of Service / EndpointSlice / DestinationRule inputs for planner tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from tether.models.cluster import parse_endpointslice, parse_service
from tether.models.validation import check
from tether.reconcile.plan import Rule

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "destinationrules"


def service(name="httpbin", ns="default", ports=(("http", 8000),), **meta):
    return parse_service(
        {
            "metadata": {"name": name, "namespace": ns, **meta},
            "spec": {
                "selector": {"app": name},
                "ports": [{"name": n, "port": p, "targetPort": 8080} for n, p in ports],
            },
        }
    )


def slice_(pods, name="httpbin", ns="default", port=8080, port_name="http", slice_name=None):
    """pods: iterable of (pod name, ip) or (pod name, ip, ready, terminating)."""
    eps = []
    for item in pods:
        pod, ip, ready, term = (*item, True, False)[:4]
        eps.append(
            {
                "addresses": [ip],
                "targetRef": {"kind": "Pod", "name": pod},
                "conditions": {"ready": ready, "serving": ready or term, "terminating": term},
            }
        )
    return parse_endpointslice(
        {
            "metadata": {
                "name": slice_name or f"{name}-x",
                "namespace": ns,
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": eps,
        }
    )


def pods(n, prefix="httpbin"):
    return [(f"{prefix}-{i}", f"10.244.0.{i + 2}") for i in range(n)]


def rule(obj_or_fixture, **meta) -> Rule:
    obj = obj_or_fixture
    if isinstance(obj, str):
        obj = yaml.safe_load((FIXTURES / obj).read_text())
    obj = {**obj, "metadata": {**obj.get("metadata", {}), **meta}}
    dr, result = check(obj)
    assert dr is not None, result.message
    return Rule(dr, result)
