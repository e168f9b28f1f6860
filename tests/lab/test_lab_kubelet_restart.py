"""A restarted kubelet re-adopts its pods: same pods, same IPs, servers answer again, and a
tether-image process keeps running untouched (same PID, no restart)."""

from __future__ import annotations

import http.client
import json

import pytest

from tether.lab import Lab, procs
from tether.lab.testing import wait_until

pytestmark = pytest.mark.lab

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: sticky}
spec:
  replicas: 2
  selector: {matchLabels: {app: sticky}}
  template:
    metadata: {labels: {app: sticky}}
    spec:
      containers:
      - {name: web, image: httpbin, ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: proc}
spec:
  containers:
  - name: web
    image: tether:dev
    command: [python, -m, http.server, --bind, $(POD_IP), "9000"]
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    readinessProbe: {tcpSocket: {port: 9000}, periodSeconds: 1}
"""


def ready(lab: Lab, ns: str) -> dict[str, tuple[str, str]]:
    """Return {pod name: (uid, ip)} of Ready pods."""
    out = {}
    for p in lab.kubectl_json("pods", "-n", ns, "-l", "app=sticky")["items"]:
        conds = {c["type"]: c["status"] for c in p["status"].get("conditions", [])}
        if conds.get("Ready") == "True":
            out[p["metadata"]["name"]] = (p["metadata"]["uid"], p["status"]["podIP"])
    return out


def answers(ip: str) -> str | None:
    """Return the pod name that answers on ip:8080, or None if nothing does."""
    try:
        conn = http.client.HTTPConnection(ip, 8080, timeout=2)
        conn.request("GET", "/get")
        return json.loads(conn.getresponse().read())["pod"]
    except OSError:
        return None


def proc_status(lab: Lab, ns: str) -> tuple[int, int, bool]:
    """Return (pid, restartCount, ready) of pod `proc`'s process."""
    p = lab.kubectl_json("pod", "proc", "-n", ns)
    pidfile = lab.paths.kubelet / "pods" / p["metadata"]["uid"] / "web.pid"
    cs = p["status"]["containerStatuses"][0]
    return json.loads(pidfile.read_text())["pid"], cs["restartCount"], cs["ready"]


def test_restarted_kubelet_keeps_pods_and_ips(lab: Lab, namespace: str):
    lab.apply(MANIFEST, namespace)
    before = wait_until(lambda: (r := ready(lab, namespace)) and len(r) == 2 and r, timeout=60)
    pid, restarts, _ = wait_until(
        lambda: (s := proc_status(lab, namespace))[2] and s, timeout=60, what="proc ready"
    )
    lab.restart_kubelet()
    for name, (_, ip) in before.items():
        assert wait_until(lambda ip=ip: answers(ip), timeout=30, what=f"{ip} answers") == name
    assert ready(lab, namespace) == before
    # The process was adopted, not restarted: same PID, same restart count, Ready again.
    wait_until(lambda: proc_status(lab, namespace) == (pid, restarts, True), timeout=30)
    assert procs.alive(pid)
