"""A restarted kubelet re-adopts its pods: same pods, same IPs, servers answer again."""

from __future__ import annotations

import http.client
import json

import pytest

from tether.lab import Lab
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


def test_restarted_kubelet_keeps_pods_and_ips(lab: Lab, namespace: str):
    lab.apply(MANIFEST, namespace)
    before = wait_until(lambda: (r := ready(lab, namespace)) and len(r) == 2 and r, timeout=60)
    lab.restart_kubelet()
    for name, (_, ip) in before.items():
        assert wait_until(lambda ip=ip: answers(ip), timeout=30, what=f"{ip} answers") == name
    assert ready(lab, namespace) == before
