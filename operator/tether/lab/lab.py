"""`Lab`: start, inspect, use and tear down one lab (control plane + loopback kubelet).

The lab's daemons run detached inside the network namespace `tether-lab-<name>`; the object is
only a handle, so `Lab("x").down()` from another process tears down a lab started elsewhere.

Rootless (`here=True`, `tether lab up --here`): the lab lives in the caller's own network
namespace instead, which must be private (only `lo`), e.g. a shell started with `unshare -Urn`;
everything that uses the lab then runs from that shell.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tether.lab import build, components, layout, netns, pki, procs
from tether.lab.health import Checks
from tether.lab.layout import LabPaths

Progress = Callable[[str], None]


class LabError(RuntimeError):
    """The lab could not start or be used; the message names the step and shows the log tail."""


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


class Lab:
    """A handle on the lab called `name` (state in `LabPaths.of(name)`).

    It is one of the two backends of tether's end-to-end suite (the other is
    `tether.kind.cluster.KindCluster`): both offer `kubectl`, `kubectl_json`, `apply`,
    `connect` (a TCP connection to a pod IP) and name their `backend` and `deploy_dir`.
    """

    backend = "lab"
    deploy_dir = "deploy"  # the kustomization applied for the operator and the gateway

    def __init__(self, name: str = layout.DEFAULT_NAME, nodes: int = 1, here: bool | None = None):
        self.paths = LabPaths.of(name)
        self.name = name
        self.nodes = nodes
        if here is None:
            here = self.meta().get("here", os.environ.get("TETHER_LAB_HERE") == "1")
        self.here = bool(here)

    # -- facts ---------------------------------------------------------------------------
    @property
    def netns(self) -> str:
        """The network namespace's name (`ip netns exec <netns> ...`)."""
        return self.paths.netns

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (cluster-admin via a static token, CA-verified TLS)."""
        return self.paths.kubeconfig

    def meta(self) -> dict:
        """Return the lab's recorded metadata ({} when it was never started or is down)."""
        try:
            return json.loads(self.paths.meta.read_text())
        except (OSError, ValueError):
            return {}

    @property
    def bin_dir(self) -> Path:
        """Folder of the control-plane binaries this lab runs (kubectl included)."""
        recorded = self.meta().get("bin_dir")
        return Path(recorded) if recorded else build.bin_dir()

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Return `base` (default os.environ) with KUBECONFIG set and the binaries first on PATH."""
        env = dict(os.environ if base is None else base)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["TETHER_LAB_NAME"] = self.name
        return env

    def daemons(self) -> dict[str, tuple[int, int]]:
        """Return {component: (pid, start time)} as recorded by `up` and kubelet restarts."""
        return {k: (v[0], v[1]) for k, v in self.meta().get("pids", {}).items()}

    def status(self) -> dict:
        """Return {'up': bool, 'netns': bool, 'components': {name: 'running'|'stopped'}, ...}."""
        comps = {
            c: "running" if procs.alive(*pid) else "stopped" for c, pid in self.daemons().items()
        }
        has_ns = self._ns_inode() is not None
        up = bool(comps) and has_ns and all(v == "running" for v in comps.values())
        return {
            "name": self.name,
            "up": up,
            "netns": ("(this process's own namespace)" if self.here else self.netns)
            if has_ns
            else None,
            "state_dir": str(self.paths.root) if self.paths.root.exists() else None,
            "kubeconfig": str(self.kubeconfig) if self.kubeconfig.exists() else None,
            "components": comps,
            "nodes": self.meta().get("nodes"),
        }

    def is_up(self) -> bool:
        """Return True when the namespace exists and every recorded daemon is running."""
        return self.status()["up"]

    # -- lifecycle -----------------------------------------------------------------------
    def up(self, timeout: float = 120.0, progress: Progress | None = None) -> Lab:
        """Start the lab and return once it is usable; a running lab is left as it is.

        Invariant on return: etcd, kube-apiserver (/readyz), controller-manager and scheduler
        (/healthz) run, every node is Ready and `default/default` ServiceAccount exists. On
        failure everything started is torn down and LabError says which step failed.
        """
        say = progress or (lambda _msg: None)
        if self.is_up():
            return self
        if self.paths.root.exists() or netns.exists(self.netns):
            self.down()
        if self.here and not netns.only_loopback():
            raise LabError(
                "`here` labs need a private network namespace with only `lo` "
                "(start a shell with `unshare -Urn` first); this one has other interfaces"
            )
        bins = build.ensure_binaries(progress)
        started = time.monotonic()
        self._prepare(bins)
        node_ips = [f"{layout.node_ip(i)}/32" for i in range(self.nodes)]
        if self.here:
            netns.ip_in_current("link", "set", "lo", "up")
            for cidr in node_ips:
                netns.ip_in_current("addr", "replace", cidr, "dev", "lo")
        else:
            netns.create(self.netns, tuple(node_ips))
        inside = self._inside()
        try:
            self._start_all(bins, inside, timeout, say)
        except LabError as e:
            inside.close()
            kept = self._keep_logs()
            self.down()
            raise LabError(f"{e}\nall logs of the failed start: {kept}") from None
        except BaseException:
            inside.close()
            self.down()
            raise
        inside.close()
        meta = self.meta()
        meta["up_seconds"] = round(time.monotonic() - started, 2)
        self._write_meta(meta)
        say(f"lab {self.name!r} up in {meta['up_seconds']:.1f} s")
        return self

    def _prepare(self, bins: Path) -> None:
        p = self.paths
        for d in (p.root, p.logs, p.pod_logs, p.kubelet, p.run):
            d.mkdir(parents=True, exist_ok=True)
        p.root.chmod(0o700)
        ips = [layout.node_ip(i) for i in range(self.nodes)]
        tokens = pki.create(p.pki, ips, "10.96.0.1")
        server = f"https://127.0.0.1:{layout.APISERVER_PORT}"
        ca = p.pki / "ca.crt"
        pki.write_private(p.kubeconfig, pki.kubeconfig(server, ca, tokens["admin"], "admin"))
        for who in ("kube-controller-manager", "kube-scheduler", "kubelet"):
            text = pki.kubeconfig(server, ca, tokens[who], who)
            pki.write_private(p.component_kubeconfig(who), text)
        (p.run / "scheduler.yaml").write_text(components.scheduler_config(p))
        self._write_meta(
            {
                "name": self.name,
                "netns": self.netns,
                "bin_dir": str(bins),
                "nodes": self.nodes,
                "here": self.here,
                "netns_inode": netns.current_inode() if self.here else None,
                "pids": {},
                "created": time.time(),
            }
        )

    def _write_meta(self, meta: dict) -> None:
        tmp = self.paths.meta.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        tmp.replace(self.paths.meta)

    def _spawn(self, inside: netns.NetnsExecutor, component: str, cmd: list[str]) -> None:
        # Daemons take their kubeconfig from flags; an inherited KUBECONFIG (another lab's,
        # when called from inside one) must not leak into them.
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["PYTHONUNBUFFERED"] = "1"
        pid = inside.call(procs.spawn, cmd, self.paths.log(component), env, self.paths.root)
        meta = self.meta()
        meta["pids"][component] = list(pid)
        self._write_meta(meta)

    def _start_all(self, bins: Path, inside, timeout: float, say: Progress) -> None:
        p = self.paths
        checks = Checks(self, inside, time.monotonic() + timeout)
        say(f"starting etcd in network namespace {self.netns}")
        self._spawn(inside, "etcd", components.etcd(bins, p))
        checks.wait("etcd", "etcd /health", checks.etcd_healthy)
        say("starting kube-apiserver")
        self._spawn(inside, "kube-apiserver", components.kube_apiserver(bins, p))
        checks.wait("kube-apiserver", "kube-apiserver /readyz", checks.apiserver_ready)
        say("starting controller-manager, scheduler and the loopback kubelet")
        self._spawn(inside, "kube-controller-manager", components.kube_controller_manager(bins, p))
        self._spawn(inside, "kube-scheduler", components.kube_scheduler(bins, p))
        self._spawn(inside, "kubelet", components.kubelet(p, self.nodes))
        checks.wait("kube-controller-manager", "controller-manager /healthz", checks.kcm_healthy)
        checks.wait("kube-scheduler", "scheduler /healthz", checks.scheduler_healthy)
        checks.wait("kubelet", f"{self.nodes} Ready node(s)", checks.nodes_ready)
        checks.wait("kube-controller-manager", "ServiceAccount default/default", checks.default_sa)

    def _ns_inode(self) -> int | None:
        """Inode of the lab's namespace; None when it is gone (or, for a `here` lab, when the
        caller is not inside the namespace the lab was started in)."""
        if self.here:
            ino = self.meta().get("netns_inode")
            return ino if ino is not None and ino == netns.current_inode() else None
        return netns.inode(self.netns) if netns.exists(self.netns) else None

    def _inside(self):
        return netns.CurrentExecutor() if self.here else netns.NetnsExecutor(self.netns)

    def _pod_processes(self) -> list[tuple[int, int | None]]:
        """Processes the kubelet started for pods (from its pid files)."""
        found = []
        for pidfile in self.paths.kubelet.glob("pods/*/*.pid"):
            try:
                rec = json.loads(pidfile.read_text())
                found.append((rec["pid"], rec.get("start")))
            except (OSError, ValueError, KeyError):
                continue
        return found

    def _remove_lab_addresses(self) -> list[str]:
        """Delete node and pod addresses from `lo` (a `here` lab has no namespace to delete)."""
        import ipaddress

        out = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "lo"],
                             capture_output=True, text=True, check=False).stdout  # fmt: skip
        nets = [ipaddress.ip_network(layout.NODE_CIDR), ipaddress.ip_network(layout.POD_CIDR)]
        removed = []
        for line in out.splitlines():
            ip = line.split()[3].split("/")[0]
            if any(ipaddress.ip_address(ip) in n for n in nets):
                netns.ip_in_current("addr", "del", f"{ip}/32", "dev", "lo")
                removed.append(ip)
        return removed

    def _keep_logs(self) -> Path:
        """Copy the logs of a failed start out of the state dir (which `down` removes)."""
        dest = build.cache_root() / "lab-logs" / f"{self.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        shutil.copytree(self.paths.logs, dest, dirs_exist_ok=True)
        return dest

    def restart_kubelet(self, timeout: float = 30.0) -> None:
        """Stop the loopback kubelet (SIGTERM) and start a new one that re-adopts its pods."""
        old = self.daemons().get("kubelet")
        if old:
            procs.stop([old])
        inside = self._inside()
        try:
            self._spawn(inside, "kubelet", components.kubelet(self.paths, self.meta()["nodes"]))
            checks = Checks(self, inside, time.monotonic() + timeout)
            checks.wait("kubelet", "kubelet heartbeat", checks.kubelet_fresh)
        finally:
            inside.close()

    def down(self) -> dict:
        """Stop every process in the lab's namespace, delete it and remove the state directory.

        Invariant on return: no lab daemon or pod process runs, `ip netns` no longer lists the
        namespace (its addresses went with it) and the state directory is gone. The calling
        process and its ancestors are spared if they joined the namespace.
        """
        removed: dict = {"processes": [], "netns": None, "state_dir": None}
        recorded = list(self.daemons().items())
        mine = _ancestors()
        in_ns: list[tuple[int, int | None]] = []
        if self.here:
            in_ns = self._pod_processes()
        elif netns.exists(self.netns):
            ino = netns.inode(self.netns)
            in_ns = [(pid, procs.start_time(pid)) for pid in netns.pids_in(ino) if pid not in mine]
        # Pods and the kubelet first, then the control plane in reverse start order.
        daemon_pids = {pid for _, (pid, _) in recorded}
        first = [(pid, st) for pid, st in in_ns if pid not in daemon_pids]
        first += [pid for c, pid in recorded if c == "kubelet"]
        procs.stop(first, grace=3.0)
        for comp in reversed(components.ORDER[:-1]):
            procs.stop([pid for c, pid in recorded if c == comp], grace=5.0)
        removed["processes"] = sorted({pid for pid, _ in first} | daemon_pids)
        if self.here and self._ns_inode() is not None:
            removed["addresses"] = self._remove_lab_addresses()
        if netns.exists(self.netns):
            netns.delete(self.netns)
            removed["netns"] = self.netns
        if self.paths.root.exists():
            shutil.rmtree(self.paths.root)
            removed["state_dir"] = str(self.paths.root)
        return removed

    # -- using it ------------------------------------------------------------------------
    def run(self, cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run `cmd` inside the lab's namespace with `env()`; kwargs go to subprocess.run."""
        kwargs.setdefault("env", self.env())
        if netns.current_inode() == self._ns_inode():
            return subprocess.run(cmd, **kwargs)  # already inside (here, or after enter())
        inside = netns.NetnsExecutor(self.netns)
        try:
            return inside.call(subprocess.run, cmd, **kwargs)
        finally:
            inside.close()

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        """Run this lab's kubectl with `args` inside the namespace; return stdout.

        Raises LabError with kubectl's stderr when it fails and `check` is true.
        """
        cmd = [str(self.bin_dir / "kubectl"), *args]
        out = self.run(cmd, capture_output=True, text=True, input=input, check=False)
        if check and out.returncode != 0:
            raise LabError(f"kubectl {' '.join(args)} failed ({out.returncode}): {out.stderr}")
        return out.stdout

    def kubectl_json(self, *args: str) -> dict:
        """Return `kubectl get ARGS -o json` decoded."""
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def apply(self, manifest: str, namespace: str | None = None) -> str:
        """`kubectl apply -f -` a YAML manifest (into `namespace` if given); return stdout."""
        ns = ["-n", namespace] if namespace else []
        return self.kubectl("apply", *ns, "-f", "-", input=manifest)

    def connect(self, host: str, port: int, timeout: float = 10.0) -> socket.socket:
        """A TCP connection to `host:port` (a pod IP) made from inside the lab's namespace."""
        if netns.current_inode() == self._ns_inode():
            return socket.create_connection((host, port), timeout=timeout)
        inside = netns.NetnsExecutor(self.netns)
        try:
            return inside.call(socket.create_connection, (host, port), timeout=timeout)
        finally:
            inside.close()

    def enter(self) -> None:
        """Move the calling thread (the process, if called on the main thread before other
        threads start) into the lab's namespace and export KUBECONFIG and PATH.

        Invariant: afterwards 127.0.0.1:6443 is this lab's apiserver and pod IPs are reachable
        from this process and every thread or subprocess it starts later.
        """
        if self._ns_inode() is None:
            raise LabError(f"lab {self.name!r} is not up (no namespace {self.netns})")
        if not self.here:
            netns.setns(netns.path_of(self.netns))
        os.environ.update(self.env())
