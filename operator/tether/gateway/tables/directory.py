"""Table documents from a directory of ``*.json`` files (non-Kubernetes use, benchmarks).

Each file is one entry, named by its file name. The directory is re-scanned every
``interval`` seconds; a file is re-read only when its (mtime, size) changed. Invariant: the
first scan completes (every file tried once) before ``on_loaded`` is called, so readiness
means "routing by everything that was in the directory at start".
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from .store import TableStore

log = logging.getLogger("tether.gateway.tables")


def scan_once(path: str, store: TableStore, seen: dict[str, tuple[int, int]]) -> bool | None:
    """Apply changed/removed files to ``store``; True if any route changed, None if unlistable."""
    changed = False
    try:
        names = sorted(n for n in os.listdir(path) if n.endswith(".json"))
    except OSError as exc:
        log.warning("cannot list table directory %s: %s", path, exc)
        return None
    for name in [n for n in seen if n not in names]:
        del seen[name]
        changed |= store.remove(name)
    for name in names:
        full = os.path.join(path, name)
        try:
            st = os.stat(full)
            stamp = (st.st_mtime_ns, st.st_size)
            if seen.get(name) == stamp:
                continue
            with open(full, "rb") as fh:
                text = fh.read()
        except OSError as exc:
            log.warning("cannot read table %s: %s", full, exc)
            continue
        seen[name] = stamp
        changed |= store.apply(name, text)
    return changed


async def watch_directory(
    path: str, store: TableStore, interval: float, on_loaded: Callable[[], None]
) -> None:
    """Poll ``path`` forever; publish after every change; call ``on_loaded`` after scan one."""
    seen: dict[str, tuple[int, int]] = {}
    while scan_once(path, store, seen) is None:  # not ready until the directory is readable
        await asyncio.sleep(interval)
    store.publish(force=True)
    on_loaded()
    while True:
        await asyncio.sleep(interval)
        if scan_once(path, store, seen):
            store.publish()
