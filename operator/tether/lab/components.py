"""Command lines of the lab's daemons (all listen on 127.0.0.1 inside the lab's namespace).

Choices worth knowing:
- `TaintNodesByCondition` is disabled: the node-lifecycle controller (which would lift the
  not-ready taint) does not run, and the loopback kubelet keeps its nodes Ready itself.
- `--endpoint-reconciler-type=none`: the apiserver binds to 127.0.0.1, which may not appear in
  an EndpointSlice, so the `kubernetes` Service has no endpoints (nothing in the lab needs it).
- The ServiceAccount signing key enables TokenRequest; the `serviceaccount-controller` creates
  each namespace's `default` ServiceAccount.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tether.lab import layout
from tether.lab.layout import LabPaths

CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "endpointslice-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "clusterrole-aggregation-controller",
    "root-ca-certificate-publisher-controller",
)


def etcd(bins: Path, p: LabPaths) -> list[str]:
    """Return etcd's command line: one member, plain HTTP on 127.0.0.1, no fsync (tmpfs)."""
    client = f"http://127.0.0.1:{layout.ETCD_CLIENT_PORT}"
    peer = f"http://127.0.0.1:{layout.ETCD_PEER_PORT}"
    return [
        str(bins / "etcd"),
        "--name=lab",
        f"--data-dir={p.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=lab={peer}",
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def kube_apiserver(bins: Path, p: LabPaths) -> list[str]:
    """Return kube-apiserver's command line: RBAC on, token auth, TokenRequest enabled."""
    pki = p.pki
    return [
        str(bins / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{layout.ETCD_CLIENT_PORT}",
        "--bind-address=127.0.0.1",
        f"--secure-port={layout.APISERVER_PORT}",
        f"--advertise-address={layout.node_ip(0)}",
        "--endpoint-reconciler-type=none",
        f"--service-cluster-ip-range={layout.SERVICE_CIDR}",
        "--authorization-mode=RBAC",
        f"--token-auth-file={pki / 'tokens.csv'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--service-account-issuer={layout.SA_ISSUER}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--disable-admission-plugins=TaintNodesByCondition",
        "--kubelet-preferred-address-types=InternalIP",
        "--allow-privileged=true",
        "--profiling=false",
        "--enable-priority-and-fairness=false",
        f"--cert-dir={p.run / 'apiserver'}",
    ]


def kube_controller_manager(bins: Path, p: LabPaths) -> list[str]:
    """Return kube-controller-manager's command line with only the controllers the lab needs."""
    kc = p.component_kubeconfig("kube-controller-manager")
    return [
        str(bins / "kube-controller-manager"),
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={layout.KCM_PORT}",
        f"--cert-dir={p.run / 'kube-controller-manager'}",
        f"--root-ca-file={p.pki / 'ca.crt'}",
        f"--controllers={','.join(CONTROLLERS)}",
        "--profiling=false",
    ]


def scheduler_config(p: LabPaths) -> str:
    """Return the KubeSchedulerConfiguration (YAML) for the lab."""
    kc = p.component_kubeconfig("kube-scheduler")
    return (
        "apiVersion: kubescheduler.config.k8s.io/v1\n"
        "kind: KubeSchedulerConfiguration\n"
        f"clientConnection: {{kubeconfig: {kc}}}\n"
        "leaderElection: {leaderElect: false}\n"
    )


def kube_scheduler(bins: Path, p: LabPaths) -> list[str]:
    """Return kube-scheduler's command line (config file written by the caller)."""
    kc = p.component_kubeconfig("kube-scheduler")
    return [
        str(bins / "kube-scheduler"),
        f"--config={p.run / 'scheduler.yaml'}",
        "--bind-address=127.0.0.1",
        f"--secure-port={layout.SCHEDULER_PORT}",
        f"--cert-dir={p.run / 'kube-scheduler'}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
    ]


def kubelet(p: LabPaths, nodes: int) -> list[str]:
    """Return the loopback kubelet's command line (this Python, `-m tether.lab.kubelet`)."""
    return [sys.executable, "-m", "tether.lab.kubelet", "--state", str(p.root), f"--nodes={nodes}"]


ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet")
