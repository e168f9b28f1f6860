"""Node registration and heartbeats (Lease every 10 s, Node status every 60 s).

Nothing in the lab marks a silent node NotReady (the node-lifecycle controller does not run),
but the heartbeats are real, so `kubectl get lease -n kube-node-lease` shows a live kubelet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from datetime import UTC, datetime

from tether.lab import build, layout
from tether.lab.kubelet.api import Api, ApiError
from tether.lab.kubelet.status import now

log = logging.getLogger("tether.lab.kubelet")
LEASE_SECONDS = 40
LEASE_RENEW = 10.0
STATUS_EVERY = 60.0


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_object(index: int) -> dict:
    """Return the Node the kubelet registers for node number `index`."""
    name, cidr = layout.node_name(index), layout.node_pod_cidr(index)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "tether-lab",
                "tether.dev/lab-node": "true",
            },
        },
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
    }


def node_status(index: int, transitions: dict[str, str]) -> dict:
    """Return the Node status: Ready, no pressure, the node's InternalIP, lab capacity."""
    stamp = now()
    healthy = {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False",
               "PIDPressure": "False"}  # fmt: skip
    conditions = []
    for kind, value in healthy.items():
        since = transitions.setdefault(kind, stamp)
        reason = "KubeletReady" if kind == "Ready" else f"KubeletHasNo{kind}"
        conditions.append({"type": kind, "status": value, "reason": reason,
                           "message": "tether lab kubelet", "lastHeartbeatTime": stamp,
                           "lastTransitionTime": since})  # fmt: skip
    resources = {"cpu": "16", "memory": "64Gi", "pods": str(layout.MAX_PODS_PER_NODE),
                 "ephemeral-storage": "100Gi"}  # fmt: skip
    return {
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": layout.node_ip(index)},
            {"type": "Hostname", "address": layout.node_name(index)},
        ],
        "capacity": resources,
        "allocatable": resources,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": layout.KUBELET_PORT}},
        "nodeInfo": {
            "kubeletVersion": f"{build.K8S_VERSION}-tether-lab",
            "kubeProxyVersion": "",
            "containerRuntimeVersion": "tether-lab://1",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "osImage": "tether lab",
            "kernelVersion": platform.release(),
            "machineID": layout.node_name(index),
            "systemUUID": layout.node_name(index),
            "bootID": str(os.getpid()),
        },
    }


class NodeAgent:
    """Keeps one Node registered and Ready."""

    def __init__(self, api: Api, index: int) -> None:
        self.api, self.index = api, index
        self.name = layout.node_name(index)
        self._transitions: dict[str, str] = {}

    async def register(self) -> None:
        """Create the Node if missing, then publish its status and Lease once.

        Invariant on return: the Node exists with Ready=True.
        """
        try:
            await self.api.post("/api/v1/nodes", node_object(self.index))
        except ApiError as e:
            if e.status != 409:
                raise
        await self._post_status()
        await self._renew_lease()

    async def _post_status(self) -> None:
        body = {"status": node_status(self.index, self._transitions)}
        await self.api.merge_patch(f"/api/v1/nodes/{self.name}/status", body)

    async def _renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": _micro_now()}  # fmt: skip
        try:
            await self.api.merge_patch(path, {"spec": spec})
        except ApiError as e:
            if e.status != 404:
                raise
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": self.name, "namespace": "kube-node-lease"},
                     "spec": spec}  # fmt: skip
            await self.api.post(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease
            )

    async def heartbeat(self) -> None:
        """Renew the Lease every LEASE_RENEW s and the Node status every STATUS_EVERY s."""
        loop = asyncio.get_running_loop()
        last_status = loop.time()
        while True:
            await asyncio.sleep(LEASE_RENEW)
            try:
                await self._renew_lease()
                if loop.time() - last_status >= STATUS_EVERY:
                    await self._post_status()
                    last_status = loop.time()
            except Exception as e:  # the apiserver may be briefly away; try again next beat
                log.warning("heartbeat of %s failed: %s", self.name, e)
