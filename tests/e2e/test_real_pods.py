"""What only real pods can show: the image's identity, its security context, its credentials.

These scenarios run on kind only: they need `kubectl exec` into a real container, which the
lab's kubelet does not emulate (its pods are processes sharing one namespace, credentials come
from a per-pod kubeconfig; tests/lab/test_lab_tether_pod.py covers the lab's side).
"""

from __future__ import annotations

import json

import pytest

from .deploy import GATEWAY, OPERATOR, TABLES_NS

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tether_gateway")]


def _exec(cluster, selector: str, *cmd: str, check: bool = True) -> str:
    pod = cluster.kubectl_json("pods", "-n", TABLES_NS, "-l", selector)["items"][0]
    return cluster.kubectl("exec", "-n", TABLES_NS, pod["metadata"]["name"], "--", *cmd,
                           check=check)  # fmt: skip


@pytest.mark.only_on("kind")
def test_gateway_and_operator_use_their_mounted_service_account_tokens(cluster):
    """kind only: `kubectl exec` into the container (not emulated by the lab's kubelet)."""
    for selector, sa, readable in ((GATEWAY, "tether-gateway", "configmaps"),
                                   (OPERATOR, "tether-operator", "configmaps")):  # fmt: skip
        who = json.loads(_exec(cluster, selector, "tether", "lab", "whoami",
                               "--list", readable, "--list", "secrets"))  # fmt: skip
        assert who["credentials"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
        assert who["username"] == f"system:serviceaccount:{TABLES_NS}:{sa}"
        assert who["list"] == {readable: 200, "secrets": 403}, who


@pytest.mark.only_on("kind")
def test_containers_run_as_non_root_on_a_read_only_root_filesystem(cluster):
    """kind only: the lab's kubelet does not apply securityContext (its pods are processes)."""
    for selector in (GATEWAY, OPERATOR):
        assert _exec(cluster, selector, "id", "-u").strip() == "65532"
        out = _exec(cluster, selector, "sh", "-c", "touch /probe 2>&1; echo rc=$?", check=False)
        assert "Read-only file system" in out and "rc=1" in out, out
        caps = _exec(cluster, selector, "sh", "-c", "grep CapEff /proc/self/status")
        assert caps.split()[1] == "0000000000000000", caps


@pytest.mark.only_on("kind")
def test_pods_resolve_services_through_coredns_and_reach_them_through_kube_proxy(cluster):
    """kind only: the lab runs no CoreDNS and no kube-proxy (ClusterIPs are not routed there)."""
    svc = cluster.kubectl_json("service", "tether-gateway", "-n", TABLES_NS)
    script = (
        "import socket, urllib.request; "
        "print(socket.gethostbyname('tether-gateway.tether-system.svc.cluster.local')); "
        "print(urllib.request.urlopen('http://tether-gateway.tether-system:9901/readyz').status)"
    )
    ip, status = _exec(cluster, OPERATOR, "python3", "-c", script).split()
    assert ip == svc["spec"]["clusterIP"]
    assert status == "200"
