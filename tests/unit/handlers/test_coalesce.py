"""The coalescer turns a burst of events into one reconcile, and never loses a key."""

import asyncio

from tether.handlers.coalesce import Coalescer


def test_burst_is_one_flush_with_first_event_times():
    flushed = []

    async def flush(batch):
        flushed.append(dict(batch))

    async def main():
        c = Coalescer(flush, quiet=0.05, max_delay=1.0)
        for i in range(20):
            c.mark(("default", f"svc-{i % 3}"))
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.2)
        await c.close()

    asyncio.run(main())
    assert len(flushed) == 1
    assert set(flushed[0]) == {("default", "svc-0"), ("default", "svc-1"), ("default", "svc-2")}


def test_steady_stream_is_flushed_by_max_delay():
    flushed = []

    async def flush(batch):
        flushed.append(set(batch))

    async def main():
        c = Coalescer(flush, quiet=0.05, max_delay=0.15)
        for _ in range(40):  # an event every 10 ms never leaves 50 ms of quiet
            c.mark("k")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        await c.close()

    asyncio.run(main())
    assert len(flushed) >= 2


def test_failed_flush_is_retried_with_its_keys():
    calls = []

    async def flush(batch):
        calls.append(set(batch))
        if len(calls) == 1:
            raise RuntimeError("API down")

    async def main():
        c = Coalescer(flush, quiet=0.01, max_delay=0.05, retry=0.02)
        c.mark("a", "b")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(calls) >= 2:
                break
        await c.close()

    asyncio.run(main())
    assert calls[:2] == [{"a", "b"}, {"a", "b"}]
