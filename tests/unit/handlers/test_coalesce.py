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


def test_resync_runs_in_chunks_and_an_event_overtakes_it():
    flushed = []

    async def flush(batch):
        flushed.append(dict(batch))
        await asyncio.sleep(0.005)  # a chunk takes time, as planning and writing do

    async def main():
        c = Coalescer(flush, quiet=0.01, max_delay=0.1, chunk=100)
        c.mark_bulk(range(1000))
        await asyncio.sleep(0.02)
        c.mark("hot")
        while c.pending:
            await asyncio.sleep(0.01)
        await c.close()

    asyncio.run(main())
    sizes = [len(b) for b in flushed]
    hot = next(i for i, b in enumerate(flushed) if "hot" in b)
    assert flushed[hot] == {"hot": flushed[hot]["hot"]} and flushed[hot]["hot"] is not None
    assert hot < len(flushed) - 1  # flushed before the resync finished
    assert all(s <= 100 for s in sizes) and sum(sizes) == 1001
    assert all(v is None for b in flushed if "hot" not in b for v in b.values())


def test_keys_returned_by_a_flush_come_back_after_the_retry_delay():
    calls = []

    async def flush(batch):
        calls.append(set(batch))
        return {"conflicted"} if len(calls) == 1 else set()

    async def main():
        c = Coalescer(flush, quiet=0.01, max_delay=0.05, retry=0.02)
        c.mark("conflicted", "fine")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(calls) >= 2:
                break
        await c.close()

    asyncio.run(main())
    assert calls[:2] == [{"conflicted", "fine"}, {"conflicted"}]


def test_clear_forgets_every_pending_key():
    flushed = []

    async def flush(batch):
        flushed.append(batch)

    async def main():
        c = Coalescer(flush, quiet=0.05, max_delay=1.0)
        c.mark("a")
        c.mark_bulk(["b", "c"])
        c.clear()
        await asyncio.sleep(0.1)
        await c.close()

    asyncio.run(main())
    assert flushed == []
