"""`KindCluster`: create, inspect, load images into and delete one kind cluster.

Modes (reported by `up` and `status`):
- `offline` (default): the node image is `tether-kind/node`, built by `tether kind build`
  from Go modules, Debian packages and PyPI; nothing is pulled.
- `pull`: the upstream `kindest/node` image, fetched by one `docker pull` (never retried);
  for machines that reach a registry.

The gateway is published on the host at http://127.0.0.1:<port>: kind maps that port to the
node's NodePort 30080, which `deploy/kind` gives the gateway Service.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tether.kind import versions as v
from tether.kind.config import ClusterConfig, free_port
from tether.kind.engine import EngineError, docker, image_exists, needs_sys_resource_workaround
from tether.kind.faults import KindFaults
from tether.kind.netns import in_netns
from tether.kind.paths import cache_dir

DEFAULT_NAME = "tether"


class KindError(RuntimeError):
    """kind failed, or the cluster is not in the state the caller needs."""


class KindCluster(KindFaults):
    """A handle on the kind cluster `name`; `kind` is the CLI binary to use.

    One of the two backends of tether's end-to-end suite (the other is `tether.lab.Lab`), with
    the same `kubectl`, `kubectl_json`, `apply` and `connect`, and the same fault operations
    (`KindFaults`: crash, restart, kill_container, cut_api, heal_api).
    """

    backend = "kind"
    deploy_dir = "deploy/kind"  # deploy/ plus the NodePort that publishes the gateway

    def __init__(
        self, name: str = DEFAULT_NAME, kind: Path | None = None, kubectl: Path | None = None
    ) -> None:
        self.name = name
        self._kind = kind
        self._kubectl = str(kubectl) if kubectl else (shutil.which("kubectl") or "kubectl")

    # -- facts --------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """The kind CLI: the one given, else the cached build, else `kind` on PATH."""
        if self._kind is not None:
            return str(self._kind)
        built = sorted((cache_dir() / "kind" / "bin").glob(f"kind-{v.KIND}-*/kind"))
        found = str(built[-1]) if built else shutil.which("kind")
        if not found:
            raise KindError("no kind CLI: run `tether kind build` first")
        return found

    @property
    def node(self) -> str:
        """The control-plane node's container name."""
        return f"{self.name}-control-plane"

    @property
    def state_dir(self) -> Path:
        """Where this cluster's kubeconfig and metadata live."""
        return cache_dir() / "kind" / "clusters" / self.name

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (API at https://127.0.0.1:<random port>)."""
        return self.state_dir / "kubeconfig"

    def meta(self) -> dict:
        """What `up` recorded (mode, port, image, timings); {} when never started."""
        try:
            return json.loads((self.state_dir / "cluster.json").read_text())
        except (OSError, ValueError):
            return {}

    @property
    def host_port(self) -> int:
        """The host port that reaches the gateway (http://127.0.0.1:<port>)."""
        port = self.meta().get("host_port")
        if not port:
            raise KindError(f"cluster {self.name!r} has no recorded gateway port (not up?)")
        return int(port)

    @property
    def tls_host_port(self) -> int:
        """The host port that reaches the gateway's TLS listener (https://127.0.0.1:<port>)."""
        port = self.meta().get("tls_port")
        if not port:
            raise KindError(f"cluster {self.name!r} has no recorded TLS port (made before it?)")
        return int(port)

    def node_pid(self) -> int:
        """PID of the node container's init (its network namespace is the node's)."""
        pid = docker("inspect", "-f", "{{.State.Pid}}", self.node).strip()
        if not pid or pid == "0":
            raise KindError(f"node container {self.node} is not running")
        return int(pid)

    def exists(self) -> bool:
        """True when kind lists the cluster."""
        out = subprocess.run(
            [self.kind, "get", "clusters"], capture_output=True, text=True, check=False
        )
        return self.name in out.stdout.split()

    def status(self) -> dict:
        """{'up': bool, 'mode', 'gateway', 'nodes': {...}, ...}; never raises for a down cluster."""
        meta = self.meta()
        st: dict = {
            "name": self.name,
            "up": False,
            "mode": meta.get("mode"),
            "node_image": meta.get("image"),
            "kubeconfig": None,
            "gateway": None,
        }
        running = docker("inspect", "-f", "{{.State.Running}}", self.node, check=False).strip()
        if running != "true" or not self.kubeconfig.exists():
            return st
        out = self._kubectl_raw("get", "nodes", "-o", "json")
        if out.returncode != 0:
            st["error"] = out.stderr.strip()
            return st
        nodes = json.loads(out.stdout)["items"]
        st["nodes"] = {
            n["metadata"]["name"]: next(
                (c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"), "?"
            )
            for n in nodes
        }
        st["up"] = bool(nodes) and all(s == "True" for s in st["nodes"].values())
        st["kubeconfig"] = str(self.kubeconfig)
        st["gateway"] = f"http://127.0.0.1:{meta.get('host_port')}"
        if meta.get("tls_port"):
            st["gateway_tls"] = f"https://127.0.0.1:{meta['tls_port']}"
        return st

    # -- lifecycle ------------------------------------------------------------------------------
    def up(
        self,
        image: str,
        mode: str,
        host_port: int | None = None,
        wait: float = 180,
        say=lambda _m: None,
    ) -> dict:
        """Create the cluster from `image` (a running one is kept) and return its metadata.

        Invariant on return: the node is Ready, kubeconfig works, http://127.0.0.1:<port>
        reaches the node's NodePort 30080 and 127.0.0.1:<tls_port> its NodePort 30443 (the
        gateway's TLS listener). Workarounds are applied only when detected.
        """
        if self.status()["up"]:
            return self.meta()
        if self.exists():
            self.down()
        if not image_exists(image):
            raise KindError(f"node image {image} is not present: run `tether kind build`")
        port = host_port or free_port()
        tls_port = free_port()
        while tls_port == port:
            tls_port = free_port()
        restrict = needs_sys_resource_workaround()
        cfg = ClusterConfig(self.name, port, restrict, tls_port)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cfg_path = self.state_dir / "kind-config.yaml"
        cfg_path.write_text(cfg.render())
        if restrict:
            say("containerd gets restrict_oom_score_adj = true (CAP_SYS_RESOURCE is missing)")
        say(f"kind create cluster --name {self.name} --image {image} ({mode} mode)")
        started = time.monotonic()
        out = subprocess.run(
            [
                self.kind,
                "create",
                "cluster",
                "--name",
                self.name,
                "--image",
                image,
                "--config",
                str(cfg_path),
                "--kubeconfig",
                str(self.kubeconfig),
                "--wait",
                f"{int(wait)}s",
                "--retain",
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "KIND_EXPERIMENTAL_PROVIDER": "docker"},
        )
        if out.returncode != 0:
            logs = self._export_logs()
            self.down()
            raise KindError(f"kind create cluster failed (logs: {logs}):\n{out.stderr[-3000:]}")
        meta = {
            "name": self.name,
            "mode": mode,
            "image": image,
            "host_port": port,
            "tls_port": tls_port,
            "restrict_oom_score_adj": restrict,
            "up_seconds": round(time.monotonic() - started, 1),
            "created": time.time(),
        }
        (self.state_dir / "cluster.json").write_text(json.dumps(meta, indent=2) + "\n")
        return meta

    def _export_logs(self) -> Path:
        dest = cache_dir() / "kind" / "logs" / f"{self.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        subprocess.run(
            [self.kind, "export", "logs", str(dest), "--name", self.name],
            capture_output=True,
            check=False,
        )
        return dest

    def load(self, *images: str) -> None:
        """`kind load docker-image` each image into the node (skips none: kind checks digests)."""
        for image in images:
            out = subprocess.run(
                [self.kind, "load", "docker-image", image, "--name", self.name],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                raise KindError(f"kind load docker-image {image} failed: {out.stderr.strip()}")

    def down(self) -> bool:
        """Delete the cluster (node container included) and its state; True if one existed."""
        existed = self.exists()
        if existed:
            out = subprocess.run(
                [self.kind, "delete", "cluster", "--name", self.name],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                raise KindError(f"kind delete cluster failed: {out.stderr.strip()}")
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return existed

    # -- using it -------------------------------------------------------------------------------
    def _kubectl_raw(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self._kubectl, "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            input=input,
            check=False,
        )

    def env(self) -> dict[str, str]:
        """os.environ with KUBECONFIG set to this cluster and its kubectl first on PATH."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{Path(self._kubectl).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        """Run kubectl against this cluster; return stdout (KindError with stderr on failure)."""
        out = self._kubectl_raw(*args, input=input)
        if check and out.returncode != 0:
            raise KindError(f"kubectl {' '.join(args)} failed ({out.returncode}): {out.stderr}")
        return out.stdout

    def kubectl_json(self, *args: str) -> dict:
        """`kubectl get ARGS -o json`, decoded."""
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def apply(self, manifest: str, namespace: str | None = None) -> str:
        """`kubectl apply -f -` a YAML manifest (into `namespace` if given)."""
        ns = ["-n", namespace] if namespace else []
        return self.kubectl("apply", *ns, "-f", "-", input=manifest)

    def connect(self, host: str, port: int, timeout: float = 10.0) -> socket.socket:
        """A TCP connection to `host:port` (a pod IP) made from the node's network namespace,
        as a process on the node would; the caller's own namespace is left as it is."""
        return in_netns(
            f"/proc/{self.node_pid()}/ns/net",
            socket.create_connection,
            (host, port),
            timeout=timeout,
        )


def pull_node_image(say=lambda _m: None) -> str:
    """`pull` mode: one `docker pull kindest/node:<k8s>` (no retry); return the image."""
    if image_exists(v.KINDEST_NODE):
        return v.KINDEST_NODE
    say(f"docker pull {v.KINDEST_NODE} (one attempt)")
    try:
        docker("pull", v.KINDEST_NODE)
    except EngineError as e:
        raise KindError(
            f"{e}\nno registry? use the default offline mode (`tether kind build`)"
        ) from None
    return v.KINDEST_NODE
