"""tether deployed on the lab exactly as a user applies it, plus helpers to observe it.

`crds/` then `deploy/operator` (and `deploy/gateway` for the gateway tests) are applied with
the lab's kubectl; the lab's kubelet runs pods of the `tether` image as real `tether`
processes with the pod's ServiceAccount token, so RBAC from deploy/ is exercised for real.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from tether.lab import Lab
from tether.lab.testing import wait_until
from tether.models import table as t

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"
TABLES_NS = "tether-system"


def deploy_operator(lab: Lab) -> None:
    """Apply the CRD and deploy/operator; wait until one operator replica is Ready."""
    lab.kubectl("apply", "-f", str(ROOT / "crds" / "destinationrule.yaml"))
    wait_until(lambda: crd_established(lab), timeout=60, what="DestinationRule CRD Established")
    lab.kubectl("apply", "-k", str(ROOT / "deploy" / "operator"))
    wait_until(
        lambda: len(operator_pods(lab, ready=True)) == 2,
        timeout=90,
        what="two Ready tether-operator pods",
    )


def crd_established(lab: Lab, name: str = "destinationrules.networking.istio.io") -> bool:
    """True once the CRD serves (``kubectl wait`` right after apply can fail, kubectl 1.34)."""
    crd = lab.kubectl_json("crd", name)
    conds = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conds)


def operator_pods(lab: Lab, ready: bool = False) -> list[dict]:
    """Running operator pods (optionally only Ready ones), oldest first."""
    pods = lab.kubectl_json(
        "pods", "-n", TABLES_NS, "-l", "app.kubernetes.io/name=tether-operator"
    )["items"]
    out = [
        p
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]
    if ready:
        out = [
            p
            for p in out
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
        ]
    return sorted(out, key=lambda p: p["metadata"]["creationTimestamp"])


def metrics(pod: dict, port: int = 9090) -> dict[str, float]:
    """The operator pod's Prometheus samples, by sample name with labels."""
    url = f"http://{pod['status']['podIP']}:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def metric(pod: dict, name: str) -> float:
    """Sum of every sample whose name (labels included) starts with ``name``."""
    return sum(v for k, v in metrics(pod).items() if re.match(re.escape(name) + r"(\{|$)", k))


def table_doc(lab: Lab, ns: str, svc: str, port: int, subset: str | None = None):
    """The published, verified table document of one service port (None if absent)."""
    name = t.configmap_name(ns, svc, port, subset)
    out = lab.kubectl("get", "configmap", name, "-n", TABLES_NS, "-o", "json", check=False)
    if not out.strip():
        return None
    return t.loads(json.loads(out)["data"][t.DATA_KEY])


def configmap_versions(lab: Lab) -> dict[str, str]:
    """resourceVersion of every table ConfigMap (a write changes it)."""
    items = lab.kubectl_json(
        "configmaps", "-n", TABLES_NS, "-l", f"{t.TABLE_LABEL}={t.TABLE_LABEL_VALUE}"
    )["items"]
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in items}


def ready_endpoints(doc) -> int:
    return sum(1 for e in doc.endpoints if e.ready) if doc else -1


def rule_events(lab: Lab, ns: str, name: str) -> list[dict]:
    """Events posted on a DestinationRule, oldest first."""
    items = lab.kubectl_json(
        "events",
        "-n",
        ns,
        "--field-selector",
        f"involvedObject.kind=DestinationRule,involvedObject.name={name}",
    )
    return sorted(items["items"], key=lambda e: e.get("lastTimestamp") or e["eventTime"] or "")


def ready_condition(lab: Lab, ns: str, name: str) -> dict:
    dr = lab.kubectl_json("destinationrule", name, "-n", ns)
    conds = (dr.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "Ready"), {})


@pytest.fixture(scope="session")
def tether_operator(lab: Lab) -> Lab:
    """The operator of deploy/operator running on the session's lab."""
    deploy_operator(lab)
    return lab


def gateway_pods(lab: Lab) -> list[dict]:
    pods = lab.kubectl_json("pods", "-n", TABLES_NS, "-l", "app.kubernetes.io/name=tether-gateway")[
        "items"
    ]
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions", [])
        )
    ]


@pytest.fixture(scope="session")
def tether_gateway(tether_operator: Lab) -> Lab:
    """deploy/gateway on the session lab, one Ready replica."""
    lab = tether_operator
    lab.kubectl("apply", "-k", str(ROOT / "deploy" / "gateway"))
    wait_until(lambda: gateway_pods(lab), timeout=90, what="a Ready gateway pod")
    return lab
