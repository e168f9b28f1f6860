"""Deployment + Service on the lab: real controllers, real EndpointSlices, real pod servers.

Every check is what a user would run: kubectl for the API side, an HTTP request from inside
the lab's namespace for the data side.
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import json
import socket
import subprocess

import pytest

from tether.lab import Lab
from tether.lab.testing import wait_until

pytestmark = pytest.mark.lab

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: httpbin, labels: {app: httpbin}}
spec:
  replicas: 3
  selector: {matchLabels: {app: httpbin}}
  template:
    metadata: {labels: {app: httpbin}}
    spec:
      containers:
      - name: httpbin
        image: docker.io/kennethreitz/httpbin
        ports: [{containerPort: 80, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: httpbin, labels: {app: httpbin}}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: 80}]
"""


def ready_pods(lab: Lab, ns: str) -> dict[str, str]:
    """Return {pod name: pod IP} of Running, Ready, not terminating httpbin pods."""
    pods = lab.kubectl_json("pods", "-n", ns, "-l", "app=httpbin")["items"]
    out = {}
    for p in pods:
        conds = {c["type"]: c["status"] for c in p["status"].get("conditions", [])}
        if conds.get("Ready") == "True" and not p["metadata"].get("deletionTimestamp"):
            out[p["metadata"]["name"]] = p["status"]["podIP"]
    return out


def slices(lab: Lab, ns: str) -> list[dict]:
    """Return the EndpointSlices of Service httpbin."""
    sel = "kubernetes.io/service-name=httpbin"
    return lab.kubectl_json("endpointslices", "-n", ns, "-l", sel)["items"]


def ready_endpoints(lab: Lab, ns: str) -> dict[str, str]:
    """Return {pod name: address} of the ready endpoints over all of httpbin's slices."""
    out = {}
    for s in slices(lab, ns):
        for ep in s.get("endpoints") or []:
            if ep["conditions"].get("ready"):
                out[ep["targetRef"]["name"]] = ep["addresses"][0]
    return out


def settle(lab: Lab, ns: str, replicas: int) -> dict[str, str]:
    """Wait until `replicas` pods are Ready and the one slice lists exactly them as ready."""

    def converged():
        pods = ready_pods(lab, ns)
        return pods if len(pods) == replicas and ready_endpoints(lab, ns) == pods else None

    return wait_until(converged, timeout=60, what=f"{replicas} ready httpbin endpoints")


def get(ip: str, path: str = "/get", port: int = 80) -> tuple[int, dict, dict]:
    """GET http://ip:port/path from this process (inside the lab); return status, headers, JSON."""
    conn = http.client.HTTPConnection(ip, port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, dict(resp.getheaders()), json.loads(body) if body else {}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def httpbin(lab: Lab):
    """A namespace with Deployment httpbin (3 replicas) and Service httpbin."""
    ns = "lab-httpbin"
    lab.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=60s")
    lab.kubectl("create", "namespace", ns)
    wait_until(lambda: lab.kubectl("get", "sa", "default", "-n", ns, check=False), timeout=30)
    lab.apply(MANIFEST, ns)
    yield ns
    lab.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def scale(lab: Lab, ns: str, replicas: int) -> None:
    """`kubectl scale deployment httpbin --replicas N`."""
    lab.kubectl("scale", "deployment", "httpbin", "-n", ns, f"--replicas={replicas}")


def test_three_replicas_give_one_slice_with_three_ready_endpoints(lab: Lab, httpbin: str):
    scale(lab, httpbin, 3)
    pods = settle(lab, httpbin, 3)
    assert len(slices(lab, httpbin)) == 1
    pod_net = ipaddress.ip_network("10.244.0.0/16")
    assert all(ipaddress.ip_address(ip) in pod_net for ip in pods.values())
    assert len(set(pods.values())) == 3


def test_each_pod_ip_answers_with_its_own_name(lab: Lab, httpbin: str):
    scale(lab, httpbin, 3)
    for name, ip in settle(lab, httpbin, 3).items():
        status, headers, doc = get(ip)
        assert status == 200
        assert headers["X-Pod-Name"] == name
        assert doc["pod"] == name and doc["namespace"] == httpbin and doc["podIP"] == ip


def test_scale_to_five_then_two_and_removed_servers_are_gone(lab: Lab, httpbin: str):
    scale(lab, httpbin, 5)
    five = settle(lab, httpbin, 5)
    assert len(slices(lab, httpbin)) == 1
    scale(lab, httpbin, 2)
    two = settle(lab, httpbin, 2)
    removed = {name: ip for name, ip in five.items() if name not in two}
    assert len(removed) == 3

    def gone(name: str) -> bool:
        return not lab.kubectl("get", "pod", name, "-n", httpbin, "--ignore-not-found")

    for name, ip in removed.items():
        wait_until(lambda n=name: gone(n), timeout=30, what=f"pod {name} deleted")
        with pytest.raises(OSError) as refused:
            socket.create_connection((ip, 80), timeout=2).close()
        assert refused.value.errno in (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH)
        addrs = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
        assert f" {ip}/32 " not in addrs, f"address of deleted pod {name} still on lo"
    for name, ip in two.items():
        assert get(ip)[2]["pod"] == name


def test_keep_alive_connection_serves_many_requests(lab: Lab, httpbin: str):
    scale(lab, httpbin, 2)
    name, ip = sorted(settle(lab, httpbin, 2).items())[0]
    conn = http.client.HTTPConnection(ip, 80, timeout=5)
    try:
        for path in ("/get", "/headers", "/cookies", "/status/418", "/ip"):
            conn.request("GET", path, headers={"Cookie": "sticky-session-key=k1"})
            resp = conn.getresponse()
            resp.read()
            assert resp.getheader("X-Pod-Name") == name
            assert resp.status == (418 if path == "/status/418" else 200)
        sock_before = conn.sock
        conn.request("GET", "/cookies", headers={"Cookie": "sticky-session-key=k1"})
        doc = json.loads(conn.getresponse().read())
        assert conn.sock is sock_before, "the connection was not kept alive"
        assert doc["cookies"] == {"sticky-session-key": "k1"}
    finally:
        conn.close()


def test_graceful_deletion_finishes_in_flight_request_and_refuses_new(lab: Lab, httpbin: str):
    scale(lab, httpbin, 2)
    name, ip = sorted(settle(lab, httpbin, 2).items())[0]
    conn = http.client.HTTPConnection(ip, 80, timeout=15)
    conn.request("GET", "/drip?numbytes=5&duration=5")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("X-Pod-Name") == name
    first = resp.read(1)  # the request is now in flight on the pod's server
    lab.kubectl("delete", "pod", name, "-n", httpbin, "--wait=false")

    def refused() -> bool:
        try:
            socket.create_connection((ip, 80), timeout=1).close()
            return False
        except OSError:
            return True

    wait_until(refused, timeout=20, what=f"{name} refuses new connections")
    pod = lab.kubectl_json("pod", name, "-n", httpbin)
    assert pod["metadata"]["deletionTimestamp"], "the kubelet must wait for in-flight requests"
    rest = resp.read()
    conn.close()
    assert first + rest == b"*****", "the in-flight response was cut short"
    # terminationGracePeriodSeconds is 30: the pod is gone long before, because the kubelet
    # confirms the deletion as soon as the in-flight request is done.
    wait_until(
        lambda: not lab.kubectl("get", "pod", name, "-n", httpbin, "--ignore-not-found"),
        timeout=20,
        what=f"pod {name} deleted",
    )
