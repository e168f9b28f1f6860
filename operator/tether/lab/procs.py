"""Detached daemons: start them with their output in a log file, find them again, stop them.

A process is identified by (pid, start time) so a recycled PID is never mistaken for a daemon.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path


def start_time(pid: int) -> int | None:
    """Return the kernel start time (clock ticks since boot) of `pid`, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # a zombie has finished; it only waits to be reaped
        return None
    return int(fields[19])


def alive(pid: int, started: int | None = None) -> bool:
    """Return True when `pid` runs (and, if `started` is given, is the same process)."""
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None):
    """Start `cmd` detached (own session, stdin closed, output appended to `log`).

    Returns (pid, start_time). The caller's network namespace is inherited: call it from a
    thread that has joined the lab's namespace.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )
    # Popen keeps a handle only to reap; the lab tracks the daemon by pid from here on.
    proc.returncode = 0  # prevents a ResourceWarning when the object is collected
    return proc.pid, start_time(proc.pid) or 0


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(procs: Iterable[tuple[int, int | None]], grace: float = 5.0) -> list[int]:
    """SIGTERM every live process of `procs`, SIGKILL what survives `grace` seconds.

    Invariant: on return none of them runs. Returns the PIDs that had to be killed.
    """
    live = [(pid, st) for pid, st in procs if alive(pid, st)]
    for pid, _ in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        for pid, _ in live:
            _reap(pid)
        if not any(alive(pid, st) for pid, st in live):
            return []
        time.sleep(0.05)
    killed = []
    for pid, st in live:
        if alive(pid, st):
            killed.append(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(alive(pid, st) for pid, st in live) and time.monotonic() < deadline:
        for pid, _ in live:
            _reap(pid)
        time.sleep(0.05)
    return killed


def tail(path: Path, lines: int = 30) -> str:
    """Return the last `lines` lines of a log file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
