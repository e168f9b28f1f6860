"""Faults on a kind cluster, with the same names as the lab's (`tether.lab.faults`), so an
end-to-end fault scenario is written once. Everything happens inside the node container
(`docker exec`), through its containerd (`ctr -n k8s.io`), iptables and `ss`:
- `crash(component)`: SIGKILL the static pod's container (kube-apiserver, etcd, ...); the
  kubelet restarts it; returns once the component is healthy again.
- `restart(component)`: SIGTERM instead (a graceful stop); same wait.
- `kill_container(namespace, pod, container)`: SIGKILL one container of a pod, no grace.
- `cut_api(pod_ip)` / `heal_api(pod_ip)`: in the pod's own network namespace (`nsenter`),
  new connections to the `kubernetes` Service are refused with a TCP reset and established
  ones are aborted (`ss -K`), so the pod sees what a firewall change would do to it; every
  other client of the API server is untouched. (A REJECT on the node's INPUT, after
  kube-proxy's DNAT, dropped the pod's SYNs without the reset reaching it: connects timed
  out after 10 s instead of being refused.)
"""

from __future__ import annotations

import subprocess
import time

from tether.kind.engine import docker

# component -> the apiserver health path that proves it is back
HEALTH = {
    "kube-apiserver": "/readyz",
    "etcd": "/readyz/etcd",
    "kube-controller-manager": None,
    "kube-scheduler": None,
}


class KindFaultError(RuntimeError):
    """A fault could not be injected or the cluster did not recover in time."""


def _reject(host: str, port: int) -> list[str]:
    return ["OUTPUT", "-p", "tcp", "-d", host, "--dport", str(port), "-m", "conntrack",
            "--ctstate", "NEW", "-m", "comment", "--comment", "tether-fault", "-j", "REJECT",
            "--reject-with", "tcp-reset"]  # fmt: skip


class KindFaults:
    """Fault operations of a kind cluster (mixed into `tether.kind.cluster.KindCluster`)."""

    @property
    def _cuts(self) -> dict[str, tuple[list[str], str, int]]:
        """Pods cut off the API server: pod IP -> (nsenter prefix, Service IP, port)."""
        return self.__dict__.setdefault("_fault_cuts", {})

    def node_exec(self, *cmd: str, check: bool = True) -> str:
        """Run `cmd` in the node container; return stdout."""
        return docker("exec", self.node, *cmd, check=check)

    def _container_id(self, namespace: str, pod: str, container: str) -> str:
        p = self.kubectl_json("pod", pod, "-n", namespace)
        for cs in p["status"].get("containerStatuses") or []:
            if cs["name"] == container and cs.get("state", {}).get("running"):
                return cs["containerID"].split("://", 1)[1]
        raise KindFaultError(f"no running container {container!r} in pod {namespace}/{pod}")

    def _task_running(self, cid: str) -> bool:
        for line in self.node_exec("ctr", "-n", "k8s.io", "tasks", "ls").splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == cid:
                return parts[-1] == "RUNNING"
        return False

    def _signal(self, cid: str, sig: str, timeout: float = 30.0) -> None:
        self.node_exec("ctr", "-n", "k8s.io", "tasks", "kill", "-s", sig, cid)
        deadline = time.monotonic() + timeout
        while self._task_running(cid):
            if time.monotonic() > deadline:
                raise KindFaultError(f"container {cid[:12]} still runs {timeout:.0f} s after {sig}")
            time.sleep(0.1)

    def kill_container(self, namespace: str, pod: str, container: str) -> None:
        """SIGKILL one running container of a pod (no grace); the kubelet restarts it."""
        self._signal(self._container_id(namespace, pod, container), "SIGKILL")

    def _static(self, component: str) -> str:
        if component not in HEALTH:
            raise ValueError(f"unknown component {component!r}; one of {sorted(HEALTH)}")
        return self._container_id("kube-system", f"{component}-{self.node}", component)

    def _wait_healthy(self, component: str, old: str, timeout: float) -> None:
        path = HEALTH[component]
        deadline = time.monotonic() + timeout
        while True:
            ok = True
            if path is not None:
                ok = self.kubectl("get", "--raw", path, check=False).strip() == "ok"
            if ok:
                try:
                    ok = self._container_id("kube-system", f"{component}-{self.node}",
                                            component) != old  # fmt: skip
                except (KindFaultError, RuntimeError):
                    ok = False
            if ok:
                return
            if time.monotonic() > deadline:
                raise KindFaultError(f"{component} not back and healthy after {timeout:.0f} s")
            time.sleep(0.2)

    def crash(self, component: str, timeout: float = 120.0) -> None:
        """SIGKILL a control-plane static pod's container; return once the kubelet has
        restarted it and it is healthy."""
        cid = self._static(component)
        self._signal(cid, "SIGKILL")
        self._wait_healthy(component, cid, timeout)

    def restart(self, component: str, timeout: float = 120.0) -> None:
        """SIGTERM a control-plane static pod's container (graceful); return once the kubelet
        has restarted it and it is healthy."""
        cid = self._static(component)
        self._signal(cid, "SIGTERM", timeout=60)
        self._wait_healthy(component, cid, timeout)

    def _pod_netns(self, pod_ip: str) -> list[str]:
        """`nsenter` into the network namespace of the pod at `pod_ip` (from its first
        container's process, as containerd reports it)."""
        pods = self.kubectl_json("pods", "-A", "--field-selector", f"status.podIP={pod_ip}")
        running = [p for p in pods["items"] if p["status"].get("phase") == "Running"]
        if not running:
            raise KindFaultError(f"no running pod has IP {pod_ip}")
        meta = running[0]["metadata"]
        cid = self._container_id(meta["namespace"], meta["name"],
                                 running[0]["spec"]["containers"][0]["name"])  # fmt: skip
        for line in self.node_exec("ctr", "-n", "k8s.io", "tasks", "ls").splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == cid:
                return ["nsenter", "-t", parts[1], "-n"]
        raise KindFaultError(f"no task for container {cid[:12]}")

    def _api_service(self) -> tuple[str, int]:
        svc = self.kubectl_json("service", "kubernetes", "-n", "default")
        return svc["spec"]["clusterIP"], int(svc["spec"]["ports"][0]["port"])

    def cut_api(self, pod_ip: str) -> int:
        """Cut the pod at `pod_ip` off the API server: in the pod's own network namespace,
        new connections to the `kubernetes` Service are refused (TCP reset) and established
        ones are aborted (`ss -K`), as behind a firewall. Returns how many were aborted."""
        host, port = self._api_service()
        ns = self._pod_netns(pod_ip)
        self._cuts[pod_ip] = (ns, host, port)
        rule = _reject(host, port)
        if _returncode(self.node, [*ns, "iptables", "-C", *rule]) != 0:
            self.node_exec(*ns, "iptables", "-I", *rule)
        out = self.node_exec(*ns, "ss", "-K", "-Htn", "dst", host, "dport", "=", f":{port}")
        return len([line for line in out.splitlines() if line.strip()])

    def heal_api(self, pod_ip: str) -> None:
        """Let the pod at `pod_ip` reach the API server again."""
        ns, host, port = self._cuts.pop(pod_ip)
        while _returncode(self.node, [*ns, "iptables", "-D", *_reject(host, port)]) == 0:
            pass


def _returncode(node: str, cmd: list[str]) -> int:
    return subprocess.run(["docker", "exec", node, *cmd], capture_output=True,
                          check=False).returncode  # fmt: skip
