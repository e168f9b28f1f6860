"""Table documents from a directory of ``*.json`` files (non-Kubernetes use, benchmarks).

Each file is one entry, named by its file name. The directory is re-scanned every
``interval`` seconds; a file is re-read only when its (inode, mtime, size) changed.
Invariants:
- The first scan completes (every file tried once) before ``on_loaded`` is called, so
  readiness means "routing by everything that was in the directory at start".
- Only regular files of at most ``MAX_TABLE_BYTES`` are read. FIFOs, devices, sockets,
  directories and symlinks that resolve outside the directory are skipped (and logged once);
  symlinks inside it are followed (a mounted ConfigMap is a tree of them).
- The event loop never waits on the file system or on a big table: listing, stat, reads and
  building the routes run in the table worker thread (``worker``), one file at a time (only one
  file's bytes are held at once), and a file is opened non-blocking only after stat said it is
  a regular file. Scans never overlap: the next starts ``interval`` after the last one settled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable, Iterator

from .store import TableStore
from .worker import Emit, TableWorker

log = logging.getLogger("tether.gateway.tables")

MAX_TABLE_BYTES = 4 << 20  # a ConfigMap holds at most 1 MiB; a table document is far smaller

Stamp = tuple[int, int, int]  # (inode, mtime_ns, size) of the file a name resolves to


class Skipped(Exception):
    """A directory entry that is not read, and why."""


def _resolve(full: str, root: str) -> tuple[str, os.stat_result]:
    """(real path, stat) of ``full``, which must resolve inside ``root`` (a realpath).

    An entry of ``root`` itself that is not a symlink is its own real path: one lstat, not a
    walk of every component of the path (the cost of a start-up beside 10,000 files).
    """
    head, tail = os.path.split(full)
    if head == root and tail not in ("", ".", ".."):
        st = os.lstat(full)
        if not stat.S_ISLNK(st.st_mode):
            return full, st
    real = os.path.realpath(full)
    if os.path.commonpath((real, root)) != root:
        raise Skipped("symlink out of the table directory")
    return real, os.stat(real)


def read_table_file(full: str, root: str, cap: int = MAX_TABLE_BYTES) -> tuple[Stamp, bytes]:
    """(stamp, bytes) of the regular file ``full`` inside directory ``root`` (a realpath).

    Raises Skipped for anything else (see module docstring) and OSError when it vanished.
    """
    real, st = _resolve(full, root)
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
        while size <= cap:  # ask for what stat said (+1 to see growth), not a whole cap
            chunk = os.read(fd, min(cap, max(st.st_size, size)) + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > cap:
        raise Skipped(f"larger than {cap} bytes")
    return (st.st_ino, st.st_mtime_ns, st.st_size), b"".join(chunks)


def iter_scan(
    path: str, seen: dict[str, Stamp], skipped: dict[str, str]
) -> Iterator[tuple[str, bytes | None]] | None:
    """One pass over ``path`` (blocking: run it in a thread), lazily: (name, new bytes) for each
    file read, (name, None) for each entry gone; None when the directory cannot be listed.

    ``seen`` holds the stamps of the files read so far and is updated as the iterator runs;
    ``skipped`` the entries refused and why (each reason logged once).
    """
    try:
        root = os.path.realpath(path)
        names = sorted(n for n in os.listdir(root) if n.endswith(".json"))
    except OSError as exc:
        log.warning("cannot list table directory %s: %s", path, exc)
        return None
    return _scan(root, names, seen, skipped)


def _scan(root: str, names: list[str], seen: dict[str, Stamp], skipped: dict[str, str]):
    listed = set(names)
    for name in [n for n in seen if n not in listed]:
        del seen[name]
        yield name, None
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
                yield name, None
            continue
        except OSError as exc:
            log.warning("cannot read table %s: %s", full, exc)
            continue
        skipped.pop(name, None)
        seen[name] = stamp
        yield name, text


def scan_files(
    path: str, seen: dict[str, Stamp], skipped: dict[str, str]
) -> tuple[list[str], dict[str, bytes]] | None:
    """``iter_scan`` collected: (names gone, {name: new bytes}); None when unlistable."""
    found = iter_scan(path, seen, skipped)
    if found is None:
        return None
    gone: list[str] = []
    changed: dict[str, bytes] = {}
    for name, text in found:
        if text is None:
            gone.append(name)
        else:
            changed[name] = text
    return gone, changed


def _scan_job(store: TableStore, path: str, seen, skipped, listed: list[bool]):
    """A worker job: scan ``path`` and prepare every file as it is read."""

    def job(emit: Emit) -> None:
        found = iter_scan(path, seen, skipped)
        listed[0] = found is not None
        for name, text in found or ():
            emit(name, store.forget(name) if text is None else store.prepare(name, text))

    return job


async def watch_directory(
    path: str, store: TableStore, interval: float, on_loaded: Callable[[], None]
) -> None:
    """Poll ``path`` forever; publish after every change; call ``on_loaded`` once the first
    complete scan is applied and published."""
    worker = TableWorker(store, asyncio.get_running_loop())
    seen: dict[str, Stamp] = {}
    skipped: dict[str, str] = {}
    listed = [False]
    try:
        while True:  # not ready until the directory is readable
            await worker.settled(worker.submit(_scan_job(store, path, seen, skipped, listed)))
            if listed[0]:
                break
            await asyncio.sleep(interval)
        store.publish(force=not store.swaps)  # the first load always swaps once
        on_loaded()
        while True:
            await asyncio.sleep(interval)
            await worker.settled(worker.submit(_scan_job(store, path, seen, skipped, listed)))
    finally:
        worker.close()
