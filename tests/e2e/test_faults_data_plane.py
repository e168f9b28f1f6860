"""Data-plane faults with traffic flowing: the gateway cut off the API server for 60 s, a
table ConfigMap deleted or corrupted by hand, a backend pod SIGKILLed without grace.

As in test_faults_control_plane.py: bounded keep-alive load through the gateway, every failed
request counted by kind, the time until the tables are correct again measured and printed
(`FAULTS | ...`). A gateway replica is cut off by the backend's `cut_api(pod_ip)`: on the lab
an iptables rule on the pod's own API port plus `ss -K` (`tether.lab.apipath`), on kind an
iptables rule on the pod's IP in the node plus `ss -K` there (`tether.kind.faults`).
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tether.lab.testing import wait_until
from tether.models import table as t

from .chaos import (
    SERVICE,
    TABLES_NS,
    gateway_pods,
    gateway_readyz,
    gateway_status,
    report,
    scale,
    setup_httpbin,
    start_load,
    table_doc,
    table_name,
    wait_correct,
)
from .deploy import metrics

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tether_gateway")]

CUT_SECONDS = 60
MAX_BACKOFF = 30.0  # the gateway's table watch: 0.5 s doubling to 30 s, ±20 % jitter


def _log(cluster, pod: str) -> list[str]:
    """The gateway replica's log lines so far (the lab's kubelet serves no `--since`)."""
    return cluster.kubectl("logs", "-n", TABLES_NS, pod, "-c", "gateway").splitlines()


def _retry_delays(lines: list[str]) -> list[float]:
    """The back-off delays logged ("table watch error ...; retrying in X s") in `lines`."""
    found = (re.search(r"table watch error .*; retrying in ([\d.]+)s", line) for line in lines)
    return [float(m.group(1)) for m in found if m]


def test_gateway_cut_off_the_api_server_serves_last_good_tables_and_relists(
    cluster, namespace: str
):
    """60 s without the API server: the gateway keeps routing by its last good tables, says
    how old they are, stays Ready, retries with back-off, and after the API server restarted
    meanwhile (a fresh watch cache: its resourceVersion is too old) gets 410 Gone and relists."""
    setup_httpbin(cluster, namespace)
    pods = gateway_pods(cluster)
    before = {p["metadata"]["name"]: gateway_status(cluster, p) for p in pods}
    old = table_doc(cluster, namespace, SERVICE, 8000).checksum
    load = start_load(cluster, namespace)
    try:
        logged = {p["metadata"]["name"]: len(_log(cluster, p["metadata"]["name"])) for p in pods}
        cut_at = time.monotonic()
        for p in pods:
            cluster.cut_api(p["status"]["podIP"])
        try:
            cluster.crash("kube-apiserver")  # its watch cache starts over
            scale(cluster, namespace, 5)  # the operator publishes; the gateway cannot see it
            wait_until(
                lambda: (d := table_doc(cluster, namespace, SERVICE, 8000)) and d.checksum != old,
                timeout=150,
                what="the 5-pod table published while the gateway is cut off",
            )
            # The cut lasts CUT_SECONDS, and at least 10 s more than the new table is old (on a
            # loaded kind node the restarted API server, the pods and the table can take longer
            # than the cut): the gateway must have missed a table that exists.
            cut_end = max(cut_at + CUT_SECONDS, time.monotonic() + 10)
            wait_until(lambda: time.monotonic() > cut_end - 5, timeout=CUT_SECONDS,
                       interval=1, what="most of the cut")  # fmt: skip
            during = {p["metadata"]["name"]: gateway_status(cluster, p) for p in pods}
            scraped = [metrics(p, port=9901, cluster=cluster) for p in pods]
            readyz = [gateway_readyz(cluster, p) for p in pods]
            still_ready = {p["metadata"]["name"] for p in gateway_pods(cluster)}
            wait_until(lambda: time.monotonic() >= cut_end, timeout=10, interval=0.2,
                       what="the end of the cut")  # fmt: skip
        finally:
            for p in pods:
                cluster.heal_api(p["status"]["podIP"])
        healed = time.monotonic()
        correct = wait_correct(cluster, namespace, 5, timeout=MAX_BACKOFF * 1.2 + 60)
        after = {p["metadata"]["name"]: gateway_status(cluster, p) for p in pods}
        delays = {name: _retry_delays(_log(cluster, name)[logged[name] :]) for name in logged}
        mark = load.sent()
        wait_until(lambda: load.sent() > mark + 200, timeout=60, what="load after the cut")
    finally:
        result = load.stop()
    report(
        f"gateway cut off the API server for {CUT_SECONDS} s (API server restarted, 3→5 meanwhile)",
        result,
        correct,
        cluster,
    )
    name = table_name(namespace)
    for st in during.values():
        # the last good table, still served, its age reported
        assert st["ready"] and st["tables"][name] == old, st
        assert not st["sync"]["synced"] and st["sync"]["ageSeconds"] >= CUT_SECONDS - 10, st
    for samples in scraped:  # the same, as Prometheus sees it
        assert samples["tether_gateway_tables_synced"] == 0, samples
        assert samples["tether_gateway_tables_sync_age_seconds"] >= CUT_SECONDS - 10, samples
    for status, body in readyz:
        assert status == 200 and "not synced" in body, body
    assert still_ready == set(during), "a gateway replica was taken out of its Service"
    for pod, st in after.items():
        b = before[pod]["sync"]
        assert st["sync"]["synced"] and st["sync"]["ageSeconds"] == 0, st
        assert st["sync"]["watchFailures"]["gone"] > b["watchFailures"]["gone"], (b, st)
        assert st["sync"]["lists"] > b["lists"], (b, st)  # relisted after the 410
        # exponential back-off, capped: 0.5, 1, 2, 4, 8, 16, 30 s (the TLS Secret watch, if
        # any, logs the same progression, interleaved)
        d = delays[pod]
        assert sorted(set(d))[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0], d
        assert max(d) <= MAX_BACKOFF and d[0] == 0.5, d
    # after the heal the next attempt comes within one back-off step (30 s + 20 % jitter)
    assert correct <= MAX_BACKOFF * 1.2 + 15, correct
    assert healed - cut_at >= CUT_SECONDS
    assert result.failed == 0, result.summary()


def _corrupt(cluster, name: str) -> None:
    """Change one endpoint's port in the document without fixing its checksum."""
    cm = cluster.kubectl_json("configmap", name, "-n", TABLES_NS)
    doc = json.loads(cm["data"][t.DATA_KEY])
    doc["endpoints"][0]["port"] += 1
    patch = {"data": {t.DATA_KEY: json.dumps(doc, separators=(",", ":"), sort_keys=True)}}
    cluster.kubectl("patch", "configmap", name, "-n", TABLES_NS, "--type=merge", "-p",
                    json.dumps(patch))  # fmt: skip


