"""The kind Cluster config `tether kind up` writes: one node, the gateway on the host's loopback."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

GATEWAY_NODEPORT = 30080  # the gateway's plain HTTP (:8080) on the node
GATEWAY_TLS_NODEPORT = 30443  # its TLS listener (:8443), deploy/kind/gateway-nodeport.yaml

RESTRICT_OOM_PATCH = """[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
"""


@dataclass(frozen=True)
class ClusterConfig:
    """What `kind create cluster` is given (rendered by `render`)."""

    name: str
    host_port: int
    restrict_oom: bool
    tls_port: int | None = None  # the host port for the gateway's TLS listener (None: unmapped)

    def render(self) -> str:
        """The kind Cluster config (YAML, written as JSON: a YAML subset)."""
        ports = [_loopback(GATEWAY_NODEPORT, self.host_port)]
        if self.tls_port:
            ports.append(_loopback(GATEWAY_TLS_NODEPORT, self.tls_port))
        cfg: dict = {
            "kind": "Cluster",
            "apiVersion": "kind.x-k8s.io/v1alpha4",
            "name": self.name,
            "networking": {"apiServerAddress": "127.0.0.1", "disableDefaultCNI": True},
            "nodes": [
                {
                    "role": "control-plane",
                    "extraPortMappings": ports,
                }
            ],
        }
        if self.restrict_oom:
            cfg["containerdConfigPatches"] = [RESTRICT_OOM_PATCH]
        return json.dumps(cfg, indent=2) + "\n"


def _loopback(node_port: int, host_port: int) -> dict:
    return {"containerPort": node_port, "hostPort": host_port, "listenAddress": "127.0.0.1",
            "protocol": "TCP"}  # fmt: skip


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
