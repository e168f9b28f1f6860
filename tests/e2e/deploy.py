"""tether deployed on a cluster (lab or kind) exactly as a user applies it, and what to observe.

`crds/` then `deploy/operator` (and the gateway: `deploy/gateway` on the lab, `deploy/kind` on
kind, which adds the NodePort that publishes it on the host) are applied with kubectl. Every
helper takes the cluster backend (`tether.lab.Lab` or `tether.kind.cluster.KindCluster`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tether.cli.demo_http import Connection
from tether.lab.testing import wait_until
from tether.models import table as t

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"
TABLES_NS = "tether-system"
OPERATOR = "app.kubernetes.io/name=tether-operator"
GATEWAY = "app.kubernetes.io/name=tether-gateway"
SEED_RULE = EXAMPLES / "seed-destinationrule.yaml"


def seed_rule(ns: str) -> str:
    """The seed walkthrough's DestinationRule (deploy/examples, cookie `sticky-session-key`,
    ttl 0s), moved to namespace `ns`: its metadata and its host name `httpbin.<ns>`."""
    doc = yaml.safe_load(SEED_RULE.read_text())
    doc["metadata"]["namespace"] = ns
    doc["spec"]["host"] = f"httpbin.{ns}.svc.cluster.local"
    return yaml.safe_dump(doc, sort_keys=False)


def is_ready(pod: dict) -> bool:
    """The pod's Ready condition is True."""
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
    )


def crd_established(cluster, name: str = "destinationrules.networking.istio.io") -> bool:
    """True once the CRD serves (``kubectl wait`` right after apply can fail, kubectl 1.34)."""
    crd = cluster.kubectl_json("crd", name)
    conds = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conds)


def deploy_operator(cluster) -> None:
    """Apply the CRD and deploy/operator; wait until both operator replicas are Ready."""
    cluster.kubectl("apply", "-f", str(ROOT / "crds" / "destinationrule.yaml"))
    wait_until(lambda: crd_established(cluster), timeout=60, what="DestinationRule CRD Established")
    cluster.kubectl("apply", "-k", str(ROOT / "deploy" / "operator"))
    wait_until(
        lambda: len(operator_pods(cluster, ready=True)) == 2,
        timeout=180,
        what="two Ready tether-operator pods",
    )


def deploy_gateway(cluster) -> None:
    """Apply the gateway (deploy/gateway, or deploy/kind on kind); wait for a Ready replica."""
    overlay = "gateway" if cluster.backend == "lab" else "kind"
    cluster.kubectl("apply", "-k", str(ROOT / "deploy" / overlay))
    wait_until(lambda: gateway_pods(cluster), timeout=180, what="a Ready gateway pod")


def operator_pods(cluster, ready: bool = False) -> list[dict]:
    """Running operator pods (optionally only Ready ones), oldest first."""
    pods = cluster.kubectl_json("pods", "-n", TABLES_NS, "-l", OPERATOR)["items"]
    out = [
        p
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]
    if ready:
        out = [p for p in out if is_ready(p)]
    return sorted(out, key=lambda p: p["metadata"]["creationTimestamp"])


def gateway_pods(cluster) -> list[dict]:
    """Ready gateway pods that are not terminating."""
    pods = cluster.kubectl_json("pods", "-n", TABLES_NS, "-l", GATEWAY)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and is_ready(p)]


def http_get(cluster, ip: str, port: int, path: str) -> tuple[int, bytes]:
    """GET http://ip:port/path from inside the cluster's network (a pod IP)."""
    conn = Connection(ip, port, cluster.connect if cluster is not None else None, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def metrics(pod: dict, port: int = 9090, cluster=None) -> dict[str, float]:
    """The operator pod's Prometheus samples, by sample name with labels."""
    _, body = http_get(cluster, pod["status"]["podIP"], port, "/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def metric(pod: dict, name: str, cluster=None) -> float:
    """Sum of every sample whose name (labels included) starts with ``name``."""
    samples = metrics(pod, cluster=cluster)
    return sum(v for k, v in samples.items() if re.match(re.escape(name) + r"(\{|$)", k))


def table_doc(cluster, ns: str, svc: str, port: int, subset: str | None = None):
    """The published, verified table document of one service port (None if absent)."""
    name = t.configmap_name(ns, svc, port, subset)
    out = cluster.kubectl("get", "configmap", name, "-n", TABLES_NS, "-o", "json", check=False)
    if not out.strip():
        return None
    return t.loads(json.loads(out)["data"][t.DATA_KEY])


def configmap_versions(cluster, ns: str | None = None, svc: str | None = None) -> dict[str, str]:
    """resourceVersion of every table ConfigMap, or of one Service's (a write changes it)."""
    selector = f"{t.TABLE_LABEL}={t.TABLE_LABEL_VALUE}"
    if ns and svc:
        selector += f",{t.LABEL_SERVICE_NAMESPACE}={ns},{t.LABEL_SERVICE_NAME}={svc}"
    items = cluster.kubectl_json("configmaps", "-n", TABLES_NS, "-l", selector)["items"]
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in items}


def ready_endpoints(doc) -> int:
    """Ready endpoints of a table document (-1 when there is no document)."""
    return sum(1 for e in doc.endpoints if e.ready) if doc else -1


def ready_pods_in_table(doc) -> set[str]:
    """Names of the pods a table routes to."""
    return {e.pod for e in doc.endpoints if e.ready} if doc else set()


def rule_events(cluster, ns: str, name: str) -> list[dict]:
    """Events posted on a DestinationRule, oldest first."""
    items = cluster.kubectl_json(
        "events",
        "-n",
        ns,
        "--field-selector",
        f"involvedObject.kind=DestinationRule,involvedObject.name={name}",
    )
    return sorted(items["items"], key=lambda e: e.get("lastTimestamp") or e["eventTime"] or "")


def ready_condition(cluster, ns: str, name: str) -> dict:
    """The Ready condition of a DestinationRule's status ({} when absent)."""
    dr = cluster.kubectl_json("destinationrule", name, "-n", ns)
    conds = (dr.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "Ready"), {})


def httpbin_settled(cluster, ns: str, replicas: int):
    """The table of ns/httpbin once the Deployment has settled at `replicas` (its status says
    so for the current generation) and the table lists exactly those ready pods, and no pod on
    its way out: terminating endpoints stay in the document until their pods are gone (a real
    container takes up to its grace period), and their going rewrites the table.

    Waiting on the table's count alone races: `kubectl apply` of httpbin.yaml sets 3 replicas,
    so right after an apply + scale the table passes through other sizes on its way.
    """

    def settled():
        dep = cluster.kubectl_json("deployment", "httpbin", "-n", ns)
        st = dep.get("status") or {}
        if st.get("observedGeneration", 0) < dep["metadata"]["generation"]:
            return None
        if not (
            st.get("replicas") == st.get("readyReplicas") == replicas == dep["spec"]["replicas"]
        ):
            return None
        doc = table_doc(cluster, ns, "httpbin", 8000)
        return doc if doc and len(doc.endpoints) == ready_endpoints(doc) == replicas else None

    return wait_until(settled, timeout=180, what=f"{ns}/httpbin settled at {replicas} pods")
