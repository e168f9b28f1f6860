"""Graceful session drain end to end (lab and kind): a pod that is terminating but still
serving keeps its sessions and gets no new ones; once it is gone its sessions move, once.

The pods sleep in a `preStop` hook (Kubernetes' `sleep` action) before they are told to stop,
as the README advises for drain: a real kubelet keeps such a pod Ready while it sleeps, so its
EndpointSlice endpoint is `serving: true, terminating: true, ready: false`; the lab's kubelet
emulates the hook. The test checks what a user of a shopping cart would: during that window
every session of the pod still reaches it, and new visitors never do.
"""

from __future__ import annotations

import time

import pytest
import yaml

from tether.lab.testing import wait_until

from .chaos import gateway_status, table_name
from .deploy import EXAMPLES, gateway_pods, table_doc
from .test_sessions import _again, _open, _setup

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tether_gateway")]

PRESTOP = 40  # s the pods keep serving after deletion (the drain window)


def prestop_manifest() -> str:
    """deploy/examples/httpbin.yaml with a preStop sleep of PRESTOP s in a longer grace."""
    docs = list(yaml.safe_load_all((EXAMPLES / "httpbin.yaml").read_text()))
    for doc in docs:
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]
            pod["terminationGracePeriodSeconds"] = PRESTOP + 15
            for c in pod["containers"]:
                c["lifecycle"] = {"preStop": {"sleep": {"seconds": PRESTOP}}}
    return yaml.safe_dump_all(docs, sort_keys=False)


def endpoint_flags(
    cluster, ns: str, pod: str, gateway_ips: list[str], ready: int | None = None
) -> dict | bool | None:
    """``pod``'s endpoint flags (ready, serving, terminating) in ns/httpbin's published table
    once every gateway replica at ``gateway_ips`` routes by that document (and, if ``ready`` is
    given, the document lists that many ready endpoints); None when the table does not list
    the pod; False while a replica routes by another document."""
    doc = table_doc(cluster, ns, "httpbin", 8000)
    if doc is None or (ready is not None and sum(e.ready for e in doc.endpoints) != ready):
        return False
    for ip in gateway_ips:
        if gateway_status(cluster, {"status": {"podIP": ip}})["tables"].get(table_name(ns)) != (
            doc.checksum
        ):
            return False
    ep = next((e for e in doc.endpoints if e.pod == pod), None)
    if ep is None:
        return None
    return {"ready": ep.ready, "serving": ep.serving, "terminating": ep.terminating}


def _replicas(cluster) -> list[str]:
    return [p["status"]["podIP"] for p in gateway_pods(cluster)]


def test_a_draining_pod_keeps_its_sessions_and_gets_no_new_ones(cluster, namespace: str):
    gw, host = _setup(cluster, namespace, manifest=prestop_manifest())
    clients = _open(gw, host, 150)
    victim = clients[0].pods[0]
    mine = [c for c in clients if c.pods[0] == victim]
    others = [c for c in clients if c.pods[0] != victim]
    assert mine and others
    cluster.kubectl("delete", "pod", victim, "-n", namespace, "--wait=false")
    deleted = time.monotonic()
    draining = {"ready": False, "serving": True, "terminating": True}
    wait_until(
        lambda: endpoint_flags(cluster, namespace, victim, _replicas(cluster)) == draining,
        timeout=PRESTOP / 2,
        what=f"every gateway replica routing by a table with {victim} draining",
    )

    _again(gw, host, clients)  # while it drains
    fresh = _open(gw, host, 60)
    window = time.monotonic() - deleted
    print(f"\nsession drain: checked {window:.1f} s after the deletion (drain {PRESTOP} s)")
    assert window < PRESTOP - 5, f"checked {window:.1f} s after the deletion: past the drain"
    assert [c.pods[-1] for c in mine] == [victim] * len(mine)  # its sessions stay
    assert all(set(c.pods) == {c.pods[0]} for c in others)
    assert victim not in {c.pods[0] for c in fresh}  # no new session goes there

    wait_until(
        lambda: endpoint_flags(cluster, namespace, victim, _replicas(cluster)) is None,
        timeout=PRESTOP + 60,
        what=f"the table without {victim}",
    )
    _again(gw, host, clients)
    for c in mine:  # moved once, to a pod that stays
        assert c.pods[-1] != victim and c.moves == 1, c.pods
    assert all(set(c.pods) == {c.pods[0]} for c in others)
