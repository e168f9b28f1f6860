"""Rules indexed by host give the same rules per Service as scanning every rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.reconcile.hosts import rules_for_service
from tether.reconcile.rule_index import RuleIndex

from .cluster_fakes import rule

NAMESPACES = ["default", "prod", "istio-system"]
SERVICES = ["a", "b", "web"]
HOSTS = [
    "a",
    "b",
    "web.prod",
    "a.default.svc.cluster.local",
    "web.prod.svc.cluster.local",
    "*.prod.svc.cluster.local",
    "*",
    "*.svc.cluster.local",
    "b.prod.svc.cluster.local",
]

SPEC = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "spec": {"trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}}  # fmt: skip


def _rule(i: int, ns: str, host: str):
    obj = {**SPEC, "spec": {**SPEC["spec"], "host": host}}
    return rule(obj, name=f"r{i}", namespace=ns)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(HOSTS)), max_size=8))
def test_candidates_give_the_rules_a_full_scan_gives(specs):
    rules = [_rule(i, ns, host) for i, (ns, host) in enumerate(specs)]
    index = RuleIndex()
    for r in rules:
        index.put(r)
    for ns in NAMESPACES:
        for name in SERVICES:
            full = rules_for_service([r.rule for r in rules], ns, name)
            fast = rules_for_service([r.rule for r in index.candidates(ns, name)], ns, name)
            assert [r.key for r in fast] == [r.key for r in full]


def test_services_of_host_and_removal():
    index = RuleIndex()
    index.put(_rule(1, "default", "a"))
    index.put(_rule(2, "prod", "*.prod.svc.cluster.local"))
    assert index.services_of_host("a.default.svc.cluster.local", list) == [("default", "a")]
    svcs = [("prod", "web"), ("default", "a")]
    assert index.services_of_host("*.prod.svc.cluster.local", lambda: svcs) == [("prod", "web")]
    index.remove("default/r1")
    assert [r.key for r in index.candidates("default", "a")] == ["prod/r2"]
    index.remove("prod/r2")
    assert len(index) == 0 and index.candidates("default", "a") == []
