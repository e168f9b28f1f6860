"""Kubernetes Events, posted by the operator as ``tether-operator``.

``EventPoster.post`` never blocks: it queues the Event and a background task posts it
(core/v1, as ``kubectl describe`` and ``kubectl get events`` show them, with
``reportingComponent``/``source.component`` ``tether-operator`` and ``reportingInstance`` the
replica's identity). Like client-go's event broadcaster, the queue holds at most ``limit``
Events and drops new ones when full (a burst such as a first sync of thousands of tables),
counting them in ``dropped``; a failed post is logged and dropped, never retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from tether.k8s import kopf_io

log = logging.getLogger(__name__)

COMPONENT = "tether-operator"
EVENTS = kopf_io.Resource("", "v1", "events", kind="Event", namespaced=True)
MAX_MESSAGE = 1024


class EventPoster:
    """A bounded queue of Events and the task that posts them."""

    def __init__(
        self, settings: kopf_io.Settings, instance: str, limit: int = 1000, workers: int = 2
    ) -> None:
        self.settings = settings
        self.instance = instance[:128]
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(limit)
        self.workers = workers
        self.dropped = 0
        self.posted = 0
        self._tasks: list[asyncio.Task[None]] = []

    def post(self, ref: dict[str, Any], type: str, reason: str, message: str) -> bool:
        """Queue one Event about object ``ref`` (apiVersion, kind, namespace, name, uid).

        Returns False when the queue was full and the Event was dropped.
        """
        now = datetime.now(UTC).isoformat()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"namespace": ref["namespace"], "generateName": f"{COMPONENT}-"},
            "type": type,
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "action": reason,
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance,
            "source": {"component": COMPONENT},
            "involvedObject": ref,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": now,
            "count": 1,
        }
        try:
            self.queue.put_nowait(body)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._run(), name=f"tether-events-{i}")
                for i in range(self.workers)
            ]
        return True

    async def _run(self) -> None:
        while True:
            body = await self.queue.get()
            path = kopf_io.url(EVENTS, namespace=body["metadata"]["namespace"])
            try:
                await kopf_io.request(self.settings, "post", path, body, backoffs=(1.0,))
                self.posted += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Events are auxiliary: never fail the operator for one
                log.warning("could not post Event %s: %r", body["reason"], exc)

    async def close(self) -> None:
        """Stop posting (operator shutdown); queued Events are dropped."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
