"""Table changes applied beside the event loop: costly work in one worker thread, the swap on
the loop in short slices.

Invariants:
- One worker thread runs the jobs in the order they were submitted, so the outcomes of one
  entry reach the store in arrival order: a later document never loses to an earlier one.
- The loop only commits outcomes (O(1) each) and publishes the changed keys, at most
  ``SLICE_COMMITS`` outcomes or ``SLICE_SECONDS`` per callback, then yields to I/O before the
  next slice. Every version of an entry is published before the entry's next one is
  committed, so no document is skipped over.
- ``settled()`` returns once every job submitted before the call has run and its outcomes are
  committed and published (readiness waits on it).
- Until the first load is complete (``first_load_done``), a slice that committed routes also
  moves every object alive into the cyclic collector's permanent generation (``gc.freeze``):
  the gateway serves nothing yet, and it freezes what is alive at the end of that load anyway
  (``Gateway.tables_loaded``). Without it the collector walks the growing set of tables again
  and again: half the CPU of loading 10,000 tables. Later slices freeze nothing, because live
  client connections are reference cycles (protocol ↔ parser ↔ transport) that would leak.
- While the worker has work, the interpreter's thread switch interval is lowered to
  ``SWITCH_SECONDS`` so the loop thread gets the GIL back within about that long; every GIL-holding
  C call on the worker's path is kept short (``gateway.lookup``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable
from time import perf_counter

from .store import UNCHANGED, Outcome, TableStore

log = logging.getLogger("tether.gateway.tables")

SLICE_COMMITS = 64
SLICE_SECONDS = 0.001
SWITCH_SECONDS = 0.0005

Emit = Callable[[str, Outcome], None]
Job = Callable[[Emit], None]

_SWITCH = sys.getswitchinterval()  # the interpreter's own, restored when no worker is busy
_busy_lock = threading.Lock()
_busy = 0  # jobs queued or running, over every worker of the process


def _busy_add(delta: int) -> None:
    global _busy
    with _busy_lock:
        _busy += delta
        sys.setswitchinterval(min(_SWITCH, SWITCH_SECONDS) if _busy else _SWITCH)


class TableWorker:
    """Runs ``store.prepare`` jobs in a thread and commits their outcomes on ``loop``."""

    def __init__(self, store: TableStore, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.loop = loop
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._out: deque = deque()  # (name, outcome), or the int number of a finished job
        self._lock = threading.Lock()
        self._queued = False  # a drain callback is scheduled on the loop
        self._submitted = 0
        self._settled = 0  # every job up to this number is committed and published
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._thread: threading.Thread | None = None
        self._loading = True

    # -- loop side: submitting ------------------------------------------------------------

    def submit(self, job: Job) -> int:
        """Queue ``job(emit)`` for the worker; returns its number (see ``settled``)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tether-tables", daemon=True)
            self._thread.start()
        self._submitted += 1
        _busy_add(1)
        self._jobs.put((self._submitted, job))
        return self._submitted

    def apply(self, name: str, text: str | bytes | None) -> int:
        """Queue entry ``name``'s new document."""
        return self.submit(lambda emit: emit(name, self.store.prepare(name, text)))

    def remove(self, name: str) -> int:
        """Queue the removal of entry ``name``."""
        return self.submit(lambda emit: emit(name, self.store.forget(name)))

    def retain(self, names: set[str]) -> int:
        """Queue the removal of every entry not in ``names`` (the end of a relist)."""

        def job(emit: Emit) -> None:
            for name in self.store.known():
                if name not in names:
                    emit(name, self.store.forget(name))

        return self.submit(job)

    async def settled(self, upto: int | None = None) -> None:
        """Wait until job ``upto`` (default: the last one submitted) is applied and published."""
        upto = self._submitted if upto is None else upto
        if self._settled >= upto:
            return
        fut = self.loop.create_future()
        self._waiters.append((upto, fut))
        await fut

    def first_load_done(self) -> None:
        """The first complete load is published: stop freezing tables (see module docstring)."""
        self._loading = False

    def close(self) -> None:
        """Stop the worker thread once the jobs already queued have run."""
        if self._thread is not None:
            self._jobs.put((0, None))
            self._thread = None

    # -- worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            number, job = self._jobs.get()
            if job is None:
                return
            try:
                job(self._emit)
            except Exception:
                log.exception("table job failed; the tables it carried keep their last version")
            _busy_add(-1)
            self._post(number)

    def _emit(self, name: str, outcome: Outcome) -> None:
        if outcome is not UNCHANGED:
            self._post((name, outcome))

    def _post(self, item) -> None:
        self._out.append(item)
        with self._lock:
            if self._queued:
                return
            self._queued = True
        with contextlib.suppress(RuntimeError):  # a closed loop: the gateway is gone
            self.loop.call_soon_threadsafe(self._drain)

    # -- loop side: committing ------------------------------------------------------------

    def _drain(self) -> None:
        with self._lock:
            self._queued = False
        store, out = self.store, self._out
        deadline = perf_counter() + SLICE_SECONDS
        names: set[str] = set()
        count = 0
        while out and count < SLICE_COMMITS and perf_counter() < deadline:
            item = out.popleft()
            if isinstance(item, int):
                store.publish()
                names.clear()
                self._settle(item)
                continue
            name, outcome = item
            if name in names:  # publish this entry's previous version before the next one
                store.publish()
                names.clear()
            names.add(name)
            store.commit(name, outcome)
            count += 1
        store.publish()
        if count and self._loading:
            gc.freeze()
        if out:
            with self._lock:
                self._queued = True
            self.loop.call_soon(self._drain)

    def _settle(self, number: int) -> None:
        self._settled = number
        if not self._waiters:
            return
        keep = []
        for upto, fut in self._waiters:
            if upto > number:
                keep.append((upto, fut))
            elif not fut.done():
                fut.set_result(None)
        self._waiters = keep
