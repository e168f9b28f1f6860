"""The operator on a real cluster (lab or kind): kubectl apply / scale, and the tables follow.

Every step is what a user does and checks with kubectl: the seed DestinationRule applied
verbatim, `kubectl scale`, a switch to Maglev, an invalid rule, deletion, restarts, replicas.
"""

from __future__ import annotations

import re

import pytest

from tether.lab.testing import wait_until
from tether.models import table as t

from .deploy import (
    EXAMPLES,
    TABLES_NS,
    configmap_versions,
    httpbin_settled,
    metric,
    operator_pods,
    ready_condition,
    ready_endpoints,
    rule_events,
    table_doc,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tether_operator")]

MAGLEV = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: sticky-session-key, ttl: 0s}
        maglev: {tableSize: %s}
"""


def _httpbin(cluster, ns: str, replicas: int = 3) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", str(EXAMPLES / "httpbin.yaml"))
    if replicas != 3:
        cluster.kubectl("scale", "-n", ns, "deployment/httpbin", f"--replicas={replicas}")


def _wait_endpoints(cluster, ns: str, n: int, what: str = "") -> t.TableDocument:
    return httpbin_settled(cluster, ns, n)


def _uids(cluster) -> set[str]:
    return {e["metadata"]["uid"] for e in rule_events(cluster, "default", "httpbin")}


def _new(cluster, seen: set[str]) -> list[dict]:
    """Events on default/httpbin posted after ``seen`` was taken (Events outlive rules)."""
    return [
        e for e in rule_events(cluster, "default", "httpbin") if e["metadata"]["uid"] not in seen
    ]


@pytest.fixture
def default_httpbin(cluster):
    """httpbin ×3 in `default`, where the seed DestinationRule points; removed afterwards."""
    _httpbin(cluster, "default")
    yield
    cluster.kubectl(
        "delete",
        "-n",
        "default",
        "-f",
        str(EXAMPLES / "httpbin.yaml"),
        "--ignore-not-found",
        check=False,
    )
    cluster.kubectl(
        "delete", "destinationrule", "httpbin", "-n", "default", "--ignore-not-found", check=False
    )


def test_seed_rule_tables_follow_scale_switch_invalid_and_delete(cluster, default_httpbin):
    _wait_endpoints(cluster, "default", 3, "round-robin table before any rule")
    assert table_doc(cluster, "default", "httpbin", 8000).policy.type == "simple"

    # 1. the seed DestinationRule, verbatim
    cluster.kubectl("apply", "-f", str(EXAMPLES / "seed-destinationrule.yaml"))
    doc = wait_until(
        lambda: (
            (d := table_doc(cluster, "default", "httpbin", 8000))
            and d.policy.type == "consistentHash"
            and d
        ),
        timeout=30,
        what="consistent-hash table from the seed rule",
    )
    assert doc.policy.algorithm == "ring-hash" and doc.policy.min_ring_size == 1024
    key = doc.policy.hash_key
    assert (key.kind, key.name, key.ttl_seconds) == ("cookie", "sticky-session-key", 0)
    assert ready_endpoints(doc) == 3 and doc.source.name == "httpbin"
    wait_until(
        lambda: ready_condition(cluster, "default", "httpbin").get("status") == "True",
        timeout=30,
        what="DestinationRule Ready=True",
    )

    # 2. scale 3 -> 5: the Event states the moved fraction, the status agrees
    seen = _uids(cluster)
    cluster.kubectl("scale", "deployment/httpbin", "--replicas=5", "-n", "default")
    _wait_endpoints(cluster, "default", 5)

    def moved_event():
        for ev in _new(cluster, seen):
            m = re.search(r"→5 endpoints, ([\d.]+)% of keys moved", ev["message"])
            if m:
                return float(m.group(1))
        return None

    moved = wait_until(moved_event, timeout=30, what="Event stating the moved fraction")
    assert 0 < moved < 100
    status = cluster.kubectl_json("dr", "httpbin", "-n", "default")["status"]
    assert status["endpoints"] == 5
    assert status["keysMoved"] == pytest.approx(moved / 100, abs=0.001)

    # 3. scale to 1
    cluster.kubectl("scale", "deployment/httpbin", "--replicas=1", "-n", "default")
    _wait_endpoints(cluster, "default", 1)

    # 4. switch to Maglev (tableSize as a string, istio/api#3445)
    seen = _uids(cluster)
    cluster.apply(MAGLEV % '"65537"')
    doc = wait_until(
        lambda: (
            (d := table_doc(cluster, "default", "httpbin", 8000))
            and d.policy.algorithm == "maglev"
            and d
        ),
        timeout=30,
        what="Maglev table",
    )
    assert doc.table.size == 65537 and doc.policy.hash_key.name == "sticky-session-key"
    wait_until(
        lambda: any("switched from ring-hash" in e["message"] for e in _new(cluster, seen)),
        timeout=30,
        what="Event for the algorithm switch",
    )

    # 5. an invalid rule: Ready=False with Istio's message, the table untouched
    before = configmap_versions(cluster, "default", "httpbin")  # other tests' tables may go
    seen = _uids(cluster)
    cluster.apply(MAGLEV % "65536")
    cond = wait_until(
        lambda: (
            (c := ready_condition(cluster, "default", "httpbin")).get("reason") == "Invalid" and c
        ),
        timeout=30,
        what="Ready=False reason Invalid",
    )
    assert cond["status"] == "False"
    assert cond["message"].startswith(
        "configuration is invalid: tableSize must be a prime number for maglev"
    )
    wait_until(
        lambda: any(
            e["type"] == "Warning" and e["reason"] == "Invalid" for e in _new(cluster, seen)
        ),
        timeout=30,
        what="Warning Event for the invalid rule",
    )
    assert configmap_versions(cluster, "default", "httpbin") == before
    assert table_doc(cluster, "default", "httpbin", 8000).policy.table_size == 65537

    # 6. delete the rule: its table is gone (the Service falls back to round robin)
    cluster.kubectl("delete", "destinationrule", "httpbin", "-n", "default")
    doc = wait_until(
        lambda: (d := table_doc(cluster, "default", "httpbin", 8000)) and d.source is None and d,
        timeout=30,
        what="the rule's table removed",
    )
    assert doc.policy.type == "simple" and doc.table is None


def test_subset_tables_follow_pod_labels(cluster, namespace: str):
    _httpbin(cluster, namespace, replicas=2)
    cluster.apply(f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: httpbin, namespace: {namespace}}}
spec:
  host: httpbin
  trafficPolicy:
    loadBalancer:
      consistentHash: {{httpHeaderName: x-user}}
  subsets:
  - name: canary
    labels: {{track: canary}}
""")
    _wait_endpoints(cluster, namespace, 2)
    # the rule's tables are published once the rule is read (the round-robin table may come first)
    canary = wait_until(
        lambda: (d := table_doc(cluster, namespace, "httpbin", 8000, "canary")) and d,
        timeout=30,
        what="the canary subset table",
    )
    assert ready_endpoints(canary) == 0
    pod = cluster.kubectl_json("pods", "-n", namespace, "-l", "app=httpbin")["items"][0]
    cluster.kubectl("label", "pod", pod["metadata"]["name"], "-n", namespace, "track=canary")
    doc = wait_until(
        lambda: (
            (d := table_doc(cluster, namespace, "httpbin", 8000, "canary"))
            and ready_endpoints(d) == 1
            and d
        ),
        timeout=90,  # 30 s was exceeded once on a loaded kind node (fresh-clone CI run)
        what="canary subset table with the relabelled pod",
    )
    assert doc.endpoints[0].pod == pod["metadata"]["name"]
    assert doc.policy.hash_key.name == "x-user"  # inherited from the top level


