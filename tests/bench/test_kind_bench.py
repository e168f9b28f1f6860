"""kind next to the lab, in one run (`make bench-kind`): the same deploy/, the same scenario.

Measured per backend, each figure printed beside the other backend's and the load average:
- warm `up`: the cluster from cached binaries/images (kind: `kind create cluster` with the
  offline node image, then `kind load` of tether:dev and go-httpbin; lab: `Lab.up()`);
- `kubectl scale` → the gateway routing on the new table: the time from the scale command
  until one gateway replica sends a fixed set of sticky sessions to exactly the new number of
  pods (read from the replica's own per-upstream request counters, 40-request batches);
- gateway requests/s through the pod network: wrk (-t1 -c20, 10 s, a random sticky cookie per
  request) run in the network the pods live in (the lab's namespace; the kind node's) against
  one gateway pod IP, which forwards to the httpbin pods (lab: the lab's Python backend;
  kind: go-httpbin containers behind a real bridge CNI).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import tempfile
import time

import pytest

from tether.cli.demo_http import send_sessions
from tether.kind import images
from tether.kind import versions as v
from tether.kind.cluster import KindCluster
from tether.lab import Lab, build
from tether.lab.testing import wait_until

from ..e2e.deploy import (
    EXAMPLES,
    deploy_gateway,
    deploy_operator,
    gateway_pods,
    http_get,
    ready_endpoints,
    seed_rule,
    table_doc,
)
from .results import percentile, record

pytestmark = pytest.mark.bench

NS = "bench"
HOST = f"httpbin.{NS}"
EVENTS = int(os.environ.get("TETHER_BENCH_SCALE_EVENTS", "12"))
LUA = """math.randomseed(12345)
request = function()
  return wrk.format("GET", "/get", {["Host"] = "%s",
    ["Cookie"] = "sticky-session-key=" .. math.random(1, 100000)})
end
"""


def _load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _upstream_counts(cluster, gw_ip: str) -> dict[str, float]:
    _, body = http_get(cluster, gw_ip, 9901, "/metrics")
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        m = re.match(r'tether_gateway_requests_total\{.*upstream="([^"]+)".*\} (\S+)', line)
        if m and m.group(1):
            out[m.group(1)] = out.get(m.group(1), 0) + float(m.group(2))
    return out


def _upstreams_now(cluster, gw_ip: str, cookies: list[str]) -> int:
    """How many distinct pods one batch of sessions reaches through replica `gw_ip`."""
    before = _upstream_counts(cluster, gw_ip)
    send_sessions(gw_ip, 8080, cookies, "/get", cluster.connect, {"Host": HOST})
    after = _upstream_counts(cluster, gw_ip)
    return sum(1 for k, n in after.items() if n > before.get(k, 0))


def _deploy(cluster) -> str:
    deploy_operator(cluster)
    deploy_gateway(cluster)
    cluster.kubectl("create", "namespace", NS, check=False)
    wait_until(lambda: cluster.kubectl("get", "sa", "default", "-n", NS, check=False), 30)
    cluster.kubectl("apply", "-n", NS, "-f", str(EXAMPLES / "httpbin.yaml"))
    cluster.apply(seed_rule(NS))
    wait_until(lambda: ready_endpoints(table_doc(cluster, NS, "httpbin", 8000)) == 3, 180,
               what="3 endpoints")  # fmt: skip
    return gateway_pods(cluster)[0]["status"]["podIP"]


def _scale_to_routing(cluster, gw_ip: str) -> list[float]:
    cookies = [f'sticky-session-key="{secrets.token_hex(8)}"' for _ in range(40)]
    wait_until(lambda: _upstreams_now(cluster, gw_ip, cookies) == 3, 60, what="3 upstreams")
    took = []
    for i in range(EVENTS):
        n = 4 if i % 2 == 0 else 3
        started = time.monotonic()
        cluster.kubectl("scale", "deployment/httpbin", "-n", NS, f"--replicas={n}")
        wait_until(lambda n=n: _upstreams_now(cluster, gw_ip, cookies) == n, 120, interval=0,
                   what=f"routing over {n} pods")  # fmt: skip
        took.append(time.monotonic() - started)
    return took


def _wrk(prefix: list[str], gw_ip: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % HOST)
    cmd = [*prefix, "wrk", "-t1", "-c20", "-d10s", "--latency", "-s", f.name,
           f"http://{gw_ip}:8080/"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p99": re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1),
        "errors": int(errors.group(1)) if errors else 0,
    }


def _measure(backend: str) -> dict:
    name = f"bench-{os.getpid()}"
    if backend == "lab":
        cluster = Lab(name)
        started = time.monotonic()
        cluster.up()
        up = time.monotonic() - started
        prefix = ["ip", "netns", "exec", cluster.netns]
    else:
        cluster = KindCluster(name, kubectl=build.bin_dir() / "kubectl")
        started = time.monotonic()
        cluster.up(images.NODE_IMAGE, "offline")
        cluster.load(v.TETHER_IMAGE, v.HTTPBIN_IMAGE)
        up = time.monotonic() - started
    try:
        gw_ip = _deploy(cluster)
        if backend == "kind":
            prefix = ["nsenter", "-t", str(cluster.node_pid()), "-n"]
        took = _scale_to_routing(cluster, gw_ip)
        rps = _wrk(prefix, gw_ip)
    finally:
        cluster.down()
    return {
        "warm_up_s": round(up, 1),
        "scale_to_routing_p50_s": round(percentile(took, 50), 2),
        "scale_to_routing_p99_s": round(percentile(took, 99), 2),
        "events": len(took),
        "gateway_rps": rps["rps"],
        "gateway_p99": rps["p99"],
        "non_2xx": rps["errors"],
        "load": _load(),
    }


def test_kind_next_to_the_lab():
    missing = [r for r in (images.NODE_IMAGE, v.TETHER_IMAGE) if images.image_inputs(r) is None]
    assert not missing, f"images missing: {missing}; run `make kind-images`"
    lab = _measure("lab")
    kind = _measure("kind")
    ratio = {
        "up_kind_over_lab": round(kind["warm_up_s"] / lab["warm_up_s"], 2),
        "scale_p50_kind_over_lab": round(
            kind["scale_to_routing_p50_s"] / lab["scale_to_routing_p50_s"], 2
        ),
        "rps_kind_over_lab": round(kind["gateway_rps"] / lab["gateway_rps"], 2),
    }
    record("kind", "lab", lab)
    record("kind", "kind", kind)
    record("kind", "ratios", ratio)
    assert lab["non_2xx"] == 0 and kind["non_2xx"] == 0
