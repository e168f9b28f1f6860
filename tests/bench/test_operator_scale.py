"""The operator at scale on the lab: N Services backed by hand-made EndpointSlices (no pods).

Run with `make bench` (or `pytest -m bench -s tests/bench/test_operator_scale.py`; set
TETHER_SCALE_CASES=100x10,1000x10 to run fewer cases). Each case gets a fresh lab with
deploy/operator (two replicas) and, at the end, deploy/gateway:

1. the operator is scaled to 0 and the fleet is created (anchor: the API server's create
   rate for Services + EndpointSlices from a client with 8 requests in flight);
2. the operator is scaled to 2: **initial sync** = until every table exists with the right
   endpoints (watched); operator CPU (user+sys) and RSS (current and peak) of both replicas
   from /proc;
3. **change → ConfigMap**: 30 times, one random slice gains or loses an endpoint; from before
   its PUT until the table's watch event shows the new count;
4. total bytes of the table ConfigMaps;
5. **gateway**: deploy/gateway applied beside the N tables; from apply until its /readyz
   answers 200, and its RSS then (the gateway as it is: read-only use).

Prints one table and writes bench-results/operator-scale.json. Targets at 10,000 Services
(issue 13): initial sync <= 60 s with CPU linear in N, change p99 <= 500 ms, operator RSS
<= 700 MB, gateway ready <= 15 s. `uptime`'s load average is printed with every case.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.bench.results import percentile, record
from tests.lab.service_fleet import Fleet, service_name
from tests.lab.tether_deploy import ROOT, TABLES_NS, crd_established, operator_pods
from tether.lab import Lab
from tether.lab.testing import wait_until
from tether.models import table as t

pytestmark = pytest.mark.bench
CASES = os.environ.get("TETHER_SCALE_CASES", "100x10,1000x10,10000x10,20x1000")
CHANGES = 30
GATEWAY_WAIT = 300.0
TICK = os.sysconf("SC_CLK_TCK")


def _load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def _proc(pid: int) -> dict[str, float]:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    status = dict(line.split(":", 1) for line in lines)
    return {
        "cpu_s": round((int(stat[11]) + int(stat[12])) / TICK, 1),
        "rss_mb": round(int(status["VmRSS"].split()[0]) / 1024, 1),
        "peak_rss_mb": round(int(status["VmHWM"].split()[0]) / 1024, 1),
    }


def _pid(lab: Lab, pod: dict, container: str) -> int:
    uid = pod["metadata"]["uid"]
    return int(
        json.loads((lab.paths.kubelet / "pods" / uid / f"{container}.pid").read_text())["pid"]
    )


def _http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _metric(text: str, name: str) -> float:
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
               if line.startswith(name) and line[len(name)] in " {")  # fmt: skip


class Tables(threading.Thread):
    """Watches the table ConfigMaps of one namespace: service -> (ready endpoints, time)."""

    def __init__(self, fleet: Fleet, ns: str) -> None:
        super().__init__(daemon=True)
        self.fleet, self.ns = fleet, ns
        self.ready: dict[str, tuple[int, float]] = {}
        self.cond = threading.Condition()
        self.stop = threading.Event()

    def _on(self, event: dict) -> None:
        obj = event["object"]
        if event["type"] not in ("ADDED", "MODIFIED"):
            return
        doc = json.loads(obj["data"][t.DATA_KEY])
        n = sum(1 for e in doc["endpoints"] if e.get("ready"))
        with self.cond:
            self.ready[doc["service"]["name"]] = (n, time.monotonic())
            self.cond.notify_all()

    def run(self) -> None:
        self.fleet.join()
        path = (f"/api/v1/namespaces/{TABLES_NS}/configmaps?labelSelector="
                f"{t.LABEL_SERVICE_NAMESPACE}%3D{self.ns}")  # fmt: skip
        try:
            self.fleet.api.stream(path, self._on, self.stop)
        except Exception:
            if not self.stop.is_set():  # the lab going down ends the stream: expected
                raise

    def wait(self, predicate, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.ready):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"tables: {len(self.ready)} seen")
                self.cond.wait(min(left, 1.0))
            return time.monotonic()


def _deploy(lab: Lab, operator_replicas: int) -> None:
    lab.kubectl("apply", "-f", str(ROOT / "crds" / "destinationrule.yaml"))
    wait_until(lambda: crd_established(lab), timeout=60, what="DestinationRule CRD")
    lab.kubectl("apply", "-k", str(ROOT / "deploy" / "operator"))
    lab.kubectl("scale", "deployment/tether-operator", "-n", TABLES_NS,
                f"--replicas={operator_replicas}")  # fmt: skip


def _case(spec: str) -> dict:
    n, endpoints = (int(x) for x in spec.split("x"))
    lab = Lab(f"bench-scale-{os.getpid()}")
    lab.up()
    ns = "fleet"
    try:
        _deploy(lab, 0)
        lab.kubectl("create", "namespace", ns)
        wait_until(lambda: lab.kubectl("get", "sa", "default", "-n", ns, check=False), 30)
        fleet = Fleet(lab, ns, workers=8)
        created = fleet.create(n, endpoints)
        tables = Tables(fleet, ns)
        tables.start()
        time.sleep(0.5)  # the watch is open before the operator starts (a measurement)
        out: dict = {"services": n, "endpoints": endpoints, "load_before": _load(),
                     "anchor_create_per_s": round(2 * n / created, 1)}  # fmt: skip
        t0 = time.monotonic()
        lab.kubectl("scale", "deployment/tether-operator", "-n", TABLES_NS, "--replicas=2")
        done = tables.wait(lambda r: len(r) == n and all(v[0] == endpoints for v in r.values()),
                           timeout=900)  # fmt: skip
        out["initial_sync_s"] = round(done - t0, 1)
        out["initial_sync_vs_create_time"] = round((done - t0) / (created / 2), 2)
        pods = operator_pods(lab)
        procs = []
        for pod in pods:
            stats = _proc(_pid(lab, pod, "operator"))
            _, text = fleet.inside(_http, f"http://{pod['status']['podIP']}:9090/metrics")
            stats["leader"] = _metric(text, "tether_operator_leader") == 1
            stats["writes"] = _metric(text, "tether_operator_configmap_writes_total")
            procs.append(stats)
        procs.sort(key=lambda s: not s["leader"])
        out["operator"] = procs
        out["cpu_ms_per_service"] = round(procs[0]["cpu_s"] * 1000 / n, 2)
        lat = []
        for k in range(CHANGES):
            i = random.randrange(n)
            want = endpoints - 1 - k % 2  # a slice holds at most 1,000 endpoints
            name = service_name(i)
            if tables.ready[name][0] == want:
                want = endpoints
            started = time.monotonic()
            fleet.set_endpoints([i], want)
            seen = tables.wait(
                lambda r, s=name, w=want, t0=started: r[s][0] == w and r[s][1] >= t0, 30
            )
            lat.append((seen - started) * 1000)
        out["change_p50_ms"] = round(statistics.median(lat), 1)
        out["change_p99_ms"] = round(percentile(lat, 99), 1)
        out["change_max_ms"] = round(max(lat), 1)
        _, listing = fleet.api.call(
            "GET",
            f"/api/v1/namespaces/{TABLES_NS}/configmaps?labelSelector=tether.dev%2Ftable%3Dv1",
        )
        items = listing["items"]
        out["configmap_bytes_mb"] = round(sum(len(json.dumps(i)) for i in items) / 1e6, 1)
        out["table_json_mb"] = round(sum(len(i["data"][t.DATA_KEY]) for i in items) / 1e6, 1)
        out.update(_gateway(lab, fleet))
        out["load_after"] = _load()
        tables.stop.set()
        fleet.close()
        return out
    finally:
        lab.down()


def _gateway(lab: Lab, fleet: Fleet) -> dict:
    started = time.monotonic()
    lab.kubectl("apply", "-k", str(ROOT / "deploy" / "gateway"))
    pod = wait_until(lambda: (p := lab.kubectl_json("pods", "-n", TABLES_NS, "-l",
                                                    "app.kubernetes.io/name=tether-gateway"))
                     ["items"] and p["items"][0]["status"].get("podIP") and p["items"][0],
                     timeout=120, what="gateway pod with an IP")  # fmt: skip
    url = f"http://{pod['status']['podIP']}:9901/readyz"
    try:
        ready = wait_until(
            lambda: fleet.inside(_http, url)[0] == 200 and time.monotonic(),
            timeout=GATEWAY_WAIT,
            interval=0.05,
            what="gateway /readyz 200",
        )
    except TimeoutError:
        ready = float("nan")  # reported as not ready within GATEWAY_WAIT
    stats = _proc(_pid(lab, pod, "gateway"))
    return {"gateway_ready_s": round(ready - started, 1), "gateway_rss_mb": stats["rss_mb"],
            "gateway_cpu_s": stats["cpu_s"]}  # fmt: skip


def test_operator_scale():
    rows = []
    for spec in CASES.split(","):
        row = _case(spec.strip())
        rows.append(row)
        record("operator-scale", spec, row)
    print("\n| Services x endpoints | initial sync | CPU (ms/Service) | leader RSS (peak) | "
          "standby RSS | change p50 / p99 | ConfigMaps | gateway ready, RSS | "
          "anchor: creates/s | load |")  # fmt: skip
    for r in rows:
        lead, *rest = r["operator"]
        stand = rest[0] if rest else {}
        print(f"| {r['services']} x {r['endpoints']} | {r['initial_sync_s']} s | "
              f"{lead['cpu_s']} s ({r['cpu_ms_per_service']}) | {lead['rss_mb']} MB "
              f"({lead['peak_rss_mb']}) | {stand.get('rss_mb')} MB | {r['change_p50_ms']} / "
              f"{r['change_p99_ms']} ms | {r['configmap_bytes_mb']} MB | "
              f"{r['gateway_ready_s']} s, {r['gateway_rss_mb']} MB | {r['anchor_create_per_s']} | "
              f"{r['load_before']} |")  # fmt: skip
    assert all(r["initial_sync_s"] > 0 for r in rows)
