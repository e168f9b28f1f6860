"""The loopback kubelet: registers the lab's nodes, then list+watches pods bound to them and
runs one PodWorker per pod.

After a restart it re-adopts what a previous kubelet left: pods keep their IPs (the addresses
stay on the namespace's `lo`), servers start again on them, tether processes that still run
are re-attached; addresses on `lo` that belong to no pod are removed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from tether.lab import layout
from tether.lab.kubelet import ipam
from tether.lab.kubelet.api import Api, ApiError
from tether.lab.kubelet.logserver import LogServer
from tether.lab.kubelet.node import NodeAgent
from tether.lab.kubelet.worker import TERMINAL, PodWorker
from tether.lab.layout import LabPaths

log = logging.getLogger("tether.lab.kubelet")


class Kubelet:
    """Runs the pods of `nodes` lab nodes."""

    def __init__(self, api: Api, paths: LabPaths, nodes: int) -> None:
        self.api, self.paths = api, paths
        self.nodes = [layout.node_name(i) for i in range(nodes)]
        self.ipam = [ipam.Ipam(layout.node_pod_cidr(i)) for i in range(nodes)]
        self.workers: dict[str, PodWorker] = {}
        self.ca_file = paths.pki / "ca.crt"
        self.bin_dir = Path(sys.executable).parent

    def node_index(self, node: str) -> int:
        """Return the index of one of this kubelet's nodes."""
        return self.nodes.index(node)

    def release(self, worker: PodWorker) -> None:
        """Forget a finished worker and free its address."""
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]
        self.ipam[worker.node_index].release(worker.uid)

    async def fetch_sources(self, namespace: str, refs: set[tuple[str, str]]) -> dict:
        """Return {(kind, name): data} of the ConfigMaps/Secrets `refs` (absent ones left out)."""
        import base64

        out = {}
        for kind, name in refs:
            plural = "configmaps" if kind == "configmap" else "secrets"
            try:
                obj = await self.api.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
            except ApiError as e:
                if e.status == 404:
                    continue
                raise
            data = obj.get("data") or {}
            if kind == "secret":
                data = {k: base64.b64decode(v).decode() for k, v in data.items()}
            out[(kind, name)] = data
        return out

    # -- pods ------------------------------------------------------------------------------
    def _mine(self, pod: dict) -> bool:
        return pod.get("spec", {}).get("nodeName") in self.nodes

    def dispatch(self, kind: str, pod: dict) -> None:
        """Apply one watch event (ADDED/MODIFIED/DELETED) for a pod."""
        if not self._mine(pod):
            return
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if kind == "DELETED":
            if worker:
                worker.deleted()
            return
        if worker:
            worker.update(pod)
            return
        finished = pod.get("status", {}).get("phase") in TERMINAL
        if finished and not pod["metadata"].get("deletionTimestamp"):
            return  # a finished pod from an earlier kubelet: nothing to run
        self.workers[uid] = PodWorker(self, pod)

    async def _relist(self) -> str:
        pods = await self.api.get("/api/v1/pods", fieldSelector="spec.nodeName!=")
        seen = set()
        for pod in pods["items"]:
            if self._mine(pod):
                seen.add(pod["metadata"]["uid"])
                self.dispatch("MODIFIED", pod)
        for uid, worker in list(self.workers.items()):
            if uid not in seen:
                worker.deleted()
        return pods["metadata"]["resourceVersion"]

    async def _clean_addresses(self) -> None:
        """Remove pod-CIDR addresses on `lo` that no pod owns (left by a killed kubelet)."""
        owned = {ip for pool in self.ipam for ip in pool.in_use().values()}
        for ip in await ipam.addresses_on_lo():
            if any(ip in pool for pool in self.ipam) and ip not in owned:
                await ipam.del_address(ip)

    async def run(self) -> None:
        """Register nodes, adopt existing pods, then follow the pod watch forever."""
        agents = [NodeAgent(self.api, i) for i in range(len(self.nodes))]
        for agent in agents:
            await agent.register()
        beats = [asyncio.create_task(a.heartbeat()) for a in agents]
        logs = LogServer(self)
        await logs.start()
        rv: str | None = await self._relist()
        await self._clean_addresses()
        ready = {"pid": os.getpid(), "adopted": len(self.workers), "nodes": self.nodes}
        (self.paths.kubelet / "ready.json").write_text(json.dumps(ready))
        log.info("kubelet ready: nodes %s, %d pod(s) adopted", self.nodes, len(self.workers))
        try:
            while True:
                if rv is None:
                    try:
                        rv = await self._relist()
                    except Exception as e:  # apiserver away: keep trying, pods keep running
                        log.warning("relist failed: %s", e)
                        await asyncio.sleep(1.0)
                        continue
                rv = await self._watch(rv)
        finally:
            for b in beats:
                b.cancel()
            await logs.stop()

    async def _watch(self, rv: str) -> str | None:
        """Follow the pod watch from `rv`; return the last version seen, or None to relist."""
        try:
            async for event in self.api.watch("/api/v1/pods", rv, fieldSelector="spec.nodeName!="):
                obj = event["object"]
                if event["type"] == "ERROR":
                    log.info("watch error %s: relisting", obj.get("message"))
                    return None
                rv = obj["metadata"].get("resourceVersion", rv)
                if event["type"] != "BOOKMARK":
                    self.dispatch(event["type"], obj)
            return rv
        except Exception as e:  # broken stream, apiserver restart: relist
            log.warning("pod watch interrupted: %r; relisting", e)
            await asyncio.sleep(0.5)
            return None
