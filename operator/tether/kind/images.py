"""Build every image an offline kind cluster needs, from Debian packages, Go modules and PyPI.

Each image carries the label `tether.kind.inputs` = a digest of what it was built from; an image
whose label matches is reused, so a warm build does nothing. No step pulls from a registry:
base images are local (`debootstrap` + `docker import`), and every `FROM` names one of them.

    tether-kind/debian:bookworm     debootstrap --variant=minbase (the machine's apt mirror)
    tether-kind/python:3.11         Debian's python3 on it (deploy/Dockerfile's BASE_IMAGE)
    tether-kind/base:<kind>         kind's base image from Debian's systemd/containerd/runc/CNI
    registry.k8s.io/...             control plane (lab binaries), kube-proxy, pause, CoreDNS
    tether-kind/node:<k8s>          base + kubelet/kubeadm/kubectl + the images preloaded
    docker.io/mccutchen/go-httpbin  deploy/examples/httpbin.yaml's image, from its Go module
    tether:dev                      deploy/Dockerfile (built on every `tether kind load`)
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tether.kind import versions as v
from tether.kind.engine import EngineError, docker
from tether.kind.paths import cache_dir, repo_root, tools_dir

LABEL = "tether.kind.inputs"
DEBIAN_IMAGE = f"tether-kind/debian:{v.DEBIAN}"
PYTHON_IMAGE = f"tether-kind/python:{v.PYTHON}-{v.DEBIAN}"
BASE_IMAGE = f"tether-kind/base:{v.KIND}-{v.DEBIAN}"
NODE_IMAGE = f"tether-kind/node:{v.K8S}"
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
Progress = Callable[[str], None]

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


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:16]


def image_inputs(ref: str) -> str | None:
    """The `tether.kind.inputs` label of a local image, or None when the image is absent."""
    out = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", ref],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return None
    return (json.loads(out.stdout or "null") or {}).get(LABEL, "")


def _fresh(ref: str, digest: str) -> bool:
    return image_inputs(ref) == digest


def _import(ref: str, files: dict[str, tuple[bytes, int]], changes: list[str], digest: str):
    """`docker import` a tar of `files` ({path: (content, mode)}) as image `ref`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, (data, mode) in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    args = ["import"]
    for change in [*changes, f"LABEL {LABEL}={digest}"]:
        args += ["--change", change]
    docker(*args, "-", ref, input=buf.getvalue())


def _build(
    ref: str, dockerfile: Path, context: Path, args: dict[str, str], digest: str, say: Progress
) -> None:
    cmd = ["docker", "build", "-f", str(dockerfile), "-t", ref, "--label", f"{LABEL}={digest}"]
    for k, val in args.items():
        cmd += ["--build-arg", f"{k}={val}"]
    started = time.monotonic()
    log = cache_dir() / "kind" / "logs" / f"build-{ref.replace('/', '_').replace(':', '_')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        rc = subprocess.run(
            [*cmd, str(context)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**_env(), "DOCKER_BUILDKIT": "0"},
            check=False,
        ).returncode
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise EngineError(f"docker build of {ref} failed (log {log}):\n{tail}")
    say(f"  {ref}: built in {time.monotonic() - started:.0f} s")


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


# -- the Debian and Python bases ------------------------------------------------------------
def apt_mirror() -> str:
    """The Debian mirror apt already uses on this machine (debootstrap fetches from it)."""
    for src in [*sorted(Path("/etc/apt").glob("sources.list.d/*")), Path("/etc/apt/sources.list")]:
        try:
            text = src.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and "security" not in line:
                return next(w for w in words[1:] if "://" in w)
    return "http://deb.debian.org/debian"


