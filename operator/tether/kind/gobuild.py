"""Build the kind tier's Go binaries from the Go module proxy into a cache keyed by version.

- kubelet, kubeadm, kube-proxy: `tools/kind/node`, the same pins as the lab's `tools/k8s`;
- CoreDNS with kubeadm's Corefile plugins: `tools/kind/coredns`;
- the kind CLI and go-httpbin: `go install MODULE@VERSION` (no replace directives there).

Invariant: `ensure_go_binaries()` returns a folder with every binary of BINARIES, built from
the committed wrapper modules at the pinned versions; a folder whose stamp matches is reused
as is, and a half-finished build is never visible (built in a temporary sibling, renamed).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tether.kind import versions as v
from tether.kind.paths import cache_dir, tools_dir

NODE_BINARIES = ("kubelet", "kubeadm", "kube-proxy")
BINARIES = (*NODE_BINARIES, "coredns", "kind", "go-httpbin")
STAMP = ".stamp.json"
Progress = Callable[[str], None]


class GoBuildError(RuntimeError):
    """A Go build failed (missing Go, module proxy error, compile error)."""


def go_env(static: bool = True) -> dict[str, str]:
    """Environment for every `go` call: the local toolchain only, static binaries."""
    return {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0" if static else "1"}


def go_version() -> str:
    """Return `go env GOVERSION`; raise GoBuildError when Go is missing."""
    if shutil.which("go") is None:
        raise GoBuildError("`go` is not on PATH; the offline kind build needs Go >= 1.26")
    out = subprocess.run(
        ["go", "env", "GOVERSION"], env=go_env(), capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise GoBuildError(f"`go env GOVERSION` failed: {out.stderr.strip()}")
    return out.stdout.strip()


def modules_digest(tools: Path) -> str:
    """Digest of the wrapper modules (go.mod, go.sum, main.go): a change means a rebuild."""
    h = hashlib.sha256()
    for rel in (
        "node/go.mod",
        "node/go.sum",
        "coredns/go.mod",
        "coredns/go.sum",
        "coredns/main.go",
    ):
        h.update(rel.encode() + b"\0" + (tools / "kind" / rel).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def bin_dir(go: str) -> Path:
    """The cache folder for these versions and this Go toolchain."""
    key = f"kind-{v.KIND}-k8s-{v.K8S}-coredns-{v.COREDNS}-httpbin-{v.HTTPBIN}-{go}"
    return cache_dir() / "kind" / "bin" / key


def _go(args: list[str], cwd: Path | None, env: dict[str, str], what: str, say: Progress) -> None:
    started = time.monotonic()
    out = subprocess.run(
        ["go", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-30:])
        raise GoBuildError(f"go build of {what} failed:\n{tail}")
    say(f"  {what}: built in {time.monotonic() - started:.0f} s")


def read_stamp(directory: Path, digest: str) -> dict | None:
    """The stamp of a complete build for `digest` in `directory`, else None."""
    try:
        stamp = json.loads((directory / STAMP).read_text())
    except (OSError, ValueError):
        return None
    if stamp.get("modules") != digest or not all((directory / b).is_file() for b in BINARIES):
        return None
    return stamp


def _build(tools: Path, tmp: Path, ldflags: str, say: Progress) -> None:
    kind = tools / "kind"
    node_pkgs = [f"k8s.io/kubernetes/cmd/{b}" for b in NODE_BINARIES]
    say(f"  kubelet, kubeadm, kube-proxy {v.K8S} (reuses the lab build's Go cache)")
    _go(
        ["build", "-trimpath", "-ldflags", ldflags, "-o", f"{tmp}/", *node_pkgs],
        kind / "node",
        go_env(),
        "kubelet/kubeadm/kube-proxy",
        say,
    )
    say(f"  CoreDNS {v.COREDNS}")
    _go(
        ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(tmp / "coredns"), "."],
        kind / "coredns",
        go_env(),
        "coredns",
        say,
    )
    gobin = {**go_env(), "GOBIN": str(tmp), "GOFLAGS": "-trimpath", "GOWORK": "off"}
    say(f"  kind {v.KIND}, go-httpbin {v.HTTPBIN}")
    _go(["install", "-ldflags=-s -w", f"sigs.k8s.io/kind@{v.KIND}"], None, gobin, "kind", say)
    _go(
        [
            "install",
            "-ldflags=-s -w",
            f"github.com/mccutchen/go-httpbin/v2/cmd/go-httpbin@{v.HTTPBIN}",
        ],
        None,
        gobin,
        "go-httpbin",
        say,
    )


def ensure_go_binaries(ldflags: str, say: Progress = lambda _m: None, force: bool = False) -> Path:
    """Return the folder with every binary of BINARIES, building it only when missing.

    `ldflags` stamp the Kubernetes version into kubelet/kubeadm/kube-proxy; the caller passes
    the lab build's (`tether.lab.build.k8s_ldflags()`), so every binary of the node agrees.
    """
    tools = tools_dir()
    if not (tools / "kind" / "node" / "go.mod").is_file():
        raise GoBuildError(f"wrapper modules not found under {tools}/kind (set TETHER_TOOLS_DIR)")
    go = go_version()
    target, digest = bin_dir(go), modules_digest(tools)
    if read_stamp(target, digest) and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if read_stamp(target, digest) and not force:
            return target
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        say(f"building the kind tier's Go binaries into {target}")
        started = time.monotonic()
        try:
            _build(tools, tmp, ldflags, say)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        seconds = round(time.monotonic() - started, 1)
        stamp = {
            "modules": digest,
            "go": go,
            "build_seconds": seconds,
            "sizes": {b: (tmp / b).stat().st_size for b in BINARIES},
        }
        (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        say(f"kind Go binaries ready in {seconds:.0f} s")
        return target
