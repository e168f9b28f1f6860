"""Control-plane faults with traffic flowing: kube-apiserver SIGKILLed in a scale storm, etcd
restarted, the acting operator replica SIGKILLed in a storm.

Each scenario keeps bounded keep-alive load on the gateway (`load.Load`), asserts that no
request failed, and measures the time until the tables are correct again (`chaos` module doc:
published table = the EndpointSlices' ready endpoints, and every gateway replica routes by it).
The figures are printed as `FAULTS | ...` lines (`pytest -s`; README "Faults"). On the lab the
control plane is the lab's processes (`tether.lab.faults`); on kind the static pods of the
node, killed through containerd (`tether.kind.faults`).
"""

from __future__ import annotations

import time

import pytest

from tether.lab.testing import wait_until

from .chaos import (
    TABLES_NS,
    assert_refusals_only,
    leader,
    orphans,
    report,
    scale,
    setup_httpbin,
    start_load,
    table_doc,
    wait_correct,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tether_gateway")]


def _pods_created(cluster, ns: str) -> int:
    return len(cluster.kubectl_json("pods", "-n", ns, "-l", "app=httpbin")["items"])


def test_apiserver_killed_in_a_scale_storm_fails_no_request(cluster, namespace: str):
    setup_httpbin(cluster, namespace)
    load = start_load(cluster, namespace)
    try:
        scale(cluster, namespace, 10)
        wait_until(lambda: _pods_created(cluster, namespace) > 3, timeout=30, what="storm begun")
        cluster.crash("kube-apiserver")  # SIGKILL; back (healthy) on return
        back = time.monotonic()
        scale(cluster, namespace, 3)
        wait_correct(cluster, namespace, 3)
        correct_at = time.monotonic()
        correct = correct_at - back
        mark = load.sent()
        wait_until(lambda: load.sent() > mark + 200, timeout=60, what="load after the storm")
    finally:
        result = load.stop()
    report("kube-apiserver SIGKILLed in a 3→10→3 storm", result, correct, cluster)
    assert_refusals_only(result, removed=7, cluster=cluster, ns=namespace, correct_at=correct_at)


def test_etcd_restarted_fails_no_request(cluster, namespace: str):
    setup_httpbin(cluster, namespace)
    load = start_load(cluster, namespace)
    try:
        scale(cluster, namespace, 5)
        cluster.restart("etcd")  # SIGTERM, then started again; healthy on return
        back = time.monotonic()
        wait_correct(cluster, namespace, 5)
        correct = time.monotonic() - back
        mark = load.sent()
        wait_until(lambda: load.sent() > mark + 200, timeout=60, what="load after the restart")
    finally:
        result = load.stop()
    report("etcd restarted (3→5 scale in flight)", result, correct, cluster)
    assert result.failed == 0, result.summary()


EXTRA = """
apiVersion: v1
kind: Service
metadata: {{name: extra, namespace: {ns}}}
spec:
  selector: {{app: httpbin}}
  ports: [{{name: http, port: 8000, targetPort: 8080}}]
"""


def test_acting_operator_killed_in_a_storm_is_replaced_and_leaves_no_orphan(
    cluster, namespace: str
):
    """The acting replica's operator container is SIGKILLed while httpbin scales 3→6→4 and a
    Service is deleted. The kubelet restarts the killed container, which joins the peering as a
    new peer (a fresh identity and random priority), so the replica that acts next is whichever
    live peer ranks highest: the stand-by pod, or the restarted container when it drew a higher
    priority than the dead peer (then it need not wait until the dead peer's keep-alive
    expires, at most 15 s after the kill). Either way the acting process is a new one; the
    test asserts convergence, no orphaned ConfigMap, failures only within the scale-down
    bound (`assert_refusals_only`; usually none), and prints who took over."""
    setup_httpbin(cluster, namespace)
    cluster.apply(EXTRA.format(ns=namespace))
    wait_until(lambda: table_doc(cluster, namespace, "extra", 8000), timeout=60,
               what="the extra Service's table")  # fmt: skip
    victim = leader(cluster)
    load = start_load(cluster, namespace)
    try:
        scale(cluster, namespace, 6)
        cluster.kill_container(TABLES_NS, victim["metadata"]["name"], "operator")
        killed = time.monotonic()
        cluster.kubectl("delete", "service", "extra", "-n", namespace)
        scale(cluster, namespace, 4)
        wait_correct(cluster, namespace, 4)
        wait_until(lambda: table_doc(cluster, namespace, "extra", 8000) is None, timeout=120,
                   what="the deleted Service's table removed")  # fmt: skip
        converged = time.monotonic() - killed
        new = leader(cluster)
        mark = load.sent()
        wait_until(lambda: load.sent() > mark + 200, timeout=60, what="load after takeover")
    finally:
        result = load.stop()
    report(
        "acting operator SIGKILLed in a 3→6→4 storm (+ a Service deleted)",
        result,
        converged,
        cluster,
    )
    assert_refusals_only(result, removed=2, cluster=cluster, ns=namespace)
    assert orphans(cluster, namespace) == []
    # the peering lifetime (15 s) + 2 s settle + one reconcile, with room for a busy machine
    assert converged < 45, converged
    same = new["metadata"]["name"] == victim["metadata"]["name"]
    print(f"takeover: {victim['metadata']['name']} -> {new['metadata']['name']}"
          + (" (its restarted container)" if same else " (the stand-by replica)"))  # fmt: skip
