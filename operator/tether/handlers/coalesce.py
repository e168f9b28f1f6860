"""Coalescing of bursts of events into one reconcile per affected Service.

Two queues of dirty keys:

- **events** (``mark``), Istio-style debounce: a batch is flushed once no new key arrived
  for ``quiet`` seconds, or ``max_delay`` seconds after its first key, whichever comes first.
  Every key remembers the monotonic time of the first event that dirtied it, so
  event → publish latency can be measured.
- **resyncs** (``mark_bulk``: start-up, takeover, the periodic resync), flushed in chunks of
  ``chunk`` keys without waiting, and only while no event batch is due, so a full resync of
  thousands of Services never holds back the table of a Service that just changed.

Exactly one flush runs at a time; keys dirtied during a flush wait for the next one. Keys the
flush returns (write conflicts) come back as events after ``retry`` seconds; a flush that
raises retries its whole batch with back-off (doubling to 30 s). ``clear`` forgets everything
(a replica that stops leading).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable

from tether.handlers.metrics import RECONCILE_ERRORS

log = logging.getLogger(__name__)

FlushFn = Callable[[dict[Hashable, float | None]], Awaitable[set[Hashable] | None]]


class Coalescer:
    """Collects dirty keys and runs ``flush(keys → first event time or None)``."""

    def __init__(
        self,
        flush: FlushFn,
        quiet: float = 0.1,
        max_delay: float = 1.0,
        retry: float = 0.5,
        chunk: int = 200,
    ) -> None:
        self._flush = flush
        self.retry = retry
        self.quiet = quiet
        self.max_delay = max_delay
        self.chunk = chunk
        self._dirty: dict[Hashable, float] = {}
        self._bulk: dict[Hashable, None] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last = 0.0

    @property
    def pending(self) -> int:
        """Keys waiting (events and resyncs)."""
        return len(self._dirty) + len(self._bulk)

    def _kick(self) -> None:
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tether-flush")

    def mark(self, *keys: Hashable) -> None:
        """Mark keys dirty by an event; never blocks; starts the flusher task on first use."""
        if not keys:
            return
        now = time.monotonic()
        for key in keys:
            self._dirty.setdefault(key, now)
        self._last = now
        self._kick()

    def mark_bulk(self, keys: Iterable[Hashable]) -> None:
        """Queue keys for a resync (chunked, behind events)."""
        self._bulk.update(dict.fromkeys(keys))
        if self._bulk:
            self._kick()

    def clear(self) -> None:
        """Forget every pending key (this replica stops writing)."""
        self._dirty.clear()
        self._bulk.clear()

    def _due(self) -> float | None:
        if not self._dirty:
            return None
        first = min(self._dirty.values())
        return min(self._last + self.quiet, first + self.max_delay)

    def _take(self) -> dict[Hashable, float | None] | None:
        due = self._due()
        if due is not None and time.monotonic() >= due:
            batch: dict[Hashable, float | None] = dict(self._dirty)
            self._dirty = {}
            for key in batch:
                self._bulk.pop(key, None)
            return batch
        if self._bulk:
            keys = []
            for key in self._bulk:
                keys.append(key)
                if len(keys) >= self.chunk:
                    break
            for key in keys:
                del self._bulk[key]
            return dict.fromkeys(keys)
        return None

    async def _run(self) -> None:
        failures = 0
        while True:
            batch = self._take()
            if batch is None:
                due = self._due()
                self._wake.clear()
                timeout = None if due is None else max(due - time.monotonic(), 0.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            try:
                retry = await self._flush(batch) or set()
                failures = 0
            except Exception:  # a failed flush retries its keys; the loop never dies
                failures += 1
                RECONCILE_ERRORS.inc()
                delay = min(self.retry * 2 ** (failures - 1), 30.0)
                log.exception("reconcile failed; retrying %d keys in %.1fs", len(batch), delay)
                await asyncio.sleep(delay)
                now = time.monotonic()
                for key, t0 in batch.items():
                    self._dirty.setdefault(key, now if t0 is None else t0)
                continue
            if retry:
                asyncio.get_running_loop().call_later(self.retry, self.mark, *retry)
            await asyncio.sleep(0)

    async def close(self) -> None:
        """Cancel the flusher (operator shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