def debian_base(say: Progress) -> str:
    """tether-kind/debian:bookworm: a minbase debootstrap imported as an image (no registry)."""
    digest = _digest("debian", v.DEBIAN, "minbase")
    if _fresh(DEBIAN_IMAGE, digest):
        return digest
    if shutil.which("debootstrap") is None:
        raise EngineError(
            "the offline kind build needs `debootstrap` (apt-get install debootstrap)"
        )
    mirror = apt_mirror()
    say(f"  debootstrap {v.DEBIAN} (minbase) from {mirror}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tether-debootstrap-") as root:
        out = subprocess.run(
            ["debootstrap", "--variant=minbase", v.DEBIAN, root, mirror],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise EngineError(f"debootstrap failed: {out.stdout[-2000:]}{out.stderr[-2000:]}")
        for junk in (
            "var/cache/apt/archives",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/locale",
        ):
            shutil.rmtree(Path(root) / junk, ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        rc = subprocess.run(
            ["docker", "import", "--change", f"LABEL {LABEL}={digest}", "-", DEBIAN_IMAGE],
            stdin=tar.stdout,
            capture_output=True,
            check=False,
        )
        tar.wait()
        if rc.returncode != 0:
            raise EngineError(f"docker import of {DEBIAN_IMAGE} failed: {rc.stderr.decode()}")
    say(f"  {DEBIAN_IMAGE}: built in {time.monotonic() - started:.0f} s")
    return digest


def python_base(debian: str, say: Progress) -> str:
    """tether-kind/python: Debian's python3 (3.11), the local BASE_IMAGE of deploy/Dockerfile."""
    dockerfile = tools_dir() / "kind" / "images" / "python.Dockerfile"
    ca = Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
    digest = _digest(debian, dockerfile.read_bytes(), ca)
    if _fresh(PYTHON_IMAGE, digest):
        return digest
    with tempfile.TemporaryDirectory(prefix="tether-python-") as ctx:
        (Path(ctx) / "host-ca-bundle.crt").write_bytes(ca)
        _build(PYTHON_IMAGE, dockerfile, Path(ctx), {"DEBIAN_IMAGE": DEBIAN_IMAGE}, digest, say)
    return digest


# -- kind's base and node images ------------------------------------------------------------
def kind_module_dir() -> Path:
    """The sigs.k8s.io/kind module source (downloaded from the Go module proxy if needed)."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kind@{v.KIND}"],
        capture_output=True,
        text=True,
        check=False,
        env={**_env(), "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"},
    )
    if out.returncode != 0:
        raise EngineError(f"go mod download sigs.k8s.io/kind@{v.KIND} failed: {out.stdout}")
    return Path(json.loads(out.stdout)["Dir"])


def kind_base(debian: str, say: Progress) -> str:
    """tether-kind/base: kind's base image rebuilt from Debian packages + kind's files."""
    dockerfile = tools_dir() / "kind" / "images" / "base.Dockerfile"
    files = kind_module_dir() / "images" / "base" / "files"
    tree = sorted(p for p in files.rglob("*") if p.is_file())
    digest = _digest(
        debian,
        dockerfile.read_bytes(),
        *(str(p.relative_to(files)).encode() + p.read_bytes() for p in tree),
    )
    if _fresh(BASE_IMAGE, digest):
        return digest
    with tempfile.TemporaryDirectory(prefix="tether-kindbase-") as ctx:
        shutil.copytree(files, Path(ctx) / "files")
        for p in (Path(ctx) / "files").rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        _build(BASE_IMAGE, dockerfile, Path(ctx), {"DEBIAN_IMAGE": DEBIAN_IMAGE}, digest, say)
    return digest


def pause_binary(out: Path) -> Path:
    """Compile Kubernetes' pause.c statically (it is in the k8s.io/kubernetes module)."""
    src = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{v.K8S}"],
        capture_output=True,
        text=True,
        check=False,
        env={**_env(), "GOTOOLCHAIN": "local"},
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
    singles = [(f"registry.k8s.io/{c}:{v.K8S}", lab_bins / c, c) for c in CONTROL_PLANE]
    singles.append((f"registry.k8s.io/etcd:{v.ETCD_TAG}", lab_bins / "etcd", "etcd"))
    for ref, binary, name in singles:
        data = binary.read_bytes()
        digest = _digest(ref, data)
        refs[ref] = digest
        if not _fresh(ref, digest):
            _import(ref, {f"/usr/local/bin/{name}": (data, 0o755)}, [path_env], digest)
            say(f"  {ref}: imported")
    coredns = (go_bins / "coredns").read_bytes()
    ref = f"registry.k8s.io/coredns/coredns:{v.COREDNS}"
    refs[ref] = digest = _digest(ref, coredns)
    if not _fresh(ref, digest):
        _import(ref, {"/coredns": (coredns, 0o755)}, ['ENTRYPOINT ["/coredns"]'], digest)
        say(f"  {ref}: imported")
    pause = pause_binary(go_bins).read_bytes()
    for tag in v.PAUSE_TAGS:
        ref = f"registry.k8s.io/pause:{tag}"
        refs[ref] = digest = _digest(ref, pause)
        if not _fresh(ref, digest):
            _import(ref, {"/pause": (pause, 0o755)}, ['ENTRYPOINT ["/pause"]'], digest)
            say(f"  {ref}: imported")
    ref = f"registry.k8s.io/kube-proxy:{v.K8S}"
    dockerfile = tools_dir() / "kind" / "images" / "kube-proxy.Dockerfile"
    proxy = (go_bins / "kube-proxy").read_bytes()
    refs[ref] = digest = _digest(ref, base, dockerfile.read_bytes(), proxy)
    if not _fresh(ref, digest):
        with tempfile.TemporaryDirectory(prefix="tether-kube-proxy-") as ctx:
            (Path(ctx) / "kube-proxy").write_bytes(proxy)
            (Path(ctx) / "kube-proxy").chmod(0o755)
            _build(ref, dockerfile, Path(ctx), {"BASE_IMAGE": BASE_IMAGE}, digest, say)
    return refs


def httpbin_image(go_bins: Path, say: Progress) -> str:
    """docker.io/mccutchen/go-httpbin:v2.15.0 built from its Go module (what deploy/ names)."""
    data = (go_bins / "go-httpbin").read_bytes()
    digest = _digest(v.HTTPBIN_IMAGE, data)
    if not _fresh(v.HTTPBIN_IMAGE, digest):
        _import(
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
    digest = _digest(
        base,
        json.dumps(components, sort_keys=True),
        json.dumps(CNI_CONFLIST),
        NOOP_MANIFEST,
        *(p.read_bytes() for p in binaries.values()),
    )
    if _fresh(NODE_IMAGE, digest):
        return digest
    started = time.monotonic()
    cid = docker(
        "run",
        "-d",
        "--entrypoint=sleep",
        "--security-opt",
        "seccomp=unconfined",
        BASE_IMAGE,
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
            f"LABEL {LABEL}={digest}",
            cid,
            NODE_IMAGE,
        )
    finally:
        docker("rm", "-f", "-v", cid, check=False)
    say(f"  {NODE_IMAGE}: built in {time.monotonic() - started:.0f} s")
    return digest


def tether_image(python: str, say: Progress, ref: str = v.TETHER_IMAGE) -> None:
    """deploy/Dockerfile with the local Python base (docker's layer cache makes re-runs fast)."""
    root = repo_root()
    _build(ref, root / "deploy" / "Dockerfile", root, {"BASE_IMAGE": PYTHON_IMAGE}, python, say)


def image_size(ref: str) -> int:
    """Size in bytes of a local image (as `docker images` reports it)."""
    return int(docker("image", "inspect", "-f", "{{.Size}}", ref).strip())
