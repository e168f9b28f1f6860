"""The two kinds of container the loopback kubelet runs.

- `BackendContainer` (any image but tether's): httpbin-like servers inside the kubelet process,
  one per declared TCP containerPort (port 80 if none is declared).
- `ProcessContainer` (tether's image): the real `tether` process with the container's
  command, args and env, restarted per restartPolicy with back-off (1 s doubling to 30 s; a
  real kubelet uses 10 s to 5 min), stopped with SIGTERM, then SIGKILL after the grace period.

Readiness: a container is ready when it runs and, if it has a readinessProbe (httpGet or
tcpSocket), once the probe passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from typing import TYPE_CHECKING

from tether.lab import procs
from tether.lab.kubelet import probes
from tether.lab.kubelet.env import ConfigError
from tether.lab.kubelet.httpbin import Pod
from tether.lab.kubelet.socketio_app import backend_for
from tether.lab.kubelet.status import ContainerState, now, terminated

if TYPE_CHECKING:
    from tether.lab.kubelet.worker import PodWorker

log = logging.getLogger("tether.lab.kubelet")
BACKOFF_START, BACKOFF_MAX, BACKOFF_RESET_AFTER = 1.0, 30.0, 10.0
RETRY_CONFIG = 2.0


class Container:
    """Common part: state, readiness (probe or 'running'), status change notification."""

    def __init__(self, worker: PodWorker, spec: dict, previous: dict | None) -> None:
        self.w, self.spec, self.name = worker, spec, spec["name"]
        self.state = ContainerState(self.name, spec.get("image", ""))
        if previous:
            self.state.restart_count = previous.get("restartCount", 0)
            self.state.last_terminated = previous.get("lastState", {}).get("terminated")
        self._probe_task: asyncio.Task | None = None
        self._live_task: asyncio.Task | None = None
        self.stopping = False

    def _set_ready(self, ready: bool) -> None:
        if self.state.ready != ready:
            self.state.ready = ready
            self.w.changed()

    def _now_running(self, since: str | None = None) -> None:
        self.state.running_since = since or now()
        self.state.terminated = None
        self.state.waiting_reason = None
        self.state.waiting_message = ""
        probe = self.spec.get("readinessProbe")
        check = probes.checker(probe, self.spec, self.w.ip) if probe else None
        if check is None:
            self._set_ready(True)
        else:
            self._probe_task = asyncio.create_task(
                probes.run_readiness(probe, check, self._set_ready)
            )
        self._start_liveness()
        self.w.changed()

    def _start_liveness(self) -> None:
        """Liveness applies to processes only (a backend's servers live in the kubelet)."""

    def _not_running(self) -> None:
        for task in (self._probe_task, self._live_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        self._probe_task = self._live_task = None
        self.state.running_since = None
        self.state.ready = False
        self.w.changed()

    def _waiting(self, reason: str, message: str = "") -> None:
        self.state.running_since = None
        self.state.waiting_reason, self.state.waiting_message = reason, message
        self.w.changed()

    async def start(self, adopt_only: bool = False) -> None:
        """Start the container (returns once it runs or has been scheduled to retry).

        With `adopt_only` (a pod first seen already terminating) nothing new is started; a
        process left by a previous kubelet is re-attached so that it can be stopped.
        """
        raise NotImplementedError

    async def stop(self, grace: float) -> None:
        """Stop the container within `grace` seconds."""
        raise NotImplementedError

    async def terminate(self, grace: float) -> None:
        """A real kubelet's order: the preStop hook first, then stop, all within `grace`.

        Only the `sleep` hook is emulated (Kubernetes' PodLifecycleSleepAction): the container
        keeps running and its readiness probe keeps reporting, so the pod stays Ready and its
        EndpointSlice endpoint is `serving` (and `terminating`) while it sleeps. A pod deleted
        with grace 0 runs no hook.
        """
        began = time.monotonic()
        hook = (self.spec.get("lifecycle") or {}).get("preStop") or {}
        seconds = (hook.get("sleep") or {}).get("seconds")
        if seconds and grace > 0 and self.state.running_since is not None:
            self.w.write_log(self.name, self.state.restart_count, f"preStop: sleep {seconds}")
            await asyncio.sleep(min(float(seconds), grace))
        await self.stop(max(0.0, grace - (time.monotonic() - began)))

    async def crash(self) -> None:
        """Kill the running container without grace (SIGKILL); it restarts per restartPolicy."""
        raise NotImplementedError


class BackendContainer(Container):
    """httpbin-like servers on podIP:port for every declared TCP port."""

    def ports(self) -> list[int]:
        """Return the TCP ports to serve (declared containerPorts, or 80)."""
        declared = [
            int(p["containerPort"])
            for p in self.spec.get("ports", [])
            if p.get("protocol", "TCP") == "TCP"
        ]
        return sorted(set(declared)) or [80]

    async def start(self, adopt_only: bool = False) -> None:
        """Serve the httpbin backend on every declared port; Running once all listen."""
        if adopt_only:
            return
        pod = Pod(self.w.name, self.w.namespace, self.w.ip)
        self.servers = [backend_for(self.spec, pod, port) for port in self.ports()]
        await self._serve()

    async def crash(self) -> None:
        """Emulate the container's process SIGKILLed: every socket closes at once (listener and
        connections, busy ones aborted), it exits 137 and restarts per restartPolicy (after
        the back-off's first step, as a process container does)."""
        if self.stopping or self.state.running_since is None:
            return
        started = self.state.running_since
        self._not_running()
        await asyncio.gather(*(s.stop(0.0) for s in self.servers))
        result = terminated(137, started)
        self.w.write_log(self.name, self.state.restart_count, "killed (SIGKILL, lab fault)")
        if self.w.restart_policy == "Never":
            self.state.terminated = result
            self.w.changed()
            return
        self.state.last_terminated = result
        self.state.restart_count += 1
        self._waiting(
            "CrashLoopBackOff", f"back-off {BACKOFF_START:.0f}s restarting failed container"
        )
        self._restart = asyncio.create_task(self._serve(delay=BACKOFF_START))

    async def _serve(self, delay: float = 0.0) -> None:
        await asyncio.sleep(delay)
        self.state.container_id = f"lab://{self.w.uid}/{self.name}/{self.state.restart_count}"
        while not self.stopping:
            try:
                for server in self.servers:
                    if not server.listening:
                        await server.start()
                break
            except OSError as e:
                self._waiting("RunContainerError", f"cannot listen: {e}")
                await asyncio.sleep(RETRY_CONFIG)
        if self.stopping:
            return
        where = ", ".join(f"{self.w.ip}:{s.port}" for s in self.servers)
        kind = getattr(self.servers[0], "kind", "httpbin") if self.servers else "httpbin"
        self.w.write_log(self.name, self.state.restart_count, f"{kind} backend serving on {where}")
        self._now_running()

    async def stop(self, grace: float) -> None:
        """Stop accepting, let in-flight requests finish within `grace`, then report exit 0."""
        self.stopping = True
        started = self.state.running_since
        self._not_running()
        await asyncio.gather(*(s.stop(grace) for s in getattr(self, "servers", [])))
        self.state.terminated = terminated(0, started)
        self.w.changed()


class ProcessContainer(Container):
    """A real process (tether's image) supervised per restartPolicy."""

    def __init__(self, worker: PodWorker, spec: dict, previous: dict | None) -> None:
        super().__init__(worker, spec, previous)
        self.proc: asyncio.subprocess.Process | None = None
        self.pid: int | None = None
        self._task: asyncio.Task | None = None
        self.pidfile = worker.pod_dir / f"{self.name}.pid"

    async def start(self, adopt_only: bool = False) -> None:
        """Supervise the process (or adopt the one from a previous kubelet) per restartPolicy."""
        self._task = asyncio.create_task(self._supervise(adopt_only))

    async def _spawn(self) -> float:
        argv, env = await self.w.launch(self.spec)
        restart = self.state.restart_count
        logfile = self.w.log_path(self.name, restart)
        # The lab has no container filesystem: an image's workingDir (e.g. /app) rarely exists
        # here, so the pod's own directory stands in for it.
        wanted = self.spec.get("workingDir")
        cwd = wanted if wanted and os.path.isdir(wanted) else str(self.w.pod_dir)
        with open(logfile, "ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                cwd=cwd, start_new_session=True)  # fmt: skip
        self.pid = self.proc.pid
        started = now()
        self.state.container_id = f"lab://{self.w.uid}/{self.name}/{restart}"
        self.pidfile.write_text(json.dumps(
            {"pid": self.pid, "start": procs.start_time(self.pid), "startedAt": started,
             "restart": restart}))  # fmt: skip
        log.info("pod %s/%s: started %s (pid %d)", self.w.namespace, self.w.name, argv, self.pid)
        self._now_running(started)
        return time.monotonic()

    async def _adopt(self) -> float | None:
        """Re-attach to a process a previous kubelet started; return when it began, or None."""
        try:
            rec = json.loads(self.pidfile.read_text())
        except (OSError, ValueError):
            return None
        if not procs.alive(rec["pid"], rec.get("start")):
            return None
        self.pid = rec["pid"]
        self.state.container_id = f"lab://{self.w.uid}/{self.name}/{rec['restart']}"
        log.info("pod %s/%s: adopted pid %d", self.w.namespace, self.w.name, self.pid)
        self._now_running(rec["startedAt"])
        return time.monotonic()

    def _start_liveness(self) -> None:
        probe = self.spec.get("livenessProbe")
        check = probes.checker(probe, self.spec, self.w.ip) if probe else None
        if check is not None:
            self._live_task = asyncio.create_task(probes.run_liveness(probe, check, self._kill))

    async def _kill(self) -> None:
        """Liveness failed: stop this run like the kubelet does (the supervisor restarts it)."""
        pid = self.pid
        log.info("pod %s/%s: container %s failed liveness, killing pid %s", self.w.namespace,
                 self.w.name, self.name, pid)  # fmt: skip
        if pid is not None:
            await _terminate(
                pid, float(self.w.pod["spec"].get("terminationGracePeriodSeconds", 30))
            )

    async def _wait_exit(self) -> int:
        if self.proc is not None:
            code = await self.proc.wait()
            return 128 - code if code < 0 else code  # killed by signal N: 128+N, as runtimes do
        # An adopted process is not our child: wait on a pidfd; its exit code is unknowable.
        fd = os.pidfd_open(self.pid)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.add_reader(fd, lambda: done.done() or done.set_result(None))
        try:
            await done
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        return 137

    async def _supervise(self, adopt_only: bool) -> None:
        backoff = BACKOFF_START
        began = await self._adopt()
        if began is None and adopt_only:
            return
        while not self.stopping:
            if began is None:
                try:
                    began = await self._spawn()
                except ConfigError as e:
                    self._waiting("CreateContainerConfigError", str(e))
                    await asyncio.sleep(RETRY_CONFIG)
                    continue
                except Exception as e:  # exec failure, token request refused, API away
                    log.warning("pod %s/%s: cannot start %s: %s", self.w.namespace, self.w.name,
                                self.name, e)  # fmt: skip
                    self._waiting("RunContainerError", str(e))
                    await asyncio.sleep(RETRY_CONFIG)
                    continue
            started = self.state.running_since
            code = await self._wait_exit()
            self.proc, ran = None, time.monotonic() - began
            log.info("pod %s/%s: container %s exited with %d after %.2f s", self.w.namespace,
                     self.w.name, self.name, code, ran)  # fmt: skip
            self.pidfile.unlink(missing_ok=True)
            self._not_running()
            if self.stopping:
                return
            result = terminated(code, started)
            policy = self.w.restart_policy
            if not (policy == "Always" or (policy == "OnFailure" and code != 0)):
                self.state.terminated = result
                self.w.changed()
                return
            self.state.last_terminated = result
            self.state.restart_count += 1
            backoff = BACKOFF_START if ran > BACKOFF_RESET_AFTER else backoff
            self._waiting(
                "CrashLoopBackOff", f"back-off {backoff:.0f}s restarting failed container"
            )
            await asyncio.sleep(backoff)
            backoff, began = min(backoff * 2, BACKOFF_MAX), None

    async def crash(self) -> None:
        """SIGKILL the process group now; the supervisor sees exit 137 and restarts it."""
        if self.pid is not None and self.state.running_since is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)

    async def stop(self, grace: float) -> None:
        """SIGTERM the process group, SIGKILL it after `grace` seconds."""
        self.stopping = True
        pid = self.pid if self.state.running_since is not None else None
        if pid is not None:
            self._set_ready(False)
            await _terminate(pid, grace)
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            self._task.cancel()
        self.pidfile.unlink(missing_ok=True)


async def _terminate(pid: int, grace: float) -> None:
    """SIGTERM the process group of `pid`, SIGKILL it after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while procs.alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
