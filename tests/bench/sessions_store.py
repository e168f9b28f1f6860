"""The recent-sessions table's store, alone: what instruction counts do not show (cache misses).

``tests.bench.gateway_icount`` counts instructions over 1,000 sessions, whose entries stay in
the CPU caches. With more distinct sessions than the caches hold (wrk's 100,000 cookies), each
store also waits for memory: the set's hashes, its last-seen seconds and its pods are three
cache lines. This times one million ``store`` calls over 1,000 and over 100,000 distinct
sessions, against the same calls on a table that is off (``capacity 0``: the call returns at
once) over the same sequence, in the same run. Best of ``--repeat`` runs.

Usage: python -m tests.bench.sessions_store [--capacity 65536] [--calls 1000000]
"""

from __future__ import annotations

import argparse
import os
import random
import time

from tether.gateway.seen_table import BYTES_PER_ENTRY, PySessionTable
from tether.gateway.wire import _wire


def per_call(table, seq: list[int], repeat: int) -> float:
    """Best nanoseconds per ``store`` over ``seq`` (route 1, pod 2, one second)."""
    store, best = table.store, float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for h in seq:
            store(1, h, 2, 1.0)
        best = min(best, time.perf_counter() - t0)
    return best / len(seq) * 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capacity", type=int, default=65536)
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    make = _wire.SessionTable if _wire is not None else PySessionTable
    print(
        f"{make.__module__}.{make.__name__}({args.capacity}): "
        f"{args.capacity * BYTES_PER_ENTRY:,} bytes; load average {os.getloadavg()[0]:.2f}"
    )
    rnd = random.Random(1)
    for sessions in (1_000, 100_000):
        hashes = [rnd.getrandbits(64) for _ in range(sessions)]
        seq = [hashes[rnd.randrange(sessions)] for _ in range(args.calls)]
        on = per_call(make(args.capacity, 0.0), seq, args.repeat)
        off = per_call(make(0, 0.0), seq, args.repeat)
        print(
            f"{sessions:7,d} sessions: store {on:5.0f} ns, off {off:5.0f} ns per call "
            f"-> the table's own cost {on - off:+5.0f} ns per request"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
