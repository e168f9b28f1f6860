"""The images of a kind node, and the node image itself (what `kind build node-image` makes,
without its pulls and its `ctr info`, which Debian's ctr 1.6 lacks).

    registry.k8s.io/...             control plane (lab binaries), kube-proxy, pause, CoreDNS
    tether-kind/node:<k8s>          base + kubelet/kubeadm/kubectl + those images preloaded
    docker.io/mccutchen/go-httpbin  deploy/examples/httpbin.yaml's image, from its Go module
    tether:dev                      deploy/Dockerfile (rebuilt on every `tether kind load`)
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

from tether.kind import imagetools as it
from tether.kind import versions as v
from tether.kind.engine import EngineError, docker
from tether.kind.imagetools import Progress
from tether.kind.paths import repo_root, tools_dir

CNI_CONFLIST = {
    "cniVersion": "0.4.0",
    "name": "tether-bridge",
    "plugins": [
        {
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": True,
            "ipMasq": True,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.244.0.0/24"}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        },
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}
# kind applies these two files from the node image; kindnetd and the local-path provisioner
# are not on the Go module proxy, so both are inert (a static bridge CNI serves one node).
NOOP_MANIFEST = """apiVersion: v1
kind: ConfigMap
metadata:
  name: tether-kind-{what}
  namespace: kube-system
data:
  note: "{note}"
"""


def pause_binary(out: Path) -> Path:
    """Compile Kubernetes' pause.c statically (it is in the k8s.io/kubernetes module)."""
    src = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{v.K8S}"],
        capture_output=True,
        text=True,
        check=False,
        env={**it.env(), "GOTOOLCHAIN": "local"},
    )
    if src.returncode != 0:
        raise EngineError(f"go mod download k8s.io/kubernetes@{v.K8S} failed: {src.stdout}")
    pause_c = Path(json.loads(src.stdout)["Dir"]) / "build" / "pause" / "linux" / "pause.c"
    target = out / "pause"
    if not target.exists():
        cc = subprocess.run(
            ["gcc", "-Os", "-static", "-DVERSION=v3.10.1", "-o", str(target), str(pause_c)],
            capture_output=True,
            text=True,
            check=False,
        )
        if cc.returncode != 0:
            raise EngineError(f"gcc -static pause.c failed: {cc.stderr}")
    return target


def component_images(lab_bins: Path, go_bins: Path, base: str, say: Progress) -> dict[str, str]:
    """The images kubeadm and kind's containerd expect, tagged with their upstream names."""
    path_env = "ENV PATH=/usr/local/bin:/usr/bin:/bin"
    refs: dict[str, str] = {}
    singles = [(f"registry.k8s.io/{c}:{v.K8S}", lab_bins / c, c) for c in it.CONTROL_PLANE]
    singles.append((f"registry.k8s.io/etcd:{v.ETCD_TAG}", lab_bins / "etcd", "etcd"))
    for ref, binary, name in singles:
        data = binary.read_bytes()
        digest = it.digest(ref, data)
        refs[ref] = digest
        if not it.fresh(ref, digest):
            it.import_files(ref, {f"/usr/local/bin/{name}": (data, 0o755)}, [path_env], digest)
            say(f"  {ref}: imported")
    coredns = (go_bins / "coredns").read_bytes()
    ref = f"registry.k8s.io/coredns/coredns:{v.COREDNS}"
    refs[ref] = digest = it.digest(ref, coredns)
    if not it.fresh(ref, digest):
        it.import_files(ref, {"/coredns": (coredns, 0o755)}, ['ENTRYPOINT ["/coredns"]'], digest)
        say(f"  {ref}: imported")
    pause = pause_binary(go_bins).read_bytes()
    for tag in v.PAUSE_TAGS:
        ref = f"registry.k8s.io/pause:{tag}"
        refs[ref] = digest = it.digest(ref, pause)
        if not it.fresh(ref, digest):
            it.import_files(ref, {"/pause": (pause, 0o755)}, ['ENTRYPOINT ["/pause"]'], digest)
            say(f"  {ref}: imported")
    ref = f"registry.k8s.io/kube-proxy:{v.K8S}"
    dockerfile = tools_dir() / "kind" / "images" / "kube-proxy.Dockerfile"
    proxy = (go_bins / "kube-proxy").read_bytes()
    refs[ref] = digest = it.digest(ref, base, dockerfile.read_bytes(), proxy)
    if not it.fresh(ref, digest):
        with tempfile.TemporaryDirectory(prefix="tether-kube-proxy-") as ctx:
            (Path(ctx) / "kube-proxy").write_bytes(proxy)
            (Path(ctx) / "kube-proxy").chmod(0o755)
            it.build_dockerfile(
                ref, dockerfile, Path(ctx), {"BASE_IMAGE": it.BASE_IMAGE}, digest, say
            )
    return refs