def test_deleted_service_leaves_no_table_even_across_a_restart(cluster, namespace: str):
    _httpbin(cluster, namespace, replicas=1)
    _wait_endpoints(cluster, namespace, 1)
    cluster.kubectl("delete", "service", "httpbin", "-n", namespace)
    wait_until(
        lambda: table_doc(cluster, namespace, "httpbin", 8000) is None,
        timeout=30,
        what="table removed with its Service",
    )

    # re-applying the manifest resets replicas to 3: wait for a table, whatever its size
    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "httpbin.yaml"))
    wait_until(
        lambda: (d := table_doc(cluster, namespace, "httpbin", 8000)) and ready_endpoints(d) >= 1,
        timeout=60,
        what="table published again for the re-created Service",
    )
    cluster.kubectl("scale", "deployment/tether-operator", "-n", TABLES_NS, "--replicas=0")
    try:
        wait_until(lambda: not operator_pods(cluster), timeout=60, what="operator stopped")
        cluster.kubectl("delete", "service", "httpbin", "-n", namespace)
    finally:
        cluster.kubectl("scale", "deployment/tether-operator", "-n", TABLES_NS, "--replicas=2")
    wait_until(
        lambda: table_doc(cluster, namespace, "httpbin", 8000) is None,
        timeout=90,
        what="orphan table removed by the restarted operator",
    )


