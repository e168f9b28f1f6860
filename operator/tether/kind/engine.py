"""The container engine kind runs on: find or start dockerd, and detect this machine's walls.

Invariants:
- `ensure_docker()` returns only when `docker info` answers; it starts `dockerd` (detached, log
  in the cache) only when no daemon answers, and never touches a daemon it did not start.
- The CAP_SYS_RESOURCE workaround is applied only when the capability bounding set lacks it
  (`needs_sys_resource_workaround()`); then dockerd gets a runtime wrapper that removes that
  capability from every container spec before the real runc sees it, because runc cannot grant
  a capability the bounding set lacks (`docker run --privileged` fails: "unable to apply caps").
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tether.kind.paths import cache_dir

CAP_SYS_RESOURCE = 24
WRAPPER_RUNTIME = "tether-runc"

WRAPPER = """#!/bin/sh
# Written by tether (tether/kind/engine.py). This machine's capability bounding set lacks
# CAP_SYS_RESOURCE, so runc fails to grant it to privileged containers (kind nodes). Remove it
# from the bundle's config.json (create/run) or the --process spec (exec), then run runc.
REAL={runc}
cmd=""; bundle="."; process=""; prev=""
for a in "$@"; do
  case "$prev" in --bundle|-b) bundle=$a ;; --process|-p) process=$a ;; esac
  case "$a" in
    --bundle=*) bundle=${{a#--bundle=}} ;;
    --process=*) process=${{a#--process=}} ;;
    create|run|exec) [ -z "$cmd" ] && cmd=$a ;;
  esac
  prev=$a
done
drop() {{
  {jq} "$1"'|= (if . == null then . else with_entries(.value |= (if type == "array"
    then map(select(. != "CAP_SYS_RESOURCE")) else . end)) end)' "$2" > "$2.tether" \
    && mv "$2.tether" "$2"
}}
case "$cmd" in
  create|run) [ -f "$bundle/config.json" ] && drop .process.capabilities "$bundle/config.json" ;;
  exec) [ -n "$process" ] && [ -f "$process" ] && drop .capabilities "$process" ;;
esac
exec "$REAL" "$@"
"""


class EngineError(RuntimeError):
    """Docker is missing, cannot start, or runs without a workaround this machine needs."""


@dataclass(frozen=True)
class Engine:
    """What `ensure_docker` found or did, reported to the user."""

    started: bool
    workaround: bool
    log: Path | None


def bounding_caps(status: str | None = None) -> int:
    """Return the capability bounding set of this process (CapBnd of /proc/self/status)."""
    text = status if status is not None else Path("/proc/self/status").read_text()
    for line in text.splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    raise EngineError("no CapBnd line in /proc/self/status")


def needs_sys_resource_workaround(status: str | None = None) -> bool:
    """True when CAP_SYS_RESOURCE is missing from the bounding set (runc cannot grant it)."""
    return not bounding_caps(status) >> CAP_SYS_RESOURCE & 1


def docker_info() -> dict | None:
    """Return `docker info` as a dict, or None when no daemon answers."""
    if shutil.which("docker") is None:
        raise EngineError("`docker` is not on PATH: install Debian's docker.io (see .ci/run)")
    out = subprocess.run(
        ["docker", "info", "--format", "{{json .}}"], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return None
    try:
        info = json.loads(out.stdout)
    except ValueError:
        return None
    return info if info.get("ServerVersion") else None


def write_wrapper(directory: Path | None = None) -> Path:
    """Write the runc wrapper script (idempotent) and return its path."""
    runc, jq = shutil.which("runc"), shutil.which("jq")
    if not runc or not jq:
        raise EngineError("the CAP_SYS_RESOURCE workaround needs `runc` and `jq` on PATH")
    path = (directory or cache_dir() / "kind") / "runc-drop-sys-resource"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = WRAPPER.format(runc=runc, jq=jq)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(path)
    return path


def dockerd_command(wrapper: Path | None) -> list[str]:
    """Return the dockerd command line (with the wrapper as default runtime when given)."""
    cmd = ["dockerd", "--host=unix:///var/run/docker.sock"]
    if wrapper is not None:
        cmd += [
            f"--add-runtime={WRAPPER_RUNTIME}={wrapper}",
            f"--default-runtime={WRAPPER_RUNTIME}",
        ]
    return cmd


def _check_runtime(info: dict, workaround: bool) -> None:
    if workaround and info.get("DefaultRuntime") != WRAPPER_RUNTIME:
        raise EngineError(
            "this machine's capability bounding set lacks CAP_SYS_RESOURCE, so privileged "
            "containers (kind nodes) fail with 'unable to apply caps', and the running dockerd "
            f"has default runtime {info.get('DefaultRuntime')!r}. Stop it and let `tether kind up` "
            f"start one, or start it as: {' '.join(dockerd_command(write_wrapper()))}"
        )


def ensure_docker(timeout: float = 60.0, say=lambda _m: None) -> Engine:
    """Return once a Docker daemon answers, starting one when none does (see module doc)."""
    workaround = needs_sys_resource_workaround()
    info = docker_info()
    if info is not None:
        _check_runtime(info, workaround)
        return Engine(started=False, workaround=workaround, log=None)
    if shutil.which("dockerd") is None:
        raise EngineError("no Docker daemon answers and `dockerd` is not installed (docker.io)")
    wrapper = write_wrapper() if workaround else None
    log = cache_dir() / "kind" / "dockerd.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    if workaround:
        say(
            "CAP_SYS_RESOURCE is missing from the capability bounding set: dockerd gets the "
            f"runtime wrapper {wrapper}"
        )
    say(f"starting dockerd (log {log})")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            dockerd_command(wrapper),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while (info := docker_info()) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise EngineError("dockerd did not come up:\n" + "\n".join(tail))
        time.sleep(0.3)
    _check_runtime(info, workaround)
    return Engine(started=True, workaround=workaround, log=log)


def docker(*args: str, check: bool = True, input: bytes | None = None) -> str:
    """Run `docker ARGS`; return stdout; raise EngineError with stderr when it fails."""
    out = subprocess.run(["docker", *args], capture_output=True, input=input, check=False)
    if check and out.returncode != 0:
        err = out.stderr.decode(errors="replace").strip()
        raise EngineError(f"docker {' '.join(args[:3])} failed: {err}")
    return out.stdout.decode(errors="replace")


def image_exists(ref: str) -> bool:
    """True when the local Docker image store has `ref`."""
    return (
        subprocess.run(
            ["docker", "image", "inspect", ref], capture_output=True, check=False
        ).returncode
        == 0
    )
