"""Faults on a running lab: control-plane daemons killed, paused and restarted, pod containers
killed without grace, one pod cut off the API server. The methods are `Lab`'s (a mixin).

The e2e suite's cluster interface names the same operations on kind
(`tether.kind.faults.KindFaults`), so a fault scenario is written once:
- `crash(component)`: SIGKILL, then start it again as its supervisor would; returns once it
  is healthy. On the lab the control plane has no supervisor: the lab is it.
- `restart(component)`: SIGTERM (graceful), then start; returns once healthy.
- `kill_container(namespace, pod, container)`: SIGKILL without grace (see kubelet/faults.py).
- `cut_api(pod_ip)` / `heal_api(pod_ip)`: the pod loses the API server (see `apipath`).
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import time
import urllib.request

from tether.lab import apipath, components, layout, procs
from tether.lab.health import Checks

# component -> (what a start waits for, the Checks predicate)
HEALTH = {
    "etcd": ("etcd /health", "etcd_healthy"),
    "kube-apiserver": ("kube-apiserver /readyz", "apiserver_ready"),
    "kube-controller-manager": ("controller-manager /healthz", "kcm_healthy"),
    "kube-scheduler": ("scheduler /healthz", "scheduler_healthy"),
}


def _threads_left(pid: int) -> int:
    """Threads of `pid` other than its (possibly zombie) leader; 0 once it is gone."""
    try:
        return len([t for t in os.listdir(f"/proc/{pid}/task") if t != str(pid)])
    except OSError:
        return 0


def _wait_exited(pid: int, component: str, timeout: float = 10.0) -> None:
    """Return once every thread of `pid` has exited. A Go daemon's leader thread shows as a
    zombie while its other threads are still tearing down and holding its sockets: starting
    the next one then fails with `bind: address already in use`."""
    deadline = time.monotonic() + timeout
    while _threads_left(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{component} (pid {pid}) still has threads {timeout:.0f} s later")
        time.sleep(0.05)


class LabFaults:
    """Fault operations of a lab (mixed into `tether.lab.Lab`)."""

    def _command(self, component: str) -> list[str]:
        bins, p = self.bin_dir, self.paths
        return {
            "etcd": lambda: components.etcd(bins, p),
            "kube-apiserver": lambda: components.kube_apiserver(bins, p),
            "kube-controller-manager": lambda: components.kube_controller_manager(bins, p),
            "kube-scheduler": lambda: components.kube_scheduler(bins, p),
        }[component]()

    def _daemon(self, component: str) -> tuple[int, int]:
        if component not in HEALTH:
            raise ValueError(f"unknown component {component!r}; one of {sorted(HEALTH)}")
        pid = self.daemons().get(component)
        if pid is None:
            raise RuntimeError(f"lab {self.name!r} has no {component} recorded")
        return pid

    def signal(self, component: str, sig: int) -> None:
        """Send `sig` to a control-plane daemon (e.g. SIGSTOP / SIGCONT to pause it)."""
        pid, started = self._daemon(component)
        if procs.alive(pid, started):
            os.kill(pid, sig)

    def kill(self, component: str) -> None:
        """SIGKILL a control-plane daemon; on return it no longer runs (it stays down)."""
        pid, started = self._daemon(component)
        if procs.alive(pid, started):
            os.kill(pid, signal.SIGKILL)
        procs.stop([(pid, started)], grace=0)

    def start(self, component: str, timeout: float = 60.0) -> None:
        """Start a stopped control-plane daemon; return once its health check passes."""
        pid, started = self._daemon(component)
        if procs.alive(pid, started):
            raise RuntimeError(f"{component} (pid {pid}) is still running")
        _wait_exited(pid, component)
        inside = self._inside()
        try:
            self._spawn(inside, component, self._command(component))
            what, check = HEALTH[component]
            checks = Checks(self, inside, time.monotonic() + timeout)
            checks.wait(component, what, getattr(checks, check))
        finally:
            inside.close()

    def crash(self, component: str, timeout: float = 60.0) -> None:
        """SIGKILL a control-plane daemon and start it again at once; return once healthy."""
        self.kill(component)
        self.start(component, timeout)

    def restart(self, component: str, grace: float = 10.0, timeout: float = 60.0) -> None:
        """Stop a control-plane daemon gracefully (SIGTERM, SIGKILL after `grace`) and start it
        again; return once healthy."""
        procs.stop([self._daemon(component)], grace=grace)
        self.start(component, timeout)

    def kill_container(self, namespace: str, pod: str, container: str) -> None:
        """SIGKILL one running container of a pod (no grace); the kubelet restarts it."""
        url = f"https://{layout.node_ip(0)}:{layout.KUBELET_PORT}/lab/kill/{namespace}/{pod}/{container}"
        ctx = ssl.create_default_context(cafile=str(self.paths.pki / "ca.crt"))
        ctx.check_hostname = False  # the kubelet's certificate names the node, not its IP
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
        )
        req = urllib.request.Request(url, method="POST", data=b"")
        with self._in_lab(opener.open, req, timeout=10) as resp:
            json.loads(resp.read())

    def cut_api(self, pod_ip: str) -> int:
        """Cut the pod at `pod_ip` off the API server (refused + established ones reset);
        return how many connections were aborted."""
        return self._in_lab(apipath.cut, pod_ip)

    def heal_api(self, pod_ip: str) -> None:
        """Let the pod at `pod_ip` reach the API server again."""
        self._in_lab(apipath.heal, pod_ip)

    def _in_lab(self, fn, *args, **kwargs):
        from tether.lab import netns

        if netns.current_inode() == self._ns_inode():
            return fn(*args, **kwargs)
        inside = netns.NetnsExecutor(self.netns)
        try:
            return inside.call(fn, *args, **kwargs)
        finally:
            inside.close()
