"""Leadership follows the peering object and time; the gate opens only when this replica
leads and its caches are synced, resyncing on every opening and dropping work on closing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from tether.handlers.leader import Gate, Leadership


def _peering(**entries: tuple[int, float]) -> dict:
    now = datetime.now(UTC)
    return {"status": {
        name: {"priority": p, "lifetime": lifetime, "lastseen": now.isoformat()}
        for name, (p, lifetime) in entries.items()
    }}  # fmt: skip


def test_standby_takes_over_when_the_leaders_entry_expires():
    flips: list[bool] = []

    async def main():
        lead = Leadership("me", settle=0.05, margin=0.0, on_change=flips.append)
        lead._on_peering(None, None, _peering(me=(1, 30), boss=(2, 0.3)))
        assert not lead.active and "boss" in lead.reason
        await asyncio.sleep(0.6)  # boss never refreshes its keep-alive (SIGKILL)
        assert lead.active

    asyncio.run(main())
    assert flips == [True]


def test_a_higher_priority_newcomer_stops_the_writer_at_once():
    flips: list[bool] = []

    async def main():
        lead = Leadership("me", settle=0.0, margin=0.0, on_change=flips.append)
        lead._on_peering(None, None, _peering(me=(1, 30)))
        await asyncio.sleep(0.1)
        assert lead.active
        lead._on_peering(None, None, _peering(me=(1, 30), new=(5, 30)))
        assert not lead.active

    asyncio.run(main())
    assert flips == [True, False]


def test_gate_needs_leadership_and_synced_caches():
    opened, closed = [], []
    lead = Leadership.standalone("me")
    synced = [False]
    gate = Gate(lead, lambda: synced[0], lambda: opened.append(1), lambda: closed.append(1))
    gate.update()
    assert not gate() and opened == []
    synced[0] = True
    gate.update()
    gate.update()
    assert gate() and opened == [1]
    lead.active = False
    gate.update()
    assert not gate() and closed == [1]
