"""Processes of the gateway table benchmark (``test_gateway_tables_bench``), each on its own.

``python -m tests.bench.gateway_tables_probe gateway DIR STATS [--anchor]``
    ``tether gateway --tables-dir DIR`` (same ``serve`` path) plus a ticker task on its event
    loop that records how late every 1 ms sleep wakes up. Prints {"port", "admin"} once
    listening; on SIGTERM writes {"ticks": [[monotonic, lag, run-queue wait], …]} to STATS.
    ``--anchor`` swaps in the table code of ANCHOR_COMMIT (full rebuild on the loop).
``python -m tests.bench.gateway_tables_probe backends``
    An HTTP/1.1 backend on every endpoint address of versions 1 and 2 (port ``PORT``), each
    answering every request with its own address.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from array import array
from dataclasses import replace


def _ticker(ticks: array) -> asyncio.Task:
    """Every 1 ms: (time, lag, run-queue wait of the loop thread during the tick).

    The run-queue wait (``/proc/thread-self/schedstat``) is time the kernel kept the loop's
    thread off a busy CPU: machine noise, not the gateway's doing, reported apart.
    """
    fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)

    def queued() -> float:
        return int(os.pread(fd, 128, 0).split()[1]) / 1e9

    async def tick() -> None:
        while True:
            start, wait = time.monotonic(), queued()
            await asyncio.sleep(0.001)
            now = time.monotonic()
            ticks.extend((now, now - start - 0.001, queued() - wait))

    return asyncio.get_running_loop().create_task(tick())


def _install_anchor(gw) -> None:
    from tether.gateway.server import Gateway
    from tether.gateway.tables import directory

    from .gateway_tables import anchor_modules, anchor_swap

    _, _, old_store, old_directory = anchor_modules()
    Gateway.swap = anchor_swap
    cfg = gw.config
    gw.store = old_store.TableStore(
        gw.swap, gw._table_error, cluster_domain=cfg.cluster_domain,
        home_namespace=cfg.home_namespace, default_service=cfg.default_service,
    )  # fmt: skip
    directory.watch_directory = old_directory.watch_directory


async def run_gateway(tables: str, stats: str, anchor: bool) -> None:
    """The gateway with a ticker until SIGTERM, then the stats file."""
    from tether.gateway.config import GatewayConfig
    from tether.gateway.server import Gateway

    cfg = GatewayConfig(listen_host="127.0.0.1", listen_port=0, admin_host="127.0.0.1",
                        admin_port=0, tables_dir=tables, poll_interval=0.2, access_log="off",
                        log_level="warning")  # fmt: skip
    gw = Gateway(replace(cfg, home_namespace="bench"))
    if anchor:
        _install_anchor(gw)
    ticks = array("d")
    await gw.start()
    _ticker(ticks)
    print(json.dumps({"port": gw.port, "admin": gw.admin_port}), flush=True)
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()
    with open(stats, "w") as fh:
        json.dump({"ticks": list(zip(ticks[0::3], ticks[1::3], ticks[2::3], strict=True))}, fh)


class _Backend(asyncio.Protocol):
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.buf = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        n = self.buf.count(b"\r\n\r\n")  # GETs only: one head, no body
        if n:
            self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4 :]
            self.transport.write(self.answer * n)


async def run_backends() -> None:
    """Backends on every endpoint address of versions 1 and 2, until SIGTERM."""
    from .gateway_tables import PORT, endpoint_ips

    loop = asyncio.get_running_loop()
    for version in (1, 2):
        for ip in endpoint_ips(version):
            body = ip.encode()
            answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            await loop.create_server(lambda a=answer: _Backend(a), ip, PORT, reuse_address=True)
    print("{}", flush=True)
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()


def main(argv: list[str]) -> None:
    """Entry point (see module docstring)."""
    import uvloop

    if argv[0] == "gateway":
        uvloop.run(run_gateway(argv[1], argv[2], "--anchor" in argv))
    else:
        uvloop.run(run_backends())


if __name__ == "__main__":
    main(sys.argv[1:])
