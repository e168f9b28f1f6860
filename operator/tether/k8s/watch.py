"""List, then watch, one kind of object in a background thread, stamping when each was seen.

Invariants:
- Every (re)list is delivered as one ``SYNC`` event carrying all items, so a consumer can
  replace what it holds; then ``ADDED``/``MODIFIED``/``DELETED`` events follow in order.
- A watch that ends resumes from the last resourceVersion seen (bookmarks included); ``410
  Gone`` relists. Other errors back off (0.5 s doubling to 10 s) and never end the thread.
- ``seen`` is this process's monotonic clock when the event was read: two watches on one
  apiserver see their events through the same path, so the difference of two ``seen`` times
  measures what happened between the two writes (plus watch-delivery jitter).
Objects are plain dicts exactly as the API serves them (no model classes).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger(__name__)

WATCH_SECONDS = 240


@dataclass(frozen=True)
class Event:
    """One thing a watch saw: ``SYNC`` (a full list in ``items``) or a change of ``obj``."""

    source: str
    type: str
    obj: dict[str, Any] | None
    items: tuple[dict[str, Any], ...]
    seen: float  # time.monotonic() when read
    at: datetime  # wall clock when read (UTC)


def list_items(list_fn: Callable, *args, **kwargs) -> tuple[list[dict], str]:
    """(items, resourceVersion) of one list call, as raw dicts."""
    resp = list_fn(*args, _preload_content=False, **kwargs)
    body = json.loads(resp.data)
    return body.get("items") or [], body["metadata"]["resourceVersion"]


class Watcher(threading.Thread):
    """Keeps ``sink`` informed of every change of the objects ``list_fn`` lists."""

    def __init__(
        self, source: str, sink: Callable[[Event], None], list_fn: Callable, *args, **kwargs
    ) -> None:
        super().__init__(name=f"watch-{source}", daemon=True)
        self.source, self.sink = source, sink
        self.list_fn, self.args, self.kwargs = list_fn, args, kwargs
        self.stopped = threading.Event()

    def _emit(self, type_: str, obj=None, items=()) -> None:
        now = time.monotonic()
        self.sink(Event(self.source, type_, obj, tuple(items), now, datetime.now(UTC)))

    def run(self) -> None:
        """List, then watch, until ``stop()`` (see module docstring)."""
        rv: str | None = None
        backoff = 0.5
        while not self.stopped.is_set():
            try:
                if rv is None:
                    items, rv = list_items(self.list_fn, *self.args, **self.kwargs)
                    self._emit("SYNC", items=items)
                rv = self._watch(rv)
                backoff = 0.5
            except ApiException as exc:
                if exc.status == 410:
                    rv = None
                    continue
                log.warning("%s watch: %s; retrying in %.1f s", self.source, exc.reason, backoff)
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception as exc:  # network trouble: retry, never die
                log.warning("%s watch: %s; retrying in %.1f s", self.source, exc, backoff)
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _watch(self, rv: str) -> str:
        resp = self.list_fn(
            *self.args,
            watch=True,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            **self.kwargs,
        )
        try:
            for line in iter_resp_lines(resp):
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    self._emit(event["type"], obj=obj)
                if self.stopped.is_set():
                    break
        finally:
            resp.release_conn()
        return rv

    def stop(self) -> None:
        """Ask the thread to end after its current read."""
        self.stopped.set()
