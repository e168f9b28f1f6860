"""Helpers for test suites that run on the lab: the session lab, and waiting on conditions.

Environment:
- `TETHER_LAB=reuse`: use the running lab `TETHER_LAB_NAME` (default `dev`), start it if it is
  not up, and leave it running afterwards (fast local iterations: `tether lab up` once).
- otherwise (default, CI): start a fresh lab `pytest-<pid>` and tear it down at the end.

A lab that cannot start is an error with the reason, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from tether.lab import build
from tether.lab.lab import Lab

T = TypeVar("T")


class LabUnavailable(RuntimeError):
    """The lab needed by the tests could not be started or joined."""


def wait_until(
    predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll `predicate` until it returns a truthy value and return that value.

    Raises TimeoutError naming `what` and the last value (or exception) seen at the deadline.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as e:  # keep polling; report the last failure at the deadline
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{what or predicate!r} not true after {timeout:.0f} s; last: {last!r}"
            )
        time.sleep(interval)


def missing_binaries() -> str:
    """Return why the lab binaries are not usable ('' when they are): a test session does not
    build them (that takes minutes; `make lab-binaries` does it before the tests)."""
    try:
        path = build.bin_dir()
    except build.BuildError as e:
        return str(e)
    if build.read_stamp(path) is None and not os.environ.get("TETHER_LAB_BIN_DIR"):
        return f"lab binaries missing in {path}: run `make lab-binaries` (= `tether lab build`)"
    return ""


def lab_settings() -> tuple[str, bool]:
    """Return (lab name, reuse?) from TETHER_LAB and TETHER_LAB_NAME."""
    reuse = os.environ.get("TETHER_LAB", "").lower() == "reuse"
    default = "dev" if reuse else f"pytest-{os.getpid()}"
    return os.environ.get("TETHER_LAB_NAME") or default, reuse


@contextlib.contextmanager
def session_lab(enter: bool = True) -> Iterator[Lab]:
    """Yield a running lab for a test session (see module doc); join its namespace if `enter`.

    Joining moves the whole process only if no other thread runs yet, so call it before any
    test starts threads; otherwise LabUnavailable explains why.
    """
    name, reuse = lab_settings()
    lab = Lab(name)
    started_here = False
    if not (reuse and lab.is_up()):
        missing = missing_binaries()
        if missing:
            raise LabUnavailable(missing)
        try:
            lab.up(progress=lambda msg: print(f"[lab] {msg}", file=sys.stderr, flush=True))
        except Exception as e:
            raise LabUnavailable(f"the lab {name!r} could not start: {e}") from e
        started_here = True
    try:
        if enter:
            others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
            if threading.current_thread() is not threading.main_thread() or others:
                raise LabUnavailable(
                    "cannot join the lab's network namespace: threads already run "
                    f"({others}); the lab fixture must come before anything that starts threads"
                )
            lab.enter()
        yield lab
    finally:
        if started_here and not reuse:
            lab.down()