def httpbin_image(go_bins: Path, say: Progress) -> str:
    """docker.io/mccutchen/go-httpbin:v2.15.0 built from its Go module (what deploy/ names)."""
    data = (go_bins / "go-httpbin").read_bytes()
    digest = it.digest(v.HTTPBIN_IMAGE, data)
    if not it.fresh(v.HTTPBIN_IMAGE, digest):
        it.import_files(
            v.HTTPBIN_IMAGE,
            {"/bin/go-httpbin": (data, 0o755)},
            ['CMD ["/bin/go-httpbin"]', "EXPOSE 8080", "USER 65532:65532"],
            digest,
        )
        say(f"  {v.HTTPBIN_IMAGE}: imported")
    return digest


def node_image(
    base: str, go_bins: Path, lab_bins: Path, components: dict[str, str], say: Progress
) -> str:
    """tether-kind/node: what `kind build node-image` makes, without its pulls and `ctr info`."""
    binaries = {b: go_bins / b for b in ("kubelet", "kubeadm")} | {"kubectl": lab_bins / "kubectl"}
    digest = it.digest(
        base,
        json.dumps(components, sort_keys=True),
        json.dumps(CNI_CONFLIST),
        NOOP_MANIFEST,
        *(p.read_bytes() for p in binaries.values()),
    )
    if it.fresh(it.NODE_IMAGE, digest):
        return digest
    started = time.monotonic()
    cid = docker(
        "run",
        "-d",
        "--entrypoint=sleep",
        "--security-opt",
        "seccomp=unconfined",
        it.BASE_IMAGE,
        "infinity",
    ).strip()
    try:
        for name, path in binaries.items():
            docker("cp", str(path), f"{cid}:/usr/bin/{name}")
        files = {
            "/kind/version": v.K8S + "\n",
            "/kind/manifests/default-cni.yaml": NOOP_MANIFEST.format(
                what="cni", note="static bridge CNI: /etc/cni/net.d/10-tether-bridge.conflist"
            ),
            "/kind/manifests/default-storage.yaml": NOOP_MANIFEST.format(
                what="storage", note="no storage provisioner in offline kind"
            ),
            "/etc/cni/net.d/10-tether-bridge.conflist": json.dumps(CNI_CONFLIST, indent=2),
        }
        for path, text in files.items():
            docker(
                "exec",
                "-i",
                cid,
                "sh",
                "-c",
                f"mkdir -p $(dirname {path}) && cat > {path}",
                input=text.encode(),
            )
        docker(
            "exec",
            cid,
            "sh",
            "-c",
            "chmod 755 /usr/bin/kube* && nohup containerd >/tmp/containerd.log 2>&1 &",
        )
        deadline = time.monotonic() + 30
        while docker("exec", cid, "ctr", "version", check=False).count("Server") == 0:
            if time.monotonic() > deadline:
                raise EngineError("containerd did not start in the node build container")
            time.sleep(0.3)
        save = subprocess.Popen(["docker", "save", *components], stdout=subprocess.PIPE)
        load = subprocess.run(
            [
                "docker",
                "exec",
                "-i",
                cid,
                "ctr",
                "--namespace=k8s.io",
                "images",
                "import",
                "--no-unpack",
                "--digests",
                "-",
            ],
            stdin=save.stdout,
            capture_output=True,
            check=False,
        )
        save.wait()
        if load.returncode != 0 or save.returncode != 0:
            raise EngineError(f"importing images into the node failed: {load.stderr.decode()}")
        docker("exec", cid, "pkill", "containerd", check=False)
        docker(
            "commit",
            "--change",
            'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
            "--change",
            "CMD []",
            "--change",
            f"LABEL {it.LABEL}={digest}",
            cid,
            it.NODE_IMAGE,
        )
    finally:
        docker("rm", "-f", "-v", cid, check=False)
    say(f"  {it.NODE_IMAGE}: built in {time.monotonic() - started:.0f} s")
    return digest


def tether_image(python: str, say: Progress, ref: str = v.TETHER_IMAGE) -> None:
    """deploy/Dockerfile with the local Python base (docker's layer cache makes re-runs fast)."""
    root = repo_root()
    it.build_dockerfile(
        ref, root / "deploy" / "Dockerfile", root, {"BASE_IMAGE": it.PYTHON_IMAGE}, python, say
    )