def _restored(cluster, ns: str, checksum: str) -> bool:
    doc = table_doc(cluster, ns, SERVICE, 8000)
    return doc is not None and doc.checksum == checksum


def test_table_configmap_edited_by_hand_is_refused_and_restored(cluster, namespace: str):
    setup_httpbin(cluster, namespace)
    good = table_doc(cluster, namespace, SERVICE, 8000).checksum
    name = table_name(namespace)
    pods = gateway_pods(cluster)
    errors = {p["metadata"]["name"]: gateway_status(cluster, p)["loadErrors"] for p in pods}
    load = start_load(cluster, namespace)
    try:
        edited = time.monotonic()
        _corrupt(cluster, name)
        wait_until(lambda: _restored(cluster, namespace, good), timeout=60,
                   what="the operator restoring the table")  # fmt: skip
        wait_correct(cluster, namespace, 3)
        correct = time.monotonic() - edited
        refused = {p["metadata"]["name"]: gateway_status(cluster, p) for p in pods}
        mark = load.sent()
        wait_until(lambda: load.sent() > mark + 200, timeout=60, what="load after the edit")
    finally:
        result = load.stop()
    report("table ConfigMap corrupted by hand", result, correct, cluster)
    for pod, st in refused.items():
        assert st["tables"][name] == good, st  # never routed by the corrupt copy
        # the corrupt copy was seen and refused (if the restore came before the gateway read
        # it, the watch may skip it: then no error, and nothing else changed either)
        assert st["loadErrors"] > errors[pod], st
    assert result.failed == 0, result.summary()


def test_table_configmap_deleted_by_hand_is_restored(cluster, namespace: str):
    """The operator puts the table back within its coalescing window; until the gateway has
    it again, the Service has no table there, so its requests fail (or, when exactly one other
    Service is published, go to that one: the gateway's default route). Bound: no failure
    once every gateway replica routes by the restored table."""
    setup_httpbin(cluster, namespace)
    good = table_doc(cluster, namespace, SERVICE, 8000).checksum
    load = start_load(cluster, namespace)
    try:
        deleted = time.monotonic()
        cluster.kubectl("delete", "configmap", table_name(namespace), "-n", TABLES_NS)
        wait_until(lambda: _restored(cluster, namespace, good), timeout=60,
                   what="the operator restoring the table")  # fmt: skip
        wait_correct(cluster, namespace, 3)
        restored = time.monotonic()
        mark = load.sent()
        wait_until(lambda: load.sent() > mark + 200, timeout=60, what="load after the delete")
    finally:
        result = load.stop()
    report("table ConfigMap deleted by hand", result, restored - deleted, cluster)
    late = [f for f in result.failures if not deleted <= f.at <= restored]
    assert not late, result.summary()


def test_backend_pod_sigkilled_under_load(cluster, namespace: str):
    """SIGKILL without grace: a request in flight on the killed pod cannot be answered (the
    gateway answers 502); one the gateway had not yet sent there is retried on another pod.
    Beside the fast load, 3 clients keep a 1 s request (/delay/1) in flight at all times, so
    the kill usually catches some. Bound: at most one failure per client (each has at most one
    request in flight when the pod dies)."""
    setup_httpbin(cluster, namespace)
    fast = start_load(cluster, namespace, clients=4)
    slow = start_load(cluster, namespace, warm=3, clients=3, rate=1.0, path="/delay/1")
    victim = cluster.kubectl_json("pods", "-n", namespace, "-l", "app=httpbin")["items"][0]
    name = victim["metadata"]["name"]
    restarts = victim["status"]["containerStatuses"][0].get("restartCount", 0)
    try:
        killed = time.monotonic()
        cluster.kill_container(namespace, name, "httpbin")
        wait_until(lambda: _restarts(cluster, namespace, name) > restarts, timeout=60,
                   what="the container restarted")  # fmt: skip
        wait_correct(cluster, namespace, 3)
        correct = time.monotonic() - killed
        mark = fast.sent()
        wait_until(lambda: fast.sent() > mark + 200, timeout=60, what="load after the kill")
    finally:
        result = fast.stop() + slow.stop()
    report("backend pod SIGKILLed (no grace)", result, correct, cluster)
    assert result.failed <= fast.clients + slow.clients, result.summary()
    assert all(f.at <= killed + 5 for f in result.failures), result.summary()


def _restarts(cluster, ns: str, pod: str) -> int:
    p = cluster.kubectl_json("pod", pod, "-n", ns)
    return p["status"]["containerStatuses"][0].get("restartCount", 0)
