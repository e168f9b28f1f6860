"""Where a lab keeps its state, and the fixed addresses inside its network namespace.

Every lab has its own network namespace, so the ports below never collide between labs or with
the host. The state directory lives outside the repository: `$TETHER_LAB_DIR/<name>`, by default
`/run/tether-lab/<name>` (tmpfs: etcd is fast and nothing survives a reboot).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

APISERVER_PORT = 6443
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
KCM_PORT = 10257
SCHEDULER_PORT = 10259
KUBELET_PORT = 10250

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
NODE_CIDR = "10.240.0.0/24"
NODE_POD_PREFIX = 20  # each node gets a /20 of POD_CIDR (4094 pod addresses)
MAX_PODS_PER_NODE = 1000
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
DEFAULT_NAME = "dev"


def state_root() -> Path:
    """Return the folder holding all labs' state: $TETHER_LAB_DIR, else /run/tether-lab when
    /run is writable (root), else ~/.cache/tether/labs (rootless)."""
    env = os.environ.get("TETHER_LAB_DIR")
    if env:
        return Path(env)
    if os.access("/run", os.W_OK):
        return Path("/run/tether-lab")
    cache = os.environ.get("TETHER_CACHE_DIR") or Path.home() / ".cache" / "tether"
    return Path(cache) / "labs"


def validate_name(name: str) -> str:
    """Return `name` if it is a valid lab name (DNS-label-like, ≤ 32 chars), else raise."""
    if not NAME_RE.match(name):
        raise ValueError(f"invalid lab name {name!r}: use 1-32 of [a-z0-9-], not starting with -")
    return name


def node_name(index: int) -> str:
    """Return the Node name of the lab's node number `index` (0-based)."""
    return f"lab-node-{index + 1}"


def node_ip(index: int) -> str:
    """Return the InternalIP of node `index` (an address on the lab's `lo`, never loopback)."""
    return str(ipaddress.ip_network(NODE_CIDR)[index + 1])


def node_pod_cidr(index: int) -> str:
    """Return node `index`'s slice of POD_CIDR; slices of different nodes never overlap."""
    subnets = ipaddress.ip_network(POD_CIDR).subnets(new_prefix=NODE_POD_PREFIX)
    for i, net in enumerate(subnets):
        if i == index:
            return str(net)
    raise ValueError(f"no pod CIDR left for node {index}")


@dataclass(frozen=True)
class LabPaths:
    """All files of one lab, derived from its name and the state root."""

    name: str
    root: Path

    @classmethod
    def of(cls, name: str) -> LabPaths:
        """Return the paths of lab `name` under state_root()."""
        return cls(validate_name(name), state_root() / name)

    @property
    def netns(self) -> str:
        """Name of the lab's network namespace (as listed by `ip netns`)."""
        return f"tether-lab-{self.name}"

    meta = property(lambda self: self.root / "lab.json", doc="lab metadata and daemon PIDs")
    pki = property(lambda self: self.root / "pki", doc="CA, serving certs, SA key, tokens")
    etcd_data = property(lambda self: self.root / "etcd", doc="etcd data directory")
    logs = property(lambda self: self.root / "logs", doc="one log file per daemon")
    pod_logs = property(lambda self: self.root / "logs" / "pods", doc="per-pod container logs")
    kubelet = property(lambda self: self.root / "kubelet", doc="kubelet state (per-pod dirs)")
    kubeconfig = property(lambda self: self.root / "admin.kubeconfig", doc="admin kubeconfig")
    run = property(lambda self: self.root / "run", doc="component configs and cert dirs")

    def component_kubeconfig(self, component: str) -> Path:
        """Return the kubeconfig a control-plane component or the kubelet uses."""
        return self.root / f"{component}.kubeconfig"

    def log(self, component: str) -> Path:
        """Return the log file of one daemon."""
        return self.logs / f"{component}.log"
