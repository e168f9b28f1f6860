"""WebSocket relay benchmark pieces for ``make bench-gateway``: echo backends and a bounded
load client, both on the ``websockets`` library with uvloop (the same for every proxy).

``--serve PORT[,PORT...]``: one process serving a WebSocket echo on each port of 127.0.0.1.
``--load URI``: ``--connections`` clients, each with its own ``sid`` cookie, send a
``--size``-byte message and wait for its echo, again and again, for ``--duration`` seconds (at
most 10) or ``--max-messages`` in all, whichever comes first; prints one JSON line: messages,
seconds, messages/s, p50/p99 round trip in ms, errors.

Usage: python -m tests.bench.gateway_ws --serve 9011,9012,9013
       python -m tests.bench.gateway_ws --load ws://ws.bench/ --connect 127.0.0.1:8083
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import uvloop
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

MAX_SECONDS = 10.0


async def _echo(ws) -> None:
    async for message in ws:
        await ws.send(message)


async def serve_forever(ports: list[int]) -> None:
    """Echo servers on 127.0.0.1:<port> until killed."""
    servers = [
        await serve(_echo, "127.0.0.1", p, compression=None, ping_interval=None) for p in ports
    ]
    await asyncio.gather(*(s.serve_forever() for s in servers))


async def _client(uri, host, port, size, until, budget, rtts, errors) -> None:
    message = "m" * size
    headers = {"Cookie": f"sid={random.randint(1, 100000)}"}
    try:
        async with connect(uri, host=host, port=port, additional_headers=headers,
                           compression=None, ping_interval=None) as ws:  # fmt: skip
            clock = time.perf_counter
            while budget[0] > 0 and clock() < until:
                budget[0] -= 1
                t0 = clock()
                await ws.send(message)
                if await ws.recv() != message:
                    errors.append("echo differs")
                    return
                rtts.append(clock() - t0)
    except Exception as exc:  # a failed connection is a counted error, not a crash
        errors.append(repr(exc))


async def load(uri, connect_to, connections, duration, size, max_messages) -> dict:
    """Run the clients (module docstring); returns the figures."""
    host, _, port = connect_to.rpartition(":")
    rtts: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    until = start + min(duration, MAX_SECONDS)
    budget = [max_messages]
    await asyncio.gather(*(
        _client(uri, host, int(port), size, until, budget, rtts, errors)
        for _ in range(connections)
    ))  # fmt: skip
    seconds = time.perf_counter() - start
    rtts.sort()

    def pct(q: float) -> float:
        return rtts[min(len(rtts) - 1, int(q * len(rtts)))] * 1000 if rtts else 0.0

    return {"messages": len(rtts), "seconds": seconds, "rate": len(rtts) / seconds,
            "p50": pct(0.50), "p99": pct(0.99), "errors": len(errors),
            "first_error": errors[0] if errors else ""}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serve", help="comma-separated ports to serve an echo on")
    ap.add_argument("--load", help="ws:// URI (its host is the Host header)")
    ap.add_argument("--connect", default="127.0.0.1:8083", help="host:port to connect to")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--max-messages", type=int, default=2_000_000)
    args = ap.parse_args(argv)
    if args.serve:
        uvloop.run(serve_forever([int(p) for p in args.serve.split(",")]))
        return 0
    figures = uvloop.run(load(args.load, args.connect, args.connections, args.duration,
                              args.size, args.max_messages))  # fmt: skip
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
