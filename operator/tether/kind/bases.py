"""The local base images: Debian from debootstrap, Python on it, and kind's base image.

tether-kind/debian:bookworm     debootstrap --variant=minbase (the machine's apt mirror)
tether-kind/python:3.11         Debian's python3 on it (deploy/Dockerfile's BASE_IMAGE)
tether-kind/base:<kind>         kind's base image from Debian's systemd/containerd/runc/CNI
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tether.kind import imagetools as it
from tether.kind import versions as v
from tether.kind.engine import EngineError
from tether.kind.imagetools import Progress
from tether.kind.paths import tools_dir


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
    digest = it.digest("debian", v.DEBIAN, "minbase")
    if it.fresh(it.DEBIAN_IMAGE, digest):
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
            ["docker", "import", "--change", f"LABEL {it.LABEL}={digest}", "-", it.DEBIAN_IMAGE],
            stdin=tar.stdout,
            capture_output=True,
            check=False,
        )
        tar.wait()
        if rc.returncode != 0:
            raise EngineError(f"docker import of {it.DEBIAN_IMAGE} failed: {rc.stderr.decode()}")
    say(f"  {it.DEBIAN_IMAGE}: built in {time.monotonic() - started:.0f} s")
    return digest


def python_base(debian: str, say: Progress) -> str:
    """tether-kind/python: Debian's python3 (3.11), the local BASE_IMAGE of deploy/Dockerfile."""
    dockerfile = tools_dir() / "kind" / "images" / "python.Dockerfile"
    ca = Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
    digest = it.digest(debian, dockerfile.read_bytes(), ca)
    if it.fresh(it.PYTHON_IMAGE, digest):
        return digest
    with tempfile.TemporaryDirectory(prefix="tether-python-") as ctx:
        (Path(ctx) / "host-ca-bundle.crt").write_bytes(ca)
        it.build_dockerfile(
            it.PYTHON_IMAGE, dockerfile, Path(ctx), {"DEBIAN_IMAGE": it.DEBIAN_IMAGE}, digest, say
        )
    return digest


def kind_module_dir() -> Path:
    """The sigs.k8s.io/kind module source (downloaded from the Go module proxy if needed)."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kind@{v.KIND}"],
        capture_output=True,
        text=True,
        check=False,
        env={**it.env(), "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"},
    )
    if out.returncode != 0:
        raise EngineError(f"go mod download sigs.k8s.io/kind@{v.KIND} failed: {out.stdout}")
    return Path(json.loads(out.stdout)["Dir"])


def kind_base(debian: str, say: Progress) -> str:
    """tether-kind/base: kind's base image rebuilt from Debian packages + kind's files."""
    dockerfile = tools_dir() / "kind" / "images" / "base.Dockerfile"
    files = kind_module_dir() / "images" / "base" / "files"
    tree = sorted(p for p in files.rglob("*") if p.is_file())
    digest = it.digest(
        debian,
        dockerfile.read_bytes(),
        *(str(p.relative_to(files)).encode() + p.read_bytes() for p in tree),
    )
    if it.fresh(it.BASE_IMAGE, digest):
        return digest
    with tempfile.TemporaryDirectory(prefix="tether-kindbase-") as ctx:
        shutil.copytree(files, Path(ctx) / "files")
        for p in (Path(ctx) / "files").rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        it.build_dockerfile(
            it.BASE_IMAGE, dockerfile, Path(ctx), {"DEBIAN_IMAGE": it.DEBIAN_IMAGE}, digest, say
        )
    return digest
