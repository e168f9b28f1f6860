"""Table documents from a directory of ``*.json`` files (non-Kubernetes use, benchmarks).

Each file is one entry, named by its file name. The directory is re-scanned every
``interval`` seconds; a file is re-read only when its (inode, mtime, size) changed.
Invariants:
- The first scan completes (every file tried once) before ``on_loaded`` is called, so
  readiness means "routing by everything that was in the directory at start".
- Only regular files of at most ``MAX_TABLE_BYTES`` are read. FIFOs, devices, sockets,
  directories and symlinks that resolve outside the directory are skipped (and logged once);
  symlinks inside it are followed (a mounted ConfigMap is a tree of them).
- The event loop never waits on the file system: listing, stat and reads run in a worker
  thread, and a file is opened non-blocking only after stat said it is a regular file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable

from .store import TableStore

log = logging.getLogger("tether.gateway.tables")

MAX_TABLE_BYTES = 4 << 20  # a ConfigMap holds at most 1 MiB; a table document is far smaller

Stamp = tuple[int, int, int]  # (inode, mtime_ns, size) of the file a name resolves to


class Skipped(Exception):
    """A directory entry that is not read, and why."""


def read_table_file(full: str, root: str, cap: int = MAX_TABLE_BYTES) -> tuple[Stamp, bytes]:
    """(stamp, bytes) of the regular file ``full`` inside directory ``root`` (a realpath).

    Raises Skipped for anything else (see module docstring) and OSError when it vanished.
    """
    real = os.path.realpath(full)
    if os.path.commonpath((real, root)) != root:
        raise Skipped("symlink out of the table directory")
    st = os.stat(real)
    if not stat.S_ISREG(st.st_mode):
        raise Skipped("not a regular file")
    if st.st_size > cap:
        raise Skipped(f"larger than {cap} bytes")
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)  # the file opened is the one checked, not one swapped in since
        if not stat.S_ISREG(st.st_mode) or st.st_size > cap:
            raise Skipped("changed while being read")
        chunks, size = [], 0
        while size <= cap:
            chunk = os.read(fd, cap + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > cap:
        raise Skipped(f"larger than {cap} bytes")
    return (st.st_ino, st.st_mtime_ns, st.st_size), b"".join(chunks)


def scan_files(
    path: str, seen: dict[str, Stamp], skipped: dict[str, str]
) -> tuple[list[str], dict[str, bytes]] | None:
    """One pass over ``path`` (blocking: run it in a thread): (names gone, {name: new bytes}).

    ``seen`` holds the stamps of the files read so far and is updated; ``skipped`` the entries
    refused and why (each reason logged once). None when the directory cannot be listed.
    """
    try:
        root = os.path.realpath(path)
        names = sorted(n for n in os.listdir(root) if n.endswith(".json"))
    except OSError as exc:
        log.warning("cannot list table directory %s: %s", path, exc)
        return None
    gone = [n for n in seen if n not in names]
    for name in gone:
        del seen[name]
    changed: dict[str, bytes] = {}
    for name in names:
        full = os.path.join(root, name)
        try:
            st = os.stat(full)
            if seen.get(name) == (st.st_ino, st.st_mtime_ns, st.st_size):
                continue
            stamp, text = read_table_file(full, root)
        except Skipped as exc:
            if skipped.get(name) != str(exc):
                log.warning("table %s skipped: %s", full, exc)
            skipped[name] = str(exc)
            if name in seen:  # it was a table before: it is one no longer
                del seen[name]
                gone.append(name)
            continue
        except OSError as exc:
            log.warning("cannot read table %s: %s", full, exc)
            continue
        skipped.pop(name, None)
        seen[name] = stamp
        changed[name] = text
    return gone, changed


def scan_once(path: str, store: TableStore, seen: dict[str, Stamp]) -> bool | None:
    """``scan_files`` applied to ``store``; True if any route changed, None if unlistable."""
    result = scan_files(path, seen, {})
    return None if result is None else _apply(store, *result)


def _apply(store: TableStore, gone: list[str], changed: dict[str, bytes]) -> bool:
    any_change = False
    for name in gone:
        any_change |= store.remove(name)
    for name, text in changed.items():
        any_change |= store.apply(name, text)
    return any_change


async def watch_directory(
    path: str, store: TableStore, interval: float, on_loaded: Callable[[], None]
) -> None:
    """Poll ``path`` forever; publish after every change; call ``on_loaded`` after scan one."""
    seen: dict[str, Stamp] = {}
    skipped: dict[str, str] = {}
    while (result := await asyncio.to_thread(scan_files, path, seen, skipped)) is None:
        await asyncio.sleep(interval)  # not ready until the directory is readable
    _apply(store, *result)
    store.publish(force=True)
    on_loaded()
    while True:
        await asyncio.sleep(interval)
        result = await asyncio.to_thread(scan_files, path, seen, skipped)
        if result is not None and _apply(store, *result):
            store.publish()
