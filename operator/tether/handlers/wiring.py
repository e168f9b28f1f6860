"""kopf wiring: start-up, clean-up and probes, nothing else.

kopf runs the operator's lifecycle, its liveness endpoint and the peering keep-alives that
elect one acting replica. tether does not use kopf's resource watchers or ``@kopf.index``:
its own caches (``handlers.cluster``) watch DestinationRules, Services, EndpointSlices, Pods
and the table ConfigMaps, also while the replica stands by, and ``handlers.leader`` reads
the same peering object kopf writes to decide who writes. Level-triggered and hands-off:
tether never writes annotations or finalizers on the objects it watches.

Run with ``tether operator`` (see ``tether.cli.operator``), which passes ``runtime.Options``
as kopf's ``memo.options``.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from tether.handlers import metrics
from tether.handlers.runtime import Runtime
from tether.k8s.events import COMPONENT

log = logging.getLogger(__name__)

PEERING_LIFETIME = 15  # seconds: a replica killed without clean-up blocks its successor ≤ this


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    """Tune kopf, start the metrics endpoint and the operator's runtime."""
    settings.posting.level = logging.INFO
    settings.posting.reporting_component = COMPONENT
    settings.posting.reporting_instance = memo.options.identity[:128]
    settings.peering.lifetime = PEERING_LIFETIME
    settings.watching.server_timeout = 300
    settings.watching.connect_timeout = 10
    metrics.serve(memo.metrics_port, memo.bind_address)
    memo.runtime = Runtime(settings, memo.options)
    memo.runtime.start()


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    """Stop writing and watching before kopf closes its API session."""
    await memo.runtime.close()


@kopf.on.probe(id="tables")
def probe_tables(memo: Any, **_: Any) -> int:
    """Liveness detail: how many table ConfigMaps this replica sees."""
    return len(memo.runtime.view.tables.store)


@kopf.on.probe(id="acting")
def probe_acting(memo: Any, **_: Any) -> bool:
    """Liveness detail: whether this replica is the one that writes."""
    return bool(memo.runtime.gate.open)
