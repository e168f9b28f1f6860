"""One pod's life on the loopback kubelet: IP, containers, status reports, graceful deletion.

Deletion follows the kubelet's contract: when the pod gets a deletionTimestamp its containers
stop within deletionGracePeriodSeconds (a preStop `sleep` hook first, while the pod stays
Ready; then servers stop accepting and finish in-flight requests; processes get SIGTERM, then
SIGKILL), then the kubelet confirms with a grace-0 delete
(precondition: same UID) and releases the IP.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tether.lab import apipath, layout
from tether.lab.kubelet import creds, env, ipam
from tether.lab.kubelet.api import ApiError
from tether.lab.kubelet.containers import BackendContainer, Container, ProcessContainer
from tether.lab.kubelet.status import now, pod_status

if TYPE_CHECKING:
    from tether.lab.kubelet.agent import Kubelet

log = logging.getLogger("tether.lab.kubelet")
TERMINAL = ("Succeeded", "Failed")


class PodWorker:
    """Runs one pod (identified by UID) from first sight until its deletion is confirmed."""

    def __init__(self, kubelet: Kubelet, pod: dict) -> None:
        meta = pod["metadata"]
        self.k, self.pod = kubelet, pod
        self.uid, self.name, self.namespace = meta["uid"], meta["name"], meta["namespace"]
        self.node_index = kubelet.node_index(pod["spec"]["nodeName"])
        self.host_ip = layout.node_ip(self.node_index)
        self.ip: str | None = None
        self.containers: list[Container] = []
        self.transitions: dict[str, tuple[bool, str]] = {}
        self.start_time = pod.get("status", {}).get("startTime") or now()
        self.pod_dir = kubelet.paths.kubelet / "pods" / self.uid
        self.log_dir = kubelet.paths.pod_logs / f"{self.namespace}_{self.name}_{self.uid}"
        self.terminating = asyncio.Event()
        self.gone = False
        self.reporting = True
        self._dirty = asyncio.Event()
        self._last_sent: dict | None = None
        self._kubeconfig: Path | None = None
        self._api_server: str | None = None
        self._refresher: asyncio.Task | None = None
        self._allocate()
        self.task = asyncio.create_task(self._run(), name=f"pod {self.namespace}/{self.name}")
        self.update(pod)

    @property
    def restart_policy(self) -> str:
        """The pod's restartPolicy (Always by default)."""
        return self.pod["spec"].get("restartPolicy", "Always")

    def update(self, pod: dict) -> None:
        """Take the latest version of the pod; a deletionTimestamp starts graceful termination."""
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.terminating.set()

    def deleted(self) -> None:
        """The pod object is gone from the API: stop everything at once."""
        self.gone = True
        self.terminating.set()

    def changed(self) -> None:
        """Schedule a status report (bursts coalesce into one PATCH)."""
        self._dirty.set()

    # -- logs ------------------------------------------------------------------------------
    def log_path(self, container: str, restart: int) -> Path:
        """Return the log file of one run of a container (`<container>/<restart>.log`)."""
        path = self.log_dir / container / f"{restart}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_log(self, container: str, restart: int, line: str) -> None:
        """Append one line to a container's current log."""
        with open(self.log_path(container, restart), "a") as f:
            f.write(f"{now()} {line}\n")

    # -- life --------------------------------------------------------------------------------
    async def _run(self) -> None:
        """Start, wait for deletion, stop. If the kubelet itself exits (this task is
        cancelled) the pod keeps its address and its processes: the next kubelet adopts them."""
        reporter = asyncio.create_task(self._report_loop())
        try:
            await self._start()
            await self.terminating.wait()
            await self._stop()
        except Exception:
            log.exception("pod %s/%s failed", self.namespace, self.name)
        finally:
            if self._refresher is not None:
                self._refresher.cancel()
            await self._flush(reporter)
        if self.ip and not self.pod["spec"].get("hostNetwork"):
            if any(isinstance(c, ProcessContainer) for c in self.containers):
                await asyncio.to_thread(apipath.close_path, self.ip)  # its own API port
            await ipam.del_address(self.ip)
        self.k.release(self)

    def _allocate(self) -> None:
        """Take the pod's address now (synchronously), so a relist sees it owned at once."""
        if self.pod["spec"].get("hostNetwork"):
            self.ip = self.host_ip
        else:
            prefer = self.pod.get("status", {}).get("podIP")
            self.ip = self.k.ipam[self.node_index].allocate(self.uid, prefer=prefer)

    async def _start(self) -> None:
        self.pod_dir.mkdir(parents=True, exist_ok=True)
        status = self.pod.get("status", {})
        if not self.pod["spec"].get("hostNetwork"):
            await ipam.add_address(self.ip)
        previous = {c["name"]: c for c in status.get("containerStatuses", [])}
        for spec in self.pod["spec"]["containers"]:
            kind = (
                ProcessContainer if env.is_tether_image(spec.get("image", "")) else BackendContainer
            )
            self.containers.append(kind(self, spec, previous.get(spec["name"])))
        # A pod first seen terminating (or finished) runs nothing new: it only gets stopped.
        finished = status.get("phase") in TERMINAL
        adopt_only = self.terminating.is_set() or finished
        self.reporting = not adopt_only
        # No report yet: each container reports once it runs (or why it cannot), so a fast
        # backend pod goes to the API once, already Running and Ready.
        await asyncio.gather(*(c.start(adopt_only) for c in self.containers))

    async def _stop(self) -> None:
        meta = self.pod["metadata"]
        grace = 0 if self.gone else meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        started = time.monotonic()
        await asyncio.gather(*(c.terminate(float(grace)) for c in self.containers))
        log.info("pod %s/%s stopped in %.2f s (grace %s s)", self.namespace, self.name,
                 time.monotonic() - started, grace)  # fmt: skip
        if not self.gone:
            body = {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}
            try:
                await self.k.api.delete(
                    f"/api/v1/namespaces/{self.namespace}/pods/{self.name}", body
                )
            except ApiError as e:
                if e.status not in (404, 409):
                    raise

    # -- status --------------------------------------------------------------------------------
    def _status(self) -> dict:
        states = [c.state for c in self.containers]
        return pod_status(states, self.restart_policy, self.ip, self.host_ip, self.start_time,
                          self.transitions)  # fmt: skip

    async def _report_loop(self) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status"
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if self.gone or not self.containers or not self.reporting:
                continue
            status = self._status()
            if status == self._last_sent:
                continue
            try:
                await self.k.api.merge_patch(path, {"status": status})
                self._last_sent = status
            except ApiError as e:
                if e.status in (404, 422):  # gone, or a status the API will never accept
                    log.warning("status of %s/%s: %s", self.namespace, self.name, e)
                    return
                log.warning("status of %s/%s: %s", self.namespace, self.name, e)
                await asyncio.sleep(0.5)
                self._dirty.set()
            except Exception as e:  # connection trouble: retry
                log.warning("status of %s/%s: %s", self.namespace, self.name, e)
                await asyncio.sleep(0.5)
                self._dirty.set()

    async def _flush(self, reporter: asyncio.Task) -> None:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)

    # -- process containers --------------------------------------------------------------------
    async def launch(self, spec: dict) -> tuple[list[str], dict[str, str]]:
        """Return (argv, env) for a process container: credentials fetched and written first.

        Raises env.ConfigError when a referenced ConfigMap/Secret key is missing.
        """
        if self._kubeconfig is None:
            token = None
            if await creds.automount(self.k.api, self.pod):
                token, expiry = await creds.request_token(self.k.api, self.pod)
                self._refresher = asyncio.create_task(self._refresh_token(expiry))
            self._api_server = await asyncio.to_thread(apipath.open_path, self.ip or "")
            self._kubeconfig = creds.write_files(
                self.pod_dir, self.pod, token, self.k.ca_file, self._api_server
            )
        sources = await self.k.fetch_sources(self.namespace, env.references(spec))
        base = {
            "PATH": f"{self.k.bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.pod_dir),
            "HOSTNAME": self.name,
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "KUBECONFIG": str(self._kubeconfig),
            "TETHER_LAB_POD_DIR": str(self.pod_dir),
        }
        variables = env.container_env(spec, self.pod, self.ip or "", self.host_ip, sources, base)
        return env.command_line(spec, variables, self.k.bin_dir), variables

    async def _refresh_token(self, expiry: float) -> None:
        """Re-request the token at 80 % of its lifetime, as the kubelet does."""
        while not self.terminating.is_set():
            await asyncio.sleep(max(60.0, 0.8 * (expiry - time.time())))
            try:
                token, expiry = await creds.request_token(self.k.api, self.pod)
                creds.write_files(self.pod_dir, self.pod, token, self.k.ca_file, self._api_server)
            except Exception as e:
                log.warning("token refresh for %s/%s failed: %s", self.namespace, self.name, e)
