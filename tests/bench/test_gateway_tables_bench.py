"""`make bench`: how the gateway applies table changes (issue 13, item 3), next to the anchor.

The anchor is the gateway's table code just before incremental application
(``gateway_tables.ANCHOR_COMMIT``, loaded from git into the same run): every change rebuilt the
whole Router on the event loop. Documents come from tether's own planner (10 endpoints each;
``rr`` = a Service without a rule, ``maglev`` = a sticky rule with a 65,537-slot table).

1. Per-update cost at N tables, in this process: the worker part (parse, verify, build the
   route) and the loop part (commit, publish, swap), against the anchor's whole update (apply,
   full rebuild, swap), all on one entry's new version. CPU-bound; median of several updates.
2. A burst of 2,000 updates (all 2,000 maglev tables change at once) while 4 clients keep
   requesting: the longest stall of the gateway's event loop (a 1 ms ticker inside it) and the
   slowest answer, next to the same figures in a quiet window before the burst, and the time
   until the last table is live. Gateway, backends and clients run as separate processes.
3. A gateway started beside N tables: time until /readyz answers 200, the CPU it used until
   then, and its RSS then.

Every figure is printed with the load average (2 shared cores: use the ratios). Set
``TETHER_BENCH_TABLES=10000`` to add the 10,000-table maglev start-up (≈ 2 GB of tables).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.bench.gateway_tables import (
    NAMESPACE,
    ROOT,
    anchor_modules,
    anchor_swap,
    documents,
    write_tables,
)
from tests.bench.results import percentile, record
from tether.gateway.config import GatewayConfig
from tether.gateway.server import Gateway
from tether.models.table import loads

pytestmark = pytest.mark.bench

SIZES = {"rr": (100, 1000, 10000), "maglev": (100, 1000)}
UPDATES = 40  # updates measured per size
ANCHOR_UPDATES = 5
BURST = 2000
QUIET_SECONDS = 2.0
READY_SIZES = [("rr", 1000), ("rr", 10000), ("maglev", 1000)]
if int(os.environ.get("TETHER_BENCH_TABLES", "0")) >= 10000:
    READY_SIZES.append(("maglev", 10000))


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _ms(values: list[float]) -> dict:
    return {"p50": round(statistics.median(values) * 1e3, 3), "max": round(max(values) * 1e3, 3)}


# -- 1. per-update cost -------------------------------------------------------------------------


def _gateway() -> Gateway:
    import uvloop

    cfg = GatewayConfig(access_log="off", home_namespace=NAMESPACE)
    return Gateway(cfg, uvloop.new_event_loop())


def _update_costs(v1: dict[str, str], v2: dict[str, str], n: int, old_routes) -> dict:
    gw = _gateway()
    store = gw.store
    names = list(v1)[:n]
    for name in names:
        store.apply(name, v1[name])
    store.publish()
    assert len(gw.router) == n
    worker, loop = [], []
    for name in random.Random(n).sample(names, UPDATES):
        t0 = time.perf_counter()
        outcome = store.prepare(name, v2[name])
        t1 = time.perf_counter()
        store.commit(name, outcome)
        store.publish()
        loop.append(time.perf_counter() - t1)
        worker.append(t1 - t0)
        assert outcome.route is not None and gw.router.by_key[outcome.route.key] is outcome.route
    # The anchor: one entry's new version applied on the loop (loads + the old build_route),
    # then the old publish (every route, sorted, into a new Router) and the old swap.
    old_gw = _gateway()
    routes = dict(store.routes)
    anchor = []
    for name in random.Random(-n).sample(names, ANCHOR_UPDATES):
        t0 = time.perf_counter()
        routes[name] = old_routes.build_route(loads(v1[name]))
        chosen = {}
        for entry in sorted(routes):
            chosen.setdefault(routes[entry].key, routes[entry])
        anchor_swap(old_gw, old_routes.Router(chosen.values(), home_namespace=NAMESPACE))
        anchor.append(time.perf_counter() - t0)
    return {"worker_ms": _ms(worker), "loop_ms": _ms(loop), "anchor_ms": _ms(anchor)}


def test_per_update_cost_is_independent_of_the_number_of_tables():
    _, old_routes, _, _ = anchor_modules()
    results = {}
    for kind, sizes in SIZES.items():
        v1 = documents(max(sizes), kind, 1)
        v2 = documents(max(sizes), kind, 2)
        for n in sizes:
            figures = _update_costs(v1, v2, n, old_routes)
            figures["load"] = _load()
            total = figures["worker_ms"]["p50"] + figures["loop_ms"]["p50"]
            figures["anchor_over_total"] = round(figures["anchor_ms"]["p50"] / total, 1)
            results[f"{kind}-{n}"] = figures
            record("gateway-tables", f"update-{kind}-{n}", figures)
    for kind, sizes in SIZES.items():
        small, big = results[f"{kind}-{sizes[0]}"], results[f"{kind}-{sizes[-1]}"]
        # the loop's share must not grow with N (the anchor's grows ~linearly)
        assert big["loop_ms"]["p50"] < max(1.0, 3 * small["loop_ms"]["p50"]), results


# -- processes ----------------------------------------------------------------------------------


def _spawn(*args: str, native: bool = True) -> tuple[subprocess.Popen, dict]:
    env = {**os.environ, "TETHER_GATEWAY_NATIVE": "1" if native else "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.gateway_tables_probe", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"probe {args[0]} exited with {proc.wait()}")
    return proc, json.loads(line)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(60)


def _wait_ready(admin: int, deadline: float) -> float:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=2) as r:
                if r.status == 200:
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError("the gateway never got ready")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (less sensitive to load than wall time)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def _rss_mib(pid: int) -> dict:
    fields = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = round(int(value.split()[0]) / 1024)
    return fields


# -- 2. a burst of updates while traffic flows ----------------------------------------------------


async def _client(port: int, hosts: list[str], log: list, stop: asyncio.Event, seed: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rnd = random.Random(seed)
    while not stop.is_set():
        host = hosts[rnd.randrange(len(hosts))] if seed else hosts[-1]
        cookie = f"session=c{rnd.randrange(1 << 30)}"
        start = time.monotonic()
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
        body = await reader.readexactly(length)
        end = time.monotonic()
        log.append((end, end - start, host, body))
    writer.close()


async def _traffic(port: int, hosts: list[str], switch) -> dict:
    log: list = []
    stop = asyncio.Event()
    clients = [asyncio.create_task(_client(port, hosts, log, stop, s)) for s in range(5)]
    await asyncio.sleep(0.5)
    quiet = (time.monotonic(), time.monotonic() + QUIET_SECONDS)
    await asyncio.sleep(QUIET_SECONDS)
    t_switch = time.monotonic()
    switch()
    caught = None
    while caught is None and time.monotonic() < t_switch + 300:
        await asyncio.sleep(0.01)
        caught = next((end for end, _, h, body in log[-50:] if h == hosts[-1]
                       and end > t_switch and body.startswith(b"127.0.2.")), None)  # fmt: skip
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*clients)
    return {"log": log, "quiet": quiet, "burst": (t_switch, caught or time.monotonic()),
            "caught": caught}  # fmt: skip


def _window(ticks, log, window) -> dict:
    """Loop and client figures inside ``window``. ``own`` stalls leave out the time the kernel
    kept the loop's thread waiting for a CPU (the machine's other load), so they show what the
    gateway itself did: its own callbacks and waits for the GIL."""
    lo, hi = window
    lags = [lag for t, lag, _ in ticks if lo <= t <= hi] or [0.0]
    own = [lag - queued for t, lag, queued in ticks if lo <= t <= hi] or [0.0]
    lat = [d for end, d, _, _ in log if lo <= end <= hi] or [0.0]
    return {
        "loop_stall_max_ms": round(max(lags) * 1e3, 1),
        "loop_stall_p99_ms": round(percentile(lags, 99) * 1e3, 2) if len(lags) > 1 else 0,
        "own_stall_max_ms": round(max(own) * 1e3, 1),
        "own_stalls_over_2ms": sum(x > 0.002 for x in own),
        "ticks": len(own),
        "answer_max_ms": round(max(lat) * 1e3, 1),
        "answer_p99_ms": round(percentile(lat, 99) * 1e3, 2) if len(lat) > 1 else 0,
        "answers_per_s": round(len(lat) / max(hi - lo, 1e-3)),
    }


def test_burst_of_updates_while_traffic_flows(tmp_path):
    v1, v2 = documents(BURST, "maglev", 1), documents(BURST, "maglev", 2)
    first, second = tmp_path / "v1", tmp_path / "v2"
    write_tables(first, v1)
    write_tables(second, v2)
    hosts = [f"svc{i:05d}" for i in range(BURST)]
    backends, _ = _spawn("backends")
    try:
        for label, anchor, native in (("tether", False, True), ("tether-python", False, False),
                                      ("anchor-python", True, False)):  # fmt: skip
            link = tmp_path / f"tables-{label}"
            link.symlink_to(first)

            def switch(link=link):
                nxt = link.with_name(link.name + ".next")
                nxt.symlink_to(second)
                nxt.replace(link)  # the next scan sees all 2,000 new versions at once

            stats = tmp_path / f"{label}.json"
            args = ["gateway", str(link), str(stats)] + (["--anchor"] if anchor else [])
            proc, ports = _spawn(*args, native=native)
            try:
                _wait_ready(ports["admin"], time.monotonic() + 300)
                run = asyncio.run(_traffic(ports["port"], hosts, switch))
            finally:
                _stop(proc)
            ticks = json.loads(stats.read_text())["ticks"]
            figures = {
                "quiet": _window(ticks, run["log"], run["quiet"]),
                "burst": _window(ticks, run["log"], run["burst"]),
                "catch_up_s": round(run["burst"][1] - run["burst"][0], 2),
                "caught_up": run["caught"] is not None,
                "load": _load(),
            }
            record("gateway-tables", f"burst-{BURST}-{label}", figures)
            assert figures["caught_up"], figures
    finally:
        _stop(backends)


# -- 3. time to ready and RSS -------------------------------------------------------------------


def test_time_to_ready_and_rss(tmp_path):
    for kind, n in READY_SIZES:
        directory = tmp_path / f"{kind}-{n}"
        write_tables(directory, documents(n, kind, 1))
        for label, anchor in (("tether", False), ("anchor", True)):
            args = ["gateway", str(directory), str(tmp_path / "stats.json")]
            start = time.monotonic()
            proc, ports = _spawn(*args + (["--anchor"] if anchor else []))
            try:
                ready = _wait_ready(ports["admin"], start + 600) - start
                figures = {"ready_s": round(ready, 2), "cpu_s": _cpu_s(proc.pid),
                           **_rss_mib(proc.pid), "load": _load()}  # fmt: skip
            finally:
                _stop(proc)
            record("gateway-tables", f"ready-{kind}-{n}-{label}", figures)
