"""Network namespaces: create, delete, join (setns via ctypes) and list the processes inside.

Joining a network namespace with setns(2) changes only the calling *thread*; threads and
processes created afterwards by that thread inherit it. `NetnsExecutor` uses that to run work
inside a namespace from a private thread without moving the caller.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = Path("/run/netns")
T = TypeVar("T")


class NetnsError(RuntimeError):
    """A namespace operation failed (usually: not root, or `ip` missing)."""


def path_of(name: str) -> Path:
    """Return the bind-mount path `ip netns` uses for namespace `name`."""
    return NETNS_RUN_DIR / name


def exists(name: str) -> bool:
    """Return True when namespace `name` is mounted under /run/netns."""
    return path_of(name).exists()


def _ip(*args: str) -> None:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {out.stderr.strip()}")


def create(name: str, addresses: tuple[str, ...] = ()) -> None:
    """Create namespace `name` with loopback up and `addresses` (CIDR strings) on `lo`.

    Invariant: on return the namespace exists, `lo` is up and carries every address given.
    """
    if os.geteuid() != 0:
        raise NetnsError(
            "creating a network namespace needs root (CAP_SYS_ADMIN); run as root, "
            "or see the README's rootless note"
        )
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        for cidr in addresses:
            _ip("-n", name, "addr", "add", cidr, "dev", "lo")
    except NetnsError:
        delete(name)
        raise


def delete(name: str) -> None:
    """Remove namespace `name` (no error if it is already gone)."""
    if exists(name):
        _ip("netns", "delete", name)


def inode(name: str) -> int:
    """Return the inode identifying namespace `name` (compare with /proc/PID/ns/net)."""
    return path_of(name).stat().st_ino


def pids_in(ino: int) -> Iterator[int]:
    """Yield the PIDs of every process whose network namespace has inode `ino`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "ns" / "net").stat().st_ino == ino:
                yield int(entry.name)
        except OSError:
            continue


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def setns(path: Path | str) -> None:
    """Move the calling thread into the network namespace mounted at `path`.

    Call it on the main thread before other threads start to move the whole process.
    """
    fd = os.open(str(path), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc().setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(f"setns({path}) failed: {os.strerror(err)}")
    finally:
        os.close(fd)


def current_inode() -> int:
    """Return the network-namespace inode of the calling thread."""
    return os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net").st_ino


class NetnsExecutor:
    """A one-thread executor whose thread lives in a network namespace.

    Everything submitted runs inside the namespace, and child processes started from it
    are born there; the caller's own threads stay where they are.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix=f"netns-{name}",
            initializer=setns,
            initargs=(path_of(name),),
        )

    def call(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run fn(*args, **kwargs) inside the namespace and return its result."""
        return self._pool.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        """Stop the worker thread."""
        self._pool.shutdown(wait=True)


def only_loopback() -> bool:
    """Return True when the calling thread's namespace has no interface but `lo` (a private
    namespace such as `unshare -Urn` makes; never the host's)."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def ip_in_current(*args: str) -> None:
    """Run `ip ARGS` in the calling thread's namespace (raise NetnsError on failure)."""
    _ip(*args)


class CurrentExecutor:
    """NetnsExecutor's interface for a lab that lives in the caller's own namespace."""

    def call(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run fn(*args, **kwargs) right here."""
        return fn(*args, **kwargs)

    def close(self) -> None:
        """Nothing to stop."""
