"""Coalescing of bursts of events into one reconcile per affected service.

Istio-style debounce: a batch is flushed once no new key arrived for ``quiet`` seconds, or
``max_delay`` seconds after its first key, whichever comes first. Every key remembers the
monotonic time of the first event that dirtied it, so event→publish latency can be measured.
Exactly one flush runs at a time; keys dirtied during a flush wait for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

from tether.handlers.metrics import RECONCILE_ERRORS

log = logging.getLogger(__name__)

FlushFn = Callable[[dict[Hashable, float]], Awaitable[None]]


class Coalescer:
    """Collects dirty keys and runs ``flush(keys→first_event_time)`` after a quiet window."""

    def __init__(
        self, flush: FlushFn, quiet: float = 0.1, max_delay: float = 1.0, retry: float = 0.5
    ) -> None:
        self._flush = flush
        self.retry = retry  # first retry delay after a failed flush; doubles up to 30 s
        self.quiet = quiet
        self.max_delay = max_delay
        self._dirty: dict[Hashable, float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last = 0.0

    def mark(self, *keys: Hashable) -> None:
        """Mark keys dirty; never blocks; starts the flusher task on first use."""
        now = time.monotonic()
        for key in keys:
            self._dirty.setdefault(key, now)
        self._last = now
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tether-flush")

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._dirty:
                continue
            first = min(self._dirty.values())
            while True:
                now = time.monotonic()
                due = min(self._last + self.quiet, first + self.max_delay)
                if now >= due:
                    break
                await asyncio.sleep(due - now)
            batch, self._dirty = self._dirty, {}
            try:
                await self._flush(batch)
                failures = 0
            except Exception:  # a failed flush retries its keys; the loop never dies
                failures += 1
                RECONCILE_ERRORS.inc()
                delay = min(self.retry * 2 ** (failures - 1), 30.0)
                log.exception("reconcile failed; retrying %d keys in %.1fs", len(batch), delay)
                for key, t0 in batch.items():
                    self._dirty.setdefault(key, t0)
                await asyncio.sleep(delay)
                self._wake.set()

    async def close(self) -> None:
        """Cancel the flusher (operator shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
