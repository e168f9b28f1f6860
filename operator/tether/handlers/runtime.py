"""The running operator: caches, leadership, coalescer and controller, wired together.

Built by the kopf startup handler (``wiring``), which hands it kopf's settings (the API
client's credentials live in kopf's context). Flow of one change:

    watch event → ClusterView (cache + which Services) → mark → Coalescer → Controller.sync
                                                                 ↑ only while Gate is open

The gate opens when this replica leads and its caches are synced; every opening queues a full
resync and a check of the session-key Secret (``handlers.keys``), and so does every
``resync_seconds`` (the safety net for drift that no event reports). While the gate is closed
nothing is marked and nothing is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from tether.handlers import metrics
from tether.handlers.cluster import ClusterView
from tether.handlers.coalesce import Coalescer
from tether.handlers.controller import Config, Controller
from tether.handlers.keys import KeyManager
from tether.handlers.leader import Gate, Leadership
from tether.k8s import kopf_io
from tether.k8s.events import EventPoster
from tether.k8s.tables import RuleStatus, StatusPatch, TableWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """What `tether operator` was asked for (flags), kopf's settings aside."""

    config: Config
    identity: str
    peering: str | None = None  # None: standalone, always writes
    namespaces: tuple[str, ...] = ()
    quiet: float = 0.1
    max_delay: float = 1.0
    resync_seconds: float = 300.0
    settle_seconds: float = 2.0


class Runtime:
    """One operator replica's moving parts; ``start`` runs them, ``close`` stops them."""

    def __init__(self, settings: kopf_io.Settings, options: Options) -> None:
        cfg = options.config
        self.options = options
        self.coalescer = Coalescer(self._flush, options.quiet, options.max_delay)
        self.view = ClusterView(
            settings, tables_namespace=cfg.tables_namespace, domain=cfg.domain,
            dr_version=cfg.dr_version, namespaces=options.namespaces, mark=self._mark,
        )  # fmt: skip
        if options.peering:
            self.leadership = Leadership(options.identity, settle=options.settle_seconds)
        else:
            self.leadership = Leadership.standalone(options.identity)
        self.keys = KeyManager(settings, cfg.tables_namespace, may_write=lambda: self.gate.open)
        self.gate = Gate(self.leadership, self._synced, self._take_over, self._stand_by)
        self.leadership.on_change = self.gate.update
        self.events = EventPoster(settings, options.identity)
        self.controller = Controller(
            cfg, self.view, TableWriter(settings, cfg.tables_namespace),
            RuleStatus(settings, cfg.dr_version), self.events, may_write=self.gate,
            policy_status=StatusPatch(settings, kopf_io.BACKENDLBPOLICIES),
        )  # fmt: skip
        self._settings = settings
        self._tasks: list[asyncio.Task[None]] = []
        metrics.PENDING.set_function(lambda: self.coalescer.pending)
        for informer in self.view.informers:
            metrics.CACHED.labels(informer.name).set_function(lambda i=informer: len(i.store))

    def _synced(self) -> bool:
        return self.view.synced and self.keys.informer.synced.is_set()

    def _take_over(self) -> None:
        self.resync()
        self.keys.kick()

    def _mark(self, *keys: Hashable) -> None:
        if self.gate.open:
            self.coalescer.mark(*keys)

    async def _flush(self, batch: Mapping[Hashable, float | None]) -> set[Hashable]:
        return await self.controller.sync(batch)

    def resync(self) -> None:
        """Queue every Service, table owner and rule for a full resync against the cluster."""
        metrics.RESYNCS.inc()
        keys = self.view.all_keys()
        log.info("resync of %d keys queued", len(keys))
        self.coalescer.mark_bulk(keys)

    def _stand_by(self) -> None:
        log.info("standing by: pending reconciles dropped")
        self.coalescer.clear()
        self.keys.stop()

    def start(self) -> None:
        """Start the caches, the peering watch and the supervisor (returns at once)."""
        loop = asyncio.get_running_loop()
        self.view.start()
        self._tasks.append(loop.create_task(self.keys.informer.run(), name="tether-session-keys"))
        if self.options.peering:
            peering = self.leadership.watch(self._settings, self.options.peering)
            self._tasks.append(loop.create_task(peering.run(), name="tether-peering"))
        self._tasks.append(loop.create_task(self._supervise(), name="tether-supervisor"))

    async def _supervise(self) -> None:
        await self.view.wait_synced()
        await self.keys.informer.synced.wait()
        log.info("caches synced: %s", self.view.sizes())
        self.gate.update()
        while True:
            await asyncio.sleep(self.options.resync_seconds)
            if self.gate.open:
                self.resync()

    async def close(self) -> None:
        """Stop everything this replica runs (operator shutdown)."""
        self.gate.open = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.coalescer.close()
        await self.keys.close()
        await self.view.close()
        await self.events.close()
