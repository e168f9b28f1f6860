"""Hash drain end to end (lab and kind): `tether gateway --hash-drain` keeps the keys of a pod
that is terminating but still serving on that pod and otherwise routes exactly as the
Envoy-exact default; a new visitor (the gateway generates its cookie) never goes to that pod.

A second gateway Deployment (`tether-gateway-hash-drain`, one replica, deploy/gateway's pod
spec plus `--hash-drain`, its own label) runs beside the default gateway; both route the seed
rule's cookie keys by the same published table. httpbin's pods sleep in a `preStop` hook for
40 s (see `test_session_drain`), so a deleted pod drains for that long.
"""

from __future__ import annotations

import secrets
import time

import pytest
import yaml

from tether.cli.demo_http import Answers, send_sessions
from tether.lab.testing import wait_until

from .deploy import ROOT, TABLES_NS, gateway_pods, is_ready, metrics, seed_rule, table_doc
from .test_session_drain import PRESTOP, endpoint_flags, prestop_manifest

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tether_gateway")]

NAME = "tether-gateway-hash-drain"
SELECTOR = f"app.kubernetes.io/name={NAME}"


def _drain_gateway() -> str:
    """deploy/gateway's Deployment as a one-replica `--hash-drain` gateway with its own name."""
    dep = yaml.safe_load((ROOT / "deploy" / "gateway" / "deployment.yaml").read_text())
    dep["metadata"] = {"name": NAME, "labels": {"app.kubernetes.io/name": NAME}}
    spec = dep["spec"]
    spec["replicas"] = 1
    spec["selector"] = {"matchLabels": {"app.kubernetes.io/name": NAME}}
    spec["template"]["metadata"]["labels"] = {"app.kubernetes.io/name": NAME}
    spec["template"]["spec"].pop("topologySpreadConstraints", None)
    spec["template"]["spec"]["containers"][0]["args"].append("--hash-drain")
    return yaml.safe_dump(dep, sort_keys=False)


def _drain_pod(cluster) -> dict | None:
    pods = cluster.kubectl_json("pods", "-n", TABLES_NS, "-l", SELECTOR)["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp") and is_ready(p)]
    return live[0] if live else None


def _pods(cluster, ip: str, host: str, cookies: list, answers: Answers) -> list[str]:
    """The pod each cookie's request (None: no cookie) reached through the gateway at ``ip``."""
    replies = send_sessions(ip, 8080, cookies, "/get", cluster.connect, {"Host": host})
    assert all(r.status == 200 for r in replies), [r.status for r in replies]
    return [r.pod for r in answers.resolve(replies)]


def _drain_picks(cluster, ip: str) -> float:
    samples = metrics({"status": {"podIP": ip}}, 9901, cluster)
    return sum(v for k, v in samples.items() if k.startswith("tether_gateway_drain_picks_total"))


def test_hash_drain_keeps_a_draining_pods_keys_and_nothing_else(cluster, namespace: str):
    cluster.apply(prestop_manifest(), namespace=namespace)
    cluster.apply(seed_rule(namespace))
    host = f"httpbin.{namespace}"
    wait_until(
        lambda: (d := table_doc(cluster, namespace, "httpbin", 8000))
        and d.policy.type == "consistentHash" and sum(e.ready for e in d.endpoints) == 3,
        timeout=180,
        what="the rule's table with 3 ready pods",
    )  # fmt: skip
    cluster.apply(_drain_gateway(), namespace=TABLES_NS)
    try:
        drain_ip = wait_until(lambda: _drain_pod(cluster), timeout=180,
                              what="a Ready --hash-drain gateway")["status"]["podIP"]  # fmt: skip
        plain_ip = gateway_pods(cluster)[0]["status"]["podIP"]
        ips = [drain_ip, plain_ip]
        drained, plain = Answers(cluster, selector=SELECTOR), Answers(cluster)
        keys = [f'sticky-session-key="{secrets.token_hex(8)}"' for _ in range(120)]
        wait_until(lambda: endpoint_flags(cluster, namespace, "", ips) is None, timeout=60,
                   what="both gateways routing by the same table")  # fmt: skip
        before = _pods(cluster, drain_ip, host, keys, drained)
        assert before == _pods(cluster, plain_ip, host, keys, plain)  # same table, same picks
        victim = before[0]
        cluster.kubectl("delete", "pod", victim, "-n", namespace, "--wait=false")
        deleted = time.monotonic()
        draining = {"ready": False, "serving": True, "terminating": True}
        wait_until(  # the replacement pod ready too: the table then holds until the drain ends
            lambda: endpoint_flags(cluster, namespace, victim, ips, ready=3) == draining,
            timeout=PRESTOP / 2,
            what=f"both gateways routing by a table with {victim} draining and 3 ready pods",
        )
        picks = _drain_picks(cluster, drain_ip)
        during = _pods(cluster, drain_ip, host, keys, drained)
        envoy = _pods(cluster, plain_ip, host, keys, plain)  # Envoy-exact: the current table
        # new visitors: the gateway generates their cookie, which never names a draining pod
        fresh_pods = _pods(cluster, drain_ip, host, [None] * 60, drained)
        window = time.monotonic() - deleted
        print(f"\nhash drain: checked {window:.1f} s after the deletion (drain {PRESTOP} s)")
        assert window < PRESTOP - 5, f"checked {window:.1f} s after the deletion: past the drain"
        for b, d, e in zip(before, during, envoy, strict=True):
            assert d == (victim if b == victim else e), (b, d, e)  # its keys stay, others as Envoy
        assert victim not in envoy and victim not in fresh_pods
        kept = before.count(victim)
        assert _drain_picks(cluster, drain_ip) - picks >= kept

        wait_until(lambda: endpoint_flags(cluster, namespace, victim, ips) is None,
                   timeout=PRESTOP + 60, what=f"the table without {victim}")  # fmt: skip
        after = _pods(cluster, drain_ip, host, keys, drained)
        assert after == _pods(cluster, plain_ip, host, keys, plain)  # drain over: Envoy-exact
        assert victim not in after
    finally:
        cluster.kubectl("delete", "deployment", NAME, "-n", TABLES_NS, "--wait=false", check=False)
