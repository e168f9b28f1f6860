"""Lab figures: binary sizes and build time, warm `lab up` time, `kubectl scale` → EndpointSlice.

Run with `make bench` (or `pytest -m bench -s tests/bench/test_lab_bench.py`); the numbers are
printed and written to bench-results/lab.json.
"""

from __future__ import annotations

import os
import statistics
import threading
import time

import pytest

from tests.bench.results import percentile, record
from tether.lab import Lab, build, netns
from tether.lab.testing import session_lab, wait_until

pytestmark = pytest.mark.bench
UP_RUNS = 3
SCALE_EVENTS = 20

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: httpbin}
spec:
  replicas: 3
  selector: {matchLabels: {app: httpbin}}
  template:
    metadata: {labels: {app: httpbin}}
    spec:
      containers: [{name: httpbin, image: httpbin, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: httpbin}
spec:
  selector: {app: httpbin}
  ports: [{port: 8000, targetPort: 80}]
"""


def _record(key: str, value) -> None:
    record("lab", key, value)


def _pct(values: list[float], q: float) -> float:
    return percentile(values, int(q))


def test_binaries_sizes_and_build_time():
    path = build.ensure_binaries()
    stamp = build.read_stamp(path)
    assert stamp, f"no build stamp in {path}"
    sizes_mb = {k: round(v / 1e6, 1) for k, v in stamp["sizes"].items()}
    # The stamp holds the duration of the build that produced these binaries: a cold build
    # only if Go's build cache was empty then (CI: yes; a developer's rebuild: often not).
    _record("binaries", {"dir": str(path), "last_build_seconds": stamp["build_seconds"],
                         "sizes_mb": sizes_mb, "versions": stamp["versions"]})  # fmt: skip
    assert build.K8S_VERSION in stamp["versions"]["kube-apiserver"]


def test_warm_lab_up_time():
    build.ensure_binaries()
    times, downs = [], []
    for i in range(UP_RUNS):
        lab = Lab(f"bench-up-{os.getpid()}-{i}")
        started = time.monotonic()
        try:
            lab.up()
            times.append(time.monotonic() - started)
        finally:
            t = time.monotonic()
            lab.down()
            downs.append(time.monotonic() - t)
    _record("lab_up_seconds", {"runs": [round(t, 2) for t in times],
                               "median": round(statistics.median(times), 2),
                               "down_median": round(statistics.median(downs), 2)})  # fmt: skip


class SliceWatch(threading.Thread):
    """Watches the Service's EndpointSlices from inside the lab; records (time, ready count)."""

    def __init__(self, lab: Lab, ns: str) -> None:
        super().__init__(daemon=True)
        self.lab, self.ns = lab, ns
        self.events: list[tuple[float, int]] = []
        self.cond = threading.Condition()
        self.stop = threading.Event()

    def run(self) -> None:
        netns.setns(netns.path_of(self.lab.netns))
        from kubernetes import client, config, watch

        config.load_kube_config(str(self.lab.kubeconfig))
        api = client.DiscoveryV1Api()
        w = watch.Watch()
        per_slice: dict[str, int] = {}
        for ev in w.stream(api.list_namespaced_endpoint_slice, self.ns,
                           label_selector="kubernetes.io/service-name=httpbin"):  # fmt: skip
            now = time.monotonic()
            obj = ev["object"]
            eps = obj.endpoints or []
            per_slice[obj.metadata.name] = (
                0 if ev["type"] == "DELETED" else sum(1 for e in eps if e.conditions.ready)
            )
            with self.cond:
                self.events.append((now, sum(per_slice.values())))
                self.cond.notify_all()
            if self.stop.is_set():
                w.stop()

    def wait_for(self, after: float, ready: int, timeout: float = 30.0) -> float:
        """Return the first time after `after` at which `ready` endpoints were ready."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, n in self.events:
                    if t >= after and n == ready:
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"slice never reached {ready} ready endpoints")
                self.cond.wait(left)


@pytest.fixture(scope="module")
def lab():
    with session_lab(enter=False) as running:
        yield running


def test_kubectl_scale_to_endpointslice_latency(lab: Lab):
    ns = f"bench-scale-{os.getpid()}"
    lab.kubectl("create", "namespace", ns)
    try:
        wait_until(lambda: lab.kubectl("get", "sa", "default", "-n", ns, check=False), 30)
        watcher = SliceWatch(lab, ns)
        watcher.start()
        lab.apply(MANIFEST, ns)
        watcher.wait_for(0.0, 3, timeout=60)
        latencies: dict[str, list[float]] = {"up": [], "down": []}
        kubectl_times = []
        for i in range(SCALE_EVENTS):
            target = 4 if i % 2 == 0 else 3
            started = time.monotonic()
            lab.kubectl("scale", "deployment", "httpbin", "-n", ns, f"--replicas={target}")
            kubectl_times.append(time.monotonic() - started)
            seen = watcher.wait_for(started, target)
            latencies["up" if target == 4 else "down"].append(seen - started)
        watcher.stop.set()
        every = latencies["up"] + latencies["down"]
        _record("scale_to_endpointslice_ms", {
            "events": len(every),
            "p50": round(statistics.median(every) * 1000),
            "p90": round(_pct(every, 90) * 1000),
            "max": round(max(every) * 1000),
            "p50_scale_up": round(statistics.median(latencies["up"]) * 1000),
            "p50_scale_down": round(statistics.median(latencies["down"]) * 1000),
            "p50_kubectl_scale_returns": round(statistics.median(kubectl_times) * 1000),
            "note": "wall time from running `kubectl scale` until the slice shows the new "
                    "number of ready endpoints (includes kubectl start-up)",
        })  # fmt: skip
        assert len(every) == SCALE_EVENTS
    finally:
        lab.kubectl("delete", "namespace", ns, "--wait=false", check=False)