def _quiet(cluster, namespace: str) -> None:
    """Wait until other tests' namespaces are gone, so no other table is changing."""

    def others():
        items = cluster.kubectl_json("namespaces")["items"]
        return [i["metadata"]["name"] for i in items if i["status"].get("phase") == "Terminating"]

    wait_until(lambda: not others(), timeout=120, what="no namespace terminating")
    wait_until(
        lambda: table_doc(cluster, "default", "httpbin", 8000) is None,
        timeout=30,
        what="no table left in default",
    )


def test_restart_writes_nothing_when_nothing_changed(cluster, namespace: str):
    _httpbin(cluster, namespace)
    _wait_endpoints(cluster, namespace, 3)
    _quiet(cluster, namespace)
    before = configmap_versions(cluster)
    old = {p["metadata"]["name"] for p in operator_pods(cluster)}
    cluster.kubectl(
        "delete", "pods", "-n", TABLES_NS, "-l", "app.kubernetes.io/name=tether-operator"
    )

    def restarted_and_synced():
        pods = [p for p in operator_pods(cluster, ready=True) if p["metadata"]["name"] not in old]
        return len(pods) == 2 and any(
            metric(p, "tether_operator_syncs_total", cluster) >= 1 for p in pods
        )

    wait_until(restarted_and_synced, timeout=90, what="new operator pods that have synced")
    assert configmap_versions(cluster) == before
    for pod in operator_pods(cluster):
        assert metric(pod, "tether_operator_configmap_writes_total", cluster) == 0, pod["metadata"][
            "name"
        ]


def test_two_replicas_only_one_acts(cluster, namespace: str):
    pods = wait_until(
        lambda: len(p := operator_pods(cluster, ready=True)) == 2 and p,
        timeout=90,
        what="two operator replicas",
    )
    _httpbin(cluster, namespace, replicas=1)
    _wait_endpoints(cluster, namespace, 1)
    base = {
        p["metadata"]["name"]: metric(p, "tether_operator_configmap_writes_total", cluster)
        for p in pods
    }
    for n in (2, 3):
        cluster.kubectl("scale", "deployment/httpbin", f"--replicas={n}", "-n", namespace)
        _wait_endpoints(cluster, namespace, n)
    grew = [
        p["metadata"]["name"]
        for p in pods
        if metric(p, "tether_operator_configmap_writes_total", cluster)
        > base[p["metadata"]["name"]]
    ]
    assert len(grew) == 1, f"replicas that wrote tables: {grew}"
