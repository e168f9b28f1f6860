"""Helpers shared by the image builders: input digests, the `tether.kind.inputs` label,
`docker import` of a file tree and `docker build` with a log in the cache."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from tether.kind import versions as v
from tether.kind.engine import EngineError, docker
from tether.kind.paths import cache_dir

LABEL = "tether.kind.inputs"
DEBIAN_IMAGE = f"tether-kind/debian:{v.DEBIAN}"
PYTHON_IMAGE = f"tether-kind/python:{v.PYTHON}-{v.DEBIAN}"
BASE_IMAGE = f"tether-kind/base:{v.KIND}-{v.DEBIAN}"
NODE_IMAGE = f"tether-kind/node:{v.K8S}"
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
Progress = Callable[[str], None]


def digest(*parts: bytes | str) -> str:
    """A short digest of `parts` (the inputs an image is built from)."""
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


def fresh(ref: str, digest: str) -> bool:
    """True when image `ref` exists and was built from inputs `digest`."""
    return image_inputs(ref) == digest


def import_files(ref: str, files: dict[str, tuple[bytes, int]], changes: list[str], digest: str):
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


def build_dockerfile(
    ref: str, dockerfile: Path, context: Path, args: dict[str, str], digest: str, say: Progress
) -> None:
    """`docker build` (classic builder) of `dockerfile` as `ref`, labelled with `digest`."""
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
            env={**env(), "DOCKER_BUILDKIT": "0"},
            check=False,
        ).returncode
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise EngineError(f"docker build of {ref} failed (log {log}):\n{tail}")
    say(f"  {ref}: built in {time.monotonic() - started:.0f} s")


def env() -> dict[str, str]:
    """The environment for docker and go subprocesses."""
    return dict(os.environ)


def image_size(ref: str) -> int:
    """Size in bytes of a local image (as `docker images` reports it)."""
    return int(docker("image", "inspect", "-f", "{{.Size}}", ref).strip())
