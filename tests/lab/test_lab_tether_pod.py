"""Pods of tether's image run the real `tether` process with the pod's ServiceAccount token.

`tether lab whoami` inside the pod asks the apiserver who it is (SelfSubjectReview) and tries
real list calls, so the test sees the identity *and* RBAC as the apiserver applies them.
"""

from __future__ import annotations

import http.client
import json
import os
import sys

import pytest

from tether.lab import Lab, procs
from tether.lab.testing import wait_until

pytestmark = pytest.mark.lab

RBAC = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader-reads-pods}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects: [{kind: ServiceAccount, name: reader}]
"""

WHOAMI_POD = """
apiVersion: v1
kind: Pod
metadata: {name: whoami}
spec:
  serviceAccountName: reader
  restartPolicy: Never
  containers:
  - name: tether
    image: ghcr.io/example/tether:dev
    command: [tether, lab, whoami, --list, pods, --list, secrets]
"""

SERVER_POD = """
apiVersion: v1
kind: Pod
metadata: {name: served, labels: {app: served}}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: web
    image: tether:dev
    command: [python, -m, http.server, --bind, $(POD_IP), "8080"]
    env:
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    ports: [{containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /, port: 8080}
      periodSeconds: 2
"""

CRASHING_POD = """
apiVersion: v1
kind: Pod
metadata: {name: crashes}
spec:
  containers:
  - name: tether
    image: tether:dev
    command: [python, -c, "import sys; print('bye'); sys.exit(3)"]
"""

LIVENESS_POD = """
apiVersion: v1
kind: Pod
metadata: {name: unhealthy}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: web
    image: tether:dev
    command: [python, -m, http.server, --bind, $(POD_IP), "8080"]
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    livenessProbe:
      httpGet: {path: /no-such-page, port: 8080}
      periodSeconds: 1
      failureThreshold: 2
"""


def pod(lab: Lab, ns: str, name: str) -> dict:
    """Return the pod as JSON ({} when it does not exist)."""
    out = lab.kubectl("get", "pod", name, "-n", ns, "-o", "json", "--ignore-not-found")
    return json.loads(out) if out.strip() else {}


def log_of(lab: Lab, ns: str, name: str) -> str:
    """Return the current log of the pod's only container, via `tether lab logs`."""
    return lab.run(
        [sys.executable, "-m", "tether", "lab", "logs", "--name", lab.name, "-n", ns, name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_tether_pod_uses_its_bound_service_account_token(lab: Lab, namespace: str):
    lab.apply(RBAC, namespace)
    lab.apply(WHOAMI_POD, namespace)
    done = wait_until(
        lambda: pod(lab, namespace, "whoami")["status"].get("phase") in ("Succeeded", "Failed"),
        timeout=60,
        what="whoami pod finished",
    )
    assert done
    p = pod(lab, namespace, "whoami")
    out = log_of(lab, namespace, "whoami")
    assert p["status"]["phase"] == "Succeeded", out
    me = json.loads(out)
    assert me["username"] == f"system:serviceaccount:{namespace}:reader"
    assert f"system:serviceaccounts:{namespace}" in me["groups"]
    # The token came from TokenRequest bound to this very pod.
    assert me["extra"]["authentication.kubernetes.io/pod-name"] == ["whoami"]
    assert me["extra"]["authentication.kubernetes.io/pod-uid"] == [p["metadata"]["uid"]]
    # RBAC applies: the Role grants listing pods, nothing grants secrets.
    assert me["list"] == {"pods": 200, "secrets": 403}


def test_process_pod_gets_ready_by_probe_serves_on_pod_ip_and_stops_on_delete(
    lab: Lab, namespace: str
):
    lab.apply(SERVER_POD, namespace)

    def ready():
        st = pod(lab, namespace, "served").get("status", {})
        conds = {c["type"]: c["status"] for c in st.get("conditions", [])}
        return st if conds.get("Ready") == "True" else None

    status = wait_until(ready, timeout=60, what="served pod Ready")
    ip = status["podIP"]
    conn = http.client.HTTPConnection(ip, 8080, timeout=5)
    conn.request("GET", "/")
    assert conn.getresponse().status == 200
    conn.close()
    pod_dir = lab.paths.kubelet / "pods" / pod(lab, namespace, "served")["metadata"]["uid"]
    pid = json.loads((pod_dir / "web.pid").read_text())["pid"]
    os.kill(pid, 0)  # the real process runs
    lab.kubectl("delete", "pod", "served", "-n", namespace, "--wait=false")
    # http.server dies on SIGTERM, so the pod goes well before its 20 s grace period.
    wait_until(lambda: not pod(lab, namespace, "served"), timeout=15, what="served pod deleted")
    assert not procs.alive(pid), "the pod's process survived its deletion"


def test_exiting_process_is_restarted_with_back_off(lab: Lab, namespace: str):
    lab.apply(CRASHING_POD, namespace)

    def restarted_twice():
        statuses = pod(lab, namespace, "crashes").get("status", {}).get("containerStatuses", [])
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 2 else None

    cs = wait_until(restarted_twice, timeout=60, what="two restarts")
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert pod(lab, namespace, "crashes")["status"]["phase"] == "Running"
    # `kubectl logs` reaches the kubelet through the apiserver, like on any cluster.
    assert "bye" in lab.kubectl("logs", "crashes", "-n", namespace, "--previous")


def test_failing_liveness_probe_restarts_the_process(lab: Lab, namespace: str):
    lab.apply(LIVENESS_POD, namespace)

    def restarted():
        statuses = pod(lab, namespace, "unhealthy").get("status", {}).get("containerStatuses", [])
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 1 else None

    cs = wait_until(restarted, timeout=60, what="a liveness restart")
    # http.server exits on SIGTERM: 128 + 15, as a container runtime reports it.
    assert cs["lastState"]["terminated"]["exitCode"] == 143
