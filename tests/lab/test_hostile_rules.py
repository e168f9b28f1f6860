"""Hostile DestinationRules on a real control plane: each gets a status, nobody else waits.

A user applies rules Istio's CRD stores but that are costly to judge or to plan (a Maglev
``tableSize`` of 2^61-1, the largest ring Envoy accepts, a Maglev table just inside tether's
budget) for one Service, and right after scales another Service: that Service's table follows
as quickly as it did before, and ``kubectl get dr`` shows every hostile rule's verdict.
"""

from __future__ import annotations

import time

import pytest

from tether.lab import Lab
from tether.lab.testing import wait_until

from .tether_deploy import EXAMPLES, ready_condition, ready_endpoints, table_doc

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("tether_operator")]

HOSTILE = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: huge-prime}
spec:
  host: sink
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 2305843009213693951}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: envoy-max-ring}
spec:
  host: sink
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 8388608}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: big-maglev}
spec:
  host: sink
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 1999993}}
"""
SCALE_DEADLINE = 20.0  # the victim's table follows a scale in ~1-3 s; 2^61-1 alone took ~50 s


def _scale_and_time(lab: Lab, ns: str, replicas: int) -> float:
    """Scale the victim and return the seconds until its table shows the new endpoints."""
    start = time.monotonic()
    lab.kubectl("scale", "-n", ns, "deployment/httpbin", f"--replicas={replicas}")
    wait_until(
        lambda: ready_endpoints(table_doc(lab, ns, "httpbin", 8000)) == replicas,
        timeout=SCALE_DEADLINE,
        what=f"victim table with {replicas} ready endpoints",
    )
    return time.monotonic() - start


def _condition(lab: Lab, ns: str, name: str, reason: str) -> dict:
    return wait_until(
        lambda: (c := ready_condition(lab, ns, name)).get("reason") == reason and c,
        timeout=30,
        what=f"DestinationRule {name} Ready reason {reason}",
    )


def test_hostile_rules_get_a_status_and_never_delay_another_service(lab: Lab, namespace: str):
    ns = namespace
    httpbin = (EXAMPLES / "httpbin.yaml").read_text()
    lab.apply(httpbin, ns)
    lab.apply(httpbin.replace("httpbin", "sink"), ns)
    wait_until(
        lambda: ready_endpoints(table_doc(lab, ns, "sink", 8000)) == 3,
        timeout=60,
        what="sink's round-robin table",
    )
    wait_until(
        lambda: ready_endpoints(table_doc(lab, ns, "httpbin", 8000)) == 3,
        timeout=60,
        what="victim's round-robin table",
    )
    usual = _scale_and_time(lab, ns, 4)

    lab.apply(HOSTILE, ns)
    hostile = _scale_and_time(lab, ns, 5)  # right after the apply
    print(f"victim table after a scale: {usual:.2f} s before, {hostile:.2f} s with hostile rules")

    huge = _condition(lab, ns, "huge-prime", "Invalid")
    assert huge["status"] == "False"
    istio = "configuration is invalid: tableSize must be less than 5000011 for maglev"
    assert huge["message"] == istio
    ring = _condition(lab, ns, "envoy-max-ring", "Invalid")
    assert ring["message"].startswith("configuration is invalid: tables too large for tether: ")
    big = _condition(lab, ns, "big-maglev", "Published")
    assert big["status"] == "True"
    sink = table_doc(lab, ns, "sink", 8000)
    assert sink.policy.algorithm == "maglev" and sink.table.size == 1999993

    listing = lab.kubectl("get", "dr", "-n", ns)
    header = listing.splitlines()[0].split()
    assert header == ["NAME", "HOST", "AGE", "READY", "ALGORITHM", "ENDPOINTS", "MOVED"]
    rows = {line.split()[0]: line.split() for line in listing.splitlines()[1:]}
    assert rows["huge-prime"][3] == "False" and rows["big-maglev"][3] == "True"
