"""A bounded set of concurrent API writes, each attributed to the key it reconciles.

``submit`` waits for a free slot (so planning never runs far ahead of the API server) and
starts the write; ``drain`` waits for all of them and returns the keys whose write failed.
A failed write never cancels the others: each key succeeds or is retried on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Hashable
from typing import Any

from tether.handlers import metrics
from tether.k8s import kopf_io

log = logging.getLogger(__name__)


class Pipeline:
    """At most ``limit`` writes in flight; failures collected by key."""

    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._tasks: list[asyncio.Task[None]] = []
        self.failed: set[Hashable] = set()

    async def submit(self, key: Hashable, write: Coroutine[Any, Any, None]) -> None:
        """Start ``write`` for ``key`` once a slot is free."""
        await self._slots.acquire()
        self._tasks.append(asyncio.get_running_loop().create_task(self._run(key, write)))

    async def _run(self, key: Hashable, write: Coroutine[Any, Any, None]) -> None:
        try:
            await write
        except kopf_io.Conflict:
            metrics.CONFLICTS.inc()  # the cluster changed since the cache saw it: re-decide
            self.failed.add(key)
        except kopf_io.NotFound:
            metrics.CONFLICTS.inc()  # deleted meanwhile (a replace): re-decide
            self.failed.add(key)
        except Exception:
            log.exception("write for %s failed; it will be retried", key)
            self.failed.add(key)
        finally:
            self._slots.release()

    async def drain(self) -> set[Hashable]:
        """Wait for every submitted write; the keys whose write failed."""
        await asyncio.gather(*self._tasks)
        self._tasks.clear()
        return self.failed
