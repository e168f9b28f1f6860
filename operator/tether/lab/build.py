"""Build the lab's control-plane binaries from the Go module proxy into a versioned cache.

The wrapper modules in `tools/k8s` and `tools/etcd` pin every dependency (go.mod + go.sum); this
module only runs `go build` on them with the version ldflags, writes into
`$TETHER_CACHE_DIR/bin/k8s-<v>-etcd-<v>-<go>/` (default cache `~/.cache/tether`) and leaves a
stamp file there. A directory with a valid stamp is never rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
ETCD_BINARIES = ("etcd", "etcdctl")
BINARIES = ETCD_BINARIES + K8S_BINARIES
STAMP = ".stamp.json"

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """The binaries could not be built (missing Go, module proxy error, failed compile)."""


@dataclass(frozen=True)
class BuildStep:
    """One `go build` invocation: a wrapper module, its packages and where they land."""

    name: str
    module_dir: str
    packages: tuple[str, ...]
    outputs: tuple[str, ...]
    ldflags: str


def cache_root() -> Path:
    """Return the cache directory: $TETHER_CACHE_DIR or ~/.cache/tether (never inside the repo)."""
    return Path(os.environ.get("TETHER_CACHE_DIR") or Path.home() / ".cache" / "tether")


def tools_dir() -> Path:
    """Return the folder holding the wrapper Go modules ($TETHER_TOOLS_DIR or the checkout's)."""
    env = os.environ.get("TETHER_TOOLS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "tools"


def go_env() -> dict[str, str]:
    """Return the environment for every `go` call: local toolchain only, static binaries."""
    return {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}


def go_version() -> str:
    """Return the installed Go version (e.g. `go1.26.8`); raise BuildError when Go is missing."""
    if shutil.which("go") is None:
        raise BuildError(
            "`go` is not on PATH; the lab binaries need Go >= 1.26 (GOTOOLCHAIN=local)"
        )
    out = subprocess.run(
        ["go", "env", "GOVERSION"], env=go_env(), capture_output=True, text=True, check=False
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise BuildError(f"`go env GOVERSION` failed: {out.stderr.strip()}")
    return out.stdout.strip()


def bin_dir(go: str | None = None) -> Path:
    """Return the cache folder for this K8s/etcd/Go triple, or $TETHER_LAB_BIN_DIR if set."""
    override = os.environ.get("TETHER_LAB_BIN_DIR")
    if override:
        return Path(override)
    key = f"k8s-{K8S_VERSION}-etcd-{ETCD_VERSION}-{go or go_version()}"
    return cache_root() / "bin" / key


def modules_digest(tools: Path) -> str:
    """Return a digest of the wrapper modules' go.mod/go.sum: a change means a rebuild."""
    h = hashlib.sha256()
    for rel in ("k8s/go.mod", "k8s/go.sum", "etcd/go.mod", "etcd/go.sum"):
        h.update(rel.encode() + b"\0" + (tools / rel).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def read_stamp(directory: Path) -> dict | None:
    """Return the stamp of a complete build in `directory`, or None when absent or incomplete."""
    try:
        stamp = json.loads((directory / STAMP).read_text())
    except (OSError, ValueError):
        return None
    if not all((directory / b).is_file() for b in BINARIES):
        return None
    return stamp


def k8s_ldflags(version: str = K8S_VERSION) -> str:
    """Return the -X flags that make `--version` and `/version` report `version`."""
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        for var, val in (
            ("gitVersion", version),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
            ("buildDate", "1970-01-01T00:00:00Z"),
        ):
            flags.append(f"-X {pkg}.{var}={val}")
    return " ".join(flags)


def steps() -> list[BuildStep]:
    """Return the build steps in order (etcd first: it is the smaller one)."""
    etcd_ld = f"-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA={ETCD_VERSION}"
    return [
        BuildStep("etcd", "etcd", ("go.etcd.io/etcd/server/v3",), ("etcd",), etcd_ld),
        BuildStep("etcdctl", "etcd", ("go.etcd.io/etcd/etcdctl/v3",), ("etcdctl",), etcd_ld),
        BuildStep(
            "kubernetes",
            "k8s",
            tuple(f"k8s.io/kubernetes/cmd/{b}" for b in K8S_BINARIES),
            K8S_BINARIES,
            k8s_ldflags(),
        ),
    ]


def _count_deps(module: Path, packages: tuple[str, ...]) -> int:
    out = subprocess.run(
        ["go", "list", "-deps", *packages],
        cwd=module,
        env=go_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return len(out.stdout.split()) if out.returncode == 0 else 0


def _run_step(step: BuildStep, tools: Path, out_dir: Path, progress: Progress) -> None:
    module = tools / step.module_dir
    total = _count_deps(module, step.packages)
    target = str(out_dir / step.outputs[0]) if len(step.outputs) == 1 else f"{out_dir}/"
    cmd = ["go", "build", "-v", "-trimpath", "-ldflags", step.ldflags, "-o", target]
    started = time.monotonic()
    proc = subprocess.Popen(
        [*cmd, *step.packages],
        cwd=module,
        env=go_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    compiled, tail, last = 0, [], 0.0
    every = 5.0 if sys.stderr.isatty() else 30.0  # fewer lines in CI logs
    for line in proc.stdout:
        line = line.rstrip()
        tail = [*tail[-40:], line]
        if line and " " not in line:  # `go build -v` prints one import path per compiled package
            compiled += 1
        now = time.monotonic()
        if now - last >= every:
            last = now
            of = f"/{total}" if total else ""
            progress(f"  {step.name}: {compiled}{of} packages compiled, {now - started:.0f} s")
    if proc.wait() != 0:
        raise BuildError(f"go build of {step.name} failed:\n" + "\n".join(tail))
    progress(f"  {step.name}: done in {time.monotonic() - started:.0f} s")


def _verify(out_dir: Path) -> dict[str, str]:
    versions = {}
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
        out = subprocess.run(
            [str(out_dir / name), "--version"], capture_output=True, text=True, check=False
        )
        versions[name] = (out.stdout or out.stderr).strip().splitlines()[0]
    out = subprocess.run(
        [str(out_dir / "kubectl"), "version", "--client"], capture_output=True, text=True
    )
    versions["kubectl"] = out.stdout.strip().splitlines()[0]
    if K8S_VERSION not in versions["kube-apiserver"]:
        raise BuildError(f"kube-apiserver --version says {versions['kube-apiserver']!r}")
    if ETCD_VERSION.lstrip("v") not in versions["etcd"]:
        raise BuildError(f"etcd --version says {versions['etcd']!r}")
    return versions


def ensure_binaries(progress: Progress | None = None, force: bool = False) -> Path:
    """Return a folder holding every lab binary, building it first when no valid stamp exists.

    Invariant: the returned folder contains all of BINARIES, built from the committed wrapper
    modules, and reporting the pinned versions; a half-finished build is never visible there
    (it is built in a temporary sibling and renamed into place).
    """
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if os.environ.get("TETHER_LAB_BIN_DIR"):
        target = bin_dir()
        missing = [b for b in BINARIES if not (target / b).is_file()]
        if missing:
            raise BuildError(f"TETHER_LAB_BIN_DIR={target} lacks {', '.join(missing)}")
        return target
    tools = tools_dir()
    if not (tools / "k8s" / "go.mod").is_file():
        raise BuildError(f"wrapper modules not found under {tools} (set TETHER_TOOLS_DIR)")
    go = go_version()
    target = bin_dir(go)
    digest = modules_digest(tools)
    stamp = read_stamp(target)
    if stamp and stamp.get("modules") == digest and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = read_stamp(target)
        if stamp and stamp.get("modules") == digest and not force:
            return target
        return _build(tools, target, go, digest, say)


def _build(tools: Path, target: Path, go: str, digest: str, say: Progress) -> Path:
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    say(
        f"building lab binaries (Kubernetes {K8S_VERSION}, etcd {ETCD_VERSION}, {go}) into {target}"
    )
    say("  a cold build takes 10-25 minutes on 2 cores; later runs reuse it")
    started = time.monotonic()
    try:
        for step in steps():
            _run_step(step, tools, tmp, say)
        versions = _verify(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = round(time.monotonic() - started, 1)
    sizes = {b: (tmp / b).stat().st_size for b in BINARIES}
    stamp = {
        "k8s": K8S_VERSION,
        "etcd": ETCD_VERSION,
        "go": go,
        "modules": digest,
        "build_seconds": seconds,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sizes": sizes,
        "versions": versions,
    }
    (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    say(f"lab binaries ready in {seconds:.0f} s: {target}")
    return target
