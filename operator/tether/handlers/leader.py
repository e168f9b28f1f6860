"""Which replica writes: the peering verdict, kept current, and what changes with it.

``Leadership`` watches kopf's peering object (a one-object ``Informer``), runs
``tether.k8s.peering.judge`` on every change of it and again at the next instant the verdict
could change by itself (a peer's or its own entry expiring, the settle time ending), and calls
``on_change(active)`` on every transition. ``standalone()`` always leads (``--standalone``).

The operator writes only while ``Gate.open``: this replica leads *and* its caches have
completed their first list. On opening, the whole cluster is resynced against the live
ConfigMaps (a fresh start, or a takeover from a replica that died); on closing, every
pending key is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tether.handlers import metrics
from tether.k8s import kopf_io, peering
from tether.k8s.informer import Informer

log = logging.getLogger(__name__)


class Leadership:
    """This replica's current verdict, from kopf's ClusterKopfPeering object."""

    def __init__(
        self,
        identity: str,
        settle: float = 2.0,
        margin: float = 3.0,
        on_change: Callable[[bool], None] = lambda active: None,
    ) -> None:
        self.identity = identity
        self.settle, self.margin = settle, margin
        self.on_change = on_change
        self.active = False
        self.reason = "starting"
        self.peers: dict[str, peering.Peer] = {}
        self.visible_since: datetime | None = None
        self.informer: Informer[dict] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.fixed = False

    @classmethod
    def standalone(cls, identity: str) -> Leadership:
        """A replica without peering: it always writes."""
        lead = cls(identity)
        lead.active, lead.reason, lead.fixed = True, "standalone", True
        return lead

    def watch(self, settings: kopf_io.Settings, name: str) -> Informer[dict]:
        """The informer of the peering object ``name`` (start its ``run`` as a task)."""
        self.informer = Informer(
            "peering", settings, kopf_io.PEERINGS, lambda obj: dict(obj),
            fields=f"metadata.name={name}", on_change=self._on_peering,
        )  # fmt: skip
        return self.informer

    def _on_peering(self, key: Any, old: Any, new: dict | None) -> None:
        self.peers = peering.parse_peers(new or {})
        if self.identity in self.peers and self.visible_since is None:
            self.visible_since = datetime.now(UTC)
        elif self.identity not in self.peers:
            self.visible_since = None
        self.evaluate()

    def evaluate(self) -> None:
        """Re-judge now; call ``on_change`` if the verdict flipped; re-arm the timer."""
        if self.fixed:
            return
        now = datetime.now(UTC)
        verdict = peering.judge(
            self.peers, self.identity, now, visible_since=self.visible_since,
            settle=self.settle, margin=self.margin,
        )  # fmt: skip
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if verdict.recheck is not None:
            delay = max((verdict.recheck - now).total_seconds(), 0.0) + 0.05
            self._timer = asyncio.get_running_loop().call_later(delay, self.evaluate)
        changed = verdict.active != self.active
        self.active, self.reason = verdict.active, verdict.reason
        if changed:
            log.info("%s: %s (%s)", self.identity, "acting" if self.active else "standing by",
                     self.reason)  # fmt: skip
            self.on_change(self.active)


class Gate:
    """Open while this replica leads and its caches are synced; resyncs on every opening."""

    def __init__(
        self,
        leadership: Leadership,
        synced: Callable[[], bool],
        on_open: Callable[[], None],
        on_close: Callable[[], None],
    ) -> None:
        self.leadership = leadership
        self.synced = synced
        self.on_open, self.on_close = on_open, on_close
        self.open = False
        self.openings = 0

    def __call__(self) -> bool:
        """True while this replica may write."""
        return self.open

    def update(self, *_: Any) -> None:
        """Re-check after a leadership change or the caches' first sync."""
        now_open = self.leadership.active and self.synced()
        if now_open == self.open:
            return
        self.open = now_open
        metrics.LEADER.set(1 if now_open else 0)
        if now_open:
            self.openings += 1
            self.on_open()
        else:
            self.on_close()
