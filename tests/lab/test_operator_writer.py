"""Exactly one writer, and self-repair: deploy/operator's two replicas on the lab.

What a user checks: a table, once it shows a change, never goes back to an older endpoint set
(the standby replica must not overwrite it); exactly one replica says it acts; a table edited,
deleted or replaced by a stale copy is put back; a leader killed without clean-up is replaced
within kopf's peering lifetime. Tables are read through a watch, so every version the API
served is seen, not only the last one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tether.lab import Lab
from tether.lab.testing import wait_until
from tether.models import table as t

from .service_fleet import Fleet, service_name
from .tether_deploy import (
    EXAMPLES,
    TABLES_NS,
    metric,
    operator_pods,
    ready_endpoints,
    table_doc,
)

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("tether_operator")]

SERVICES = 600
CHANGED = 20
OBSERVE = 15.0  # seconds a regression is watched for after the change (the bug took ~5)


class TableLog(threading.Thread):
    """Every version of the tables of one namespace: (time, service, ready endpoints)."""

    def __init__(self, ns: str) -> None:
        super().__init__(daemon=True)
        self.ns = ns
        self.versions: list[tuple[float, str, int]] = []
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.error: Exception | None = None
        self.closed = False

    def run(self) -> None:
        from kubernetes import client, config, watch

        config.load_kube_config()
        api = client.CoreV1Api()
        selector = f"{t.LABEL_SERVICE_NAMESPACE}={self.ns}"
        rv = api.list_namespaced_config_map(TABLES_NS, label_selector=selector).metadata
        rv = rv.resource_version
        self.watch = watch.Watch()
        self.started.set()
        while not self.closed:  # a watch the server ends resumes where it stopped
            try:
                for ev in self.watch.stream(
                    api.list_namespaced_config_map, TABLES_NS, label_selector=selector,
                    resource_version=rv, timeout_seconds=120,
                ):  # fmt: skip
                    rv = ev["object"].metadata.resource_version
                    self._add(ev)
            except Exception as exc:  # a 410 would lose versions: checked by complete()
                if self.closed:
                    return
                if getattr(exc, "status", None) == 410:
                    self.error = exc
                    return
                time.sleep(0.2)

    def _add(self, ev: dict) -> None:
        obj = ev["object"]
        if ev["type"] == "DELETED":
            return
        try:
            doc = t.loads(obj.data[t.DATA_KEY])
        except (t.TableDocumentError, KeyError, TypeError):
            return
        with self.lock:
            self.versions.append((time.monotonic(), doc.service.name, ready_endpoints(doc)))

    def complete(self) -> list[tuple[float, str, int]]:
        """Stop watching; every version seen (raises if the watch broke meanwhile)."""
        self.closed = True
        self.watch.stop()
        assert self.error is None, f"the table watch broke: {self.error!r}"
        with self.lock:
            return list(self.versions)

    def counts(self) -> dict[str, int]:
        """Versions seen so far per service."""
        out: dict[str, int] = {}
        with self.lock:
            for _, s, _ in self.versions:
                out[s] = out.get(s, 0) + 1
        return out

    def latest_single_writes(self, n: int) -> list[int]:
        """Indices of the ``n`` fleet Services written exactly once, most recently written."""
        counts = self.counts()
        with self.lock:
            order = [s for _, s, _ in reversed(self.versions)]
        picked = [s for s in dict.fromkeys(order) if counts[s] == 1 and s.startswith("svc-")]
        return [int(s.removeprefix("svc-")) for s in picked[:n]]

    def of(self, service: str) -> list[int]:
        with self.lock:
            return [n for _, s, n in self.versions if s == service]


def _restart_operator(lab: Lab) -> set[str]:
    """Delete both operator pods (no grace); return the names of the pods that replace them."""
    old = {p["metadata"]["name"] for p in operator_pods(lab)}
    lab.kubectl("delete", "pods", "-n", TABLES_NS, "-l", "app.kubernetes.io/name=tether-operator",
                "--grace-period=1", "--wait=false")  # fmt: skip
    pods = wait_until(
        lambda: (
            len(p := [x for x in operator_pods(lab) if x["metadata"]["name"] not in old]) == 2 and p
        ),
        timeout=90,
        what="two new operator pods running",
    )
    return {p["metadata"]["name"] for p in pods}


def _acting(lab: Lab) -> list[str]:
    """Names of the operator pods whose metrics say they act (write)."""
    out = []
    for pod in operator_pods(lab, ready=True):
        if metric(pod, "tether_operator_leader") == 1:
            out.append(pod["metadata"]["name"])
    return out


def _settled(lab: Lab) -> bool:
    pods = operator_pods(lab, ready=True)
    if len(pods) != 2:
        return False
    leaders = [p for p in pods if metric(p, "tether_operator_leader") == 1]
    return len(leaders) == 1 and metric(leaders[0], "tether_operator_pending_keys") == 0


def _tables_in(lab: Lab, ns: str) -> int:
    """How many table ConfigMaps the Services of ``ns`` have now."""
    out = lab.kubectl("get", "configmaps", "-n", TABLES_NS, "-o", "name",
                      "-l", f"{t.LABEL_SERVICE_NAMESPACE}={ns}")  # fmt: skip
    return len(out.split())


def _table_endpoints(lab: Lab, ns: str, i: int) -> int:
    return ready_endpoints(table_doc(lab, ns, service_name(i), 8000))


def _scale_operator(lab: Lab, replicas: int) -> None:
    lab.kubectl("scale", "deployment/tether-operator", "-n", TABLES_NS, f"--replicas={replicas}")
    if replicas == 0:
        wait_until(lambda: not operator_pods(lab), timeout=90, what="operator stopped")
    else:
        wait_until(lambda: len(operator_pods(lab, ready=True)) == replicas, timeout=90,
                   what=f"{replicas} operator replicas ready")  # fmt: skip


class Replica:
    """`tether operator --peering tether --priority P` started by the test inside the lab."""

    def __init__(self, priority: int, port: int, log: Path, nice: int = 0) -> None:
        self.port = port
        self.out = log.open("w")
        self.proc = subprocess.Popen(
            ["nice", "-n", str(nice), sys.executable, "-m", "tether", "operator",
             "--peering", "tether", "--priority", str(priority), "--metrics-port", str(port),
             "--bind-address", "127.0.0.1", "--liveness", ""],
            stdout=self.out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def metric(self, name: str) -> float:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
                   if line.startswith(name) and line[len(name)] in " {")  # fmt: skip

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


def test_standby_never_overwrites_tables_changed_right_after_start(
    lab: Lab, namespace: str, tmp_path: Path
):
    """The probe of issue 13, smaller and deterministic: SERVICES Services with hand-made
    slices and no tables yet, plus httpbin. A low-priority replica starts and publishes, at
    the lowest CPU priority (a starved pod); a high-priority one starts while it does (kopf
    pauses the first). Once every table exists, httpbin is scaled 2 -> 4 and CHANGED slices
    get an 11th endpoint, on the Services written last and only once (those a replica still
    working through its start-up sync would write next). The changed tables never fall back to
    the old endpoints, and once the second replica acts, the first writes nothing.

    Before the fix (commit 30e09f6) this failed every time: the paused replica went on with
    its start-up sync (238 -> 576 writes after the change) and put back 10 endpoints."""
    _scale_operator(lab, 0)
    fleet = Fleet(lab, namespace)
    log = TableLog(namespace)
    low = high = None
    try:
        fleet.create(SERVICES, endpoints=10)
        lab.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "httpbin.yaml"))
        lab.kubectl("scale", "deployment/httpbin", "--replicas=2", "-n", namespace)
        wait_until(lambda: len(lab.kubectl_json("pods", "-n", namespace)["items"]) == 2
                   and "2/2" in lab.kubectl("get", "deploy/httpbin", "-n", namespace),
                   timeout=90, what="httpbin with 2 ready pods")  # fmt: skip
        log.start()
        log.started.wait(30)
        low = Replica(1, 19091, tmp_path / "low.log", nice=19)
        wait_until(lambda: len(log.counts()) >= SERVICES // 20, timeout=120,
                   what="the first replica publishing")  # fmt: skip
        high = Replica(2, 19092, tmp_path / "high.log")
        wait_until(lambda: _tables_in(lab, namespace) == SERVICES + 1, timeout=300,
                   what="every table published")  # fmt: skip
        changed = log.latest_single_writes(CHANGED)
        lab.kubectl("scale", "deployment/httpbin", "--replicas=4", "-n", namespace)
        fleet.set_endpoints(changed, endpoints=11)
        t_change = time.monotonic()
        wait_until(
            lambda: (
                all(_table_endpoints(lab, namespace, i) == 11 for i in changed)
                and ready_endpoints(table_doc(lab, namespace, "httpbin", 8000)) == 4
            ),
            timeout=120,
            what="the changed tables published",
        )
        wait_until(lambda: high.metric("tether_operator_leader") == 1, timeout=60,
                   what="the high-priority replica acting")  # fmt: skip
        low_writes = low.metric("tether_operator_configmap_writes_total")
        wait_until(
            lambda: (
                high.metric("tether_operator_pending_keys") == 0
                and time.monotonic() - t_change > OBSERVE
            ),
            timeout=180,
            what="the acting replica idle, observed for the whole window",
        )
        assert low.metric("tether_operator_configmap_writes_total") == low_writes
        assert low.metric("tether_operator_leader") == 0
    except BaseException:
        for name in ("low", "high"):
            path = tmp_path / f"{name}.log"
            if path.exists():
                tail = [ln for ln in path.read_text().splitlines() if "table for" not in ln]
                print(
                    f"\n--- {name} replica (without per-table lines) ---\n" + "\n".join(tail[-25:])
                )
        raise
    finally:
        fleet.close()
        for replica in (low, high):
            if replica is not None:
                replica.stop()
        _scale_operator(lab, 2)
    log.complete()
    for svc in [service_name(i) for i in changed] + ["httpbin"]:
        seen = log.of(svc)
        new = 4 if svc == "httpbin" else 11
        first = seen.index(new) if new in seen else len(seen)
        assert all(n == new for n in seen[first:]), f"{svc} went back: {seen}"
    assert len(changed) == CHANGED
    assert all(_table_endpoints(lab, namespace, i) == 11 for i in changed)


def test_scale_right_after_start_is_not_undone(lab: Lab, namespace: str):
    lab.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "httpbin.yaml"))
    lab.kubectl("scale", "deployment/httpbin", "--replicas=2", "-n", namespace)
    wait_until(
        lambda: ready_endpoints(table_doc(lab, namespace, "httpbin", 8000)) == 2,
        timeout=90,
        what="httpbin table with 2 endpoints",
    )
    log = TableLog(namespace)
    log.start()
    log.started.wait(30)
    _restart_operator(lab)
    lab.kubectl("scale", "deployment/httpbin", "--replicas=4", "-n", namespace)
    t_scale = time.monotonic()
    wait_until(
        lambda: ready_endpoints(table_doc(lab, namespace, "httpbin", 8000)) == 4,
        timeout=90,
        what="httpbin table with 4 endpoints",
    )
    wait_until(
        lambda: _settled(lab) and time.monotonic() - t_scale > OBSERVE,
        timeout=180,
        what="one acting replica with nothing pending, observed for the whole window",
    )
    log.complete()
    seen = log.of("httpbin")
    assert 4 in seen and all(n == 4 for n in seen[seen.index(4) :]), seen
    assert ready_endpoints(table_doc(lab, namespace, "httpbin", 8000)) == 4


def test_edited_deleted_or_stale_tables_are_put_back(lab: Lab, namespace: str):
    fleet = Fleet(lab, namespace)
    try:
        fleet.create(3, endpoints=2)
        wait_until(lambda: all(_table_endpoints(lab, namespace, i) == 2 for i in range(3)),
                   timeout=60, what="3 tables")  # fmt: skip
        name = t.configmap_name(namespace, service_name(0), 8000)
        stale = lab.kubectl_json("configmap", name, "-n", TABLES_NS)["data"][t.DATA_KEY]
        fleet.set_endpoints([0], endpoints=3)
        wait_until(lambda: _table_endpoints(lab, namespace, 0) == 3, timeout=30, what="3 eps")
    finally:
        fleet.close()

    def put_back(data: str) -> None:
        patch = json.dumps({"data": {t.DATA_KEY: data}})
        lab.kubectl("patch", "configmap", name, "-n", TABLES_NS, "--type=merge", "-p", patch)
        wait_until(lambda: _table_endpoints(lab, namespace, 0) == 3, timeout=30,
                   what="the table put back by the operator")  # fmt: skip

    put_back(stale)  # a valid but stale document (what a stale replica would write)
    put_back('{"hand": "edited"}')
    lab.kubectl("delete", "configmap", name, "-n", TABLES_NS)
    wait_until(lambda: _table_endpoints(lab, namespace, 0) == 3, timeout=30, what="re-created")
    assert all(_table_endpoints(lab, namespace, i) == 2 for i in (1, 2))
    events = wait_until(
        lambda: lab.kubectl_json("events", "-n", namespace, "--field-selector",
                                 f"involvedObject.name={service_name(1)}")["items"],
        timeout=30, what="the Event of a published table",
    )  # fmt: skip
    assert {e["source"]["component"] for e in events} == {"tether-operator"}
    assert {e["reportingComponent"] for e in events} == {"tether-operator"}


def _pid(lab: Lab, pod: dict) -> int:
    uid = pod["metadata"]["uid"]
    rec = json.loads((lab.paths.kubelet / "pods" / uid / "operator.pid").read_text())
    return int(rec["pid"])


def test_killed_leader_is_replaced_within_the_peering_lifetime(lab: Lab, namespace: str):
    fleet = Fleet(lab, namespace)
    try:
        fleet.create(1, endpoints=2)
        wait_until(lambda: _table_endpoints(lab, namespace, 0) == 2, timeout=60, what="table")
        wait_until(lambda: _settled(lab), timeout=120, what="one acting replica")
        leader = next(p for p in operator_pods(lab) if metric(p, "tether_operator_leader") == 1)
        os.kill(_pid(lab, leader), signal.SIGKILL)  # no clean-up: its peering entry stays
        killed = time.monotonic()
        fleet.set_endpoints([0], endpoints=5)
        wait_until(lambda: _table_endpoints(lab, namespace, 0) == 5, timeout=60,
                   what="the change published by the successor")  # fmt: skip
        takeover = time.monotonic() - killed
    finally:
        fleet.close()
    print(f"\n[operator] SIGKILLed leader: change published {takeover:.1f} s after the kill")
    assert takeover < 30  # peering lifetime 15 s + settle 2 s + one reconcile, with slack
