"""Host resolution, DR-to-Service matching and multi-DR merge, as Istio defines them."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tether.models.destinationrule import DestinationRule, parse_destination_rule
from tether.reconcile.policy import (
    host_matches,
    merge_rules,
    resolve_host,
    rules_for_service,
    service_host,
)


def dr(
    name: str,
    host: str,
    namespace: str = "default",
    created: str | None = "2024-01-01T00:00:00Z",
    **spec: Any,
) -> DestinationRule:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if created:
        meta["creationTimestamp"] = created
    return parse_destination_rule(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": meta,
            "spec": {"host": host, **spec},
        }
    )


def lb(header: str) -> dict[str, Any]:
    return {"loadBalancer": {"consistentHash": {"httpHeaderName": header}}}


@pytest.mark.parametrize(
    ("host", "namespace", "domain", "expected"),
    [
        ("reviews", "default", "cluster.local", "reviews.default.svc.cluster.local"),
        ("reviews", "prod", "corp.example", "reviews.prod.svc.corp.example"),
        ("reviews.prod", "default", "cluster.local", "reviews.prod"),
        ("reviews.prod.svc.cluster.local", "x", "cluster.local", "reviews.prod.svc.cluster.local"),
        ("*", "default", "cluster.local", "*"),
        ("*.prod.svc.cluster.local", "x", "cluster.local", "*.prod.svc.cluster.local"),
        ("10.0.0.1", "default", "cluster.local", "10.0.0.1"),
        ("::1", "default", "cluster.local", "::1"),
        ("reviews", "default", "", "reviews.default"),
        ("", "default", "cluster.local", ""),
    ],
)
def test_resolve_host_like_istio(host: str, namespace: str, domain: str, expected: str) -> None:
    assert resolve_host(host, namespace, domain) == expected


def test_service_host() -> None:
    assert (
        service_host("default", "httpbin", "cluster.local") == "httpbin.default.svc.cluster.local"
    )


@pytest.mark.parametrize(
    ("rule_host", "matches"),
    [
        ("httpbin.default.svc.cluster.local", True),
        ("*.default.svc.cluster.local", True),
        ("*.svc.cluster.local", True),
        ("*", True),
        ("*bin.default.svc.cluster.local", True),
        ("*.other.svc.cluster.local", False),
        ("httpbin.default", False),
        ("httpbin", False),
    ],
)
def test_host_matches(rule_host: str, matches: bool) -> None:
    assert host_matches(rule_host, "httpbin.default.svc.cluster.local") is matches


def test_rules_for_service_prefers_exact_then_longest_wildcard() -> None:
    exact = dr("exact", "httpbin")
    wide = dr("wide", "*.svc.cluster.local")
    narrow = dr("narrow", "*.default.svc.cluster.local")
    assert rules_for_service([wide, narrow, exact], "default", "httpbin") == [exact]
    assert rules_for_service([wide, narrow], "default", "httpbin") == [narrow]
    assert rules_for_service([wide], "default", "other") == [wide]


def test_rules_for_service_returns_every_rule_of_the_winning_host() -> None:
    a = dr("a", "httpbin")
    b = dr("b", "httpbin.default.svc.cluster.local")
    assert sorted(r.name for r in rules_for_service([a, b], "default", "httpbin")) == ["a", "b"]


def test_rules_for_service_namespaces() -> None:
    other_ns = dr("client-side", "httpbin.default.svc.cluster.local", namespace="team-a")
    root = dr("mesh-wide", "*.default.svc.cluster.local", namespace="istio-system")
    short_elsewhere = dr("short", "httpbin", namespace="team-a")  # -> httpbin.team-a...
    assert rules_for_service([other_ns, short_elsewhere], "default", "httpbin") == []
    assert rules_for_service([other_ns, root], "default", "httpbin") == [root]
    assert rules_for_service([root], "default", "httpbin", root_namespace=None) == []
    local = dr("local", "*", namespace="default")
    assert rules_for_service([root, local], "default", "httpbin") == [local]


def test_workload_selector_rules_do_not_apply_to_the_gateway() -> None:
    selected = dr("sel", "httpbin", workloadSelector={"matchLabels": {"app": "client"}})
    assert rules_for_service([selected], "default", "httpbin") == []


def test_rules_for_service_honours_the_cluster_domain() -> None:
    r = dr("a", "httpbin")
    assert rules_for_service([r], "default", "httpbin", domain="corp.example") == [r]
    fqdn = dr("b", "httpbin.default.svc.cluster.local")
    assert rules_for_service([fqdn], "default", "httpbin", domain="corp.example") == []


# -- merge ------------------------------------------------------------------------------------


def test_merge_of_nothing_is_none() -> None:
    assert merge_rules([]) is None


def test_oldest_policy_wins_whole_and_newer_ones_are_shadowed() -> None:
    old = dr("old", "h", created="2024-01-01T00:00:00Z", trafficPolicy=lb("old"))
    new = dr("new", "h", created="2024-06-01T00:00:00Z", trafficPolicy=lb("new"))
    merged = merge_rules([new, old], "h.default.svc.cluster.local")
    assert merged.host == "h.default.svc.cluster.local"
    assert merged.traffic_policy.load_balancer.consistent_hash.http_header_name == "old"
    assert merged.policy_rule.name == "old" and merged.primary.name == "old"
    assert [(s.rule, s.part, s.winner) for s in merged.shadowed] == [
        ("default/new", "trafficPolicy", "default/old")
    ]


def test_policy_comes_from_the_first_rule_that_has_one() -> None:
    subsets_only = dr("a", "h", created="2024-01-01T00:00:00Z", subsets=[{"name": "v1"}])
    with_policy = dr("b", "h", created="2024-02-01T00:00:00Z", trafficPolicy=lb("b"))
    merged = merge_rules([with_policy, subsets_only])
    assert merged.policy_rule.name == "b"
    assert merged.source() is with_policy and merged.source("v1") is subsets_only
    assert merged.shadowed == ()


def test_subsets_concatenate_by_name_first_definition_wins() -> None:
    a = dr("a", "h", created="2024-01-01T00:00:00Z", subsets=[{"name": "v1", "labels": {"v": "1"}}])
    b = dr(
        "b",
        "h",
        created="2024-01-02T00:00:00Z",
        subsets=[{"name": "v1", "labels": {"v": "other"}}, {"name": "v2", "labels": {"v": "2"}}],
    )
    merged = merge_rules([b, a])
    assert [(s.name, s.labels) for s in merged.subsets] == [("v1", {"v": "1"}), ("v2", {"v": "2"})]
    assert merged.subset("v1").labels == {"v": "1"} and merged.subset("v3") is None
    assert [(s.rule, s.part) for s in merged.shadowed] == [("default/b", "subset v1")]
    assert merged.source("v2") is b


def test_ties_break_by_name_then_namespace_and_order_never_matters() -> None:
    same = "2024-01-01T00:00:00Z"
    rules = [
        dr("b", "h", created=same, trafficPolicy=lb("b")),
        dr("a", "h", namespace="zz", created=same, trafficPolicy=lb("a-zz")),
        dr("a", "h", namespace="aa", created=same, trafficPolicy=lb("a-aa")),
    ]
    for perm in itertools.permutations(rules):
        merged = merge_rules(perm)
        assert merged.traffic_policy.load_balancer.consistent_hash.http_header_name == "a-aa"
        assert [r.key for r in merged.rules] == ["aa/a", "zz/a", "default/b"]


def test_rules_without_timestamp_sort_last() -> None:
    dated = dr("z", "h", created="2030-01-01T00:00:00Z", trafficPolicy=lb("dated"))
    undated = dr("a", "h", created=None, trafficPolicy=lb("undated"))
    assert merge_rules([undated, dated]).policy_rule.name == "z"


def test_annotations_follow_the_source_rule() -> None:
    old = dr("old", "h", created="2024-01-01T00:00:00Z", trafficPolicy=lb("x"))
    raw_new = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {
            "name": "new",
            "namespace": "default",
            "creationTimestamp": "2024-02-01T00:00:00Z",
            "annotations": {"tether.dev/algorithm": "ketama"},
        },
        "spec": {"host": "h", "subsets": [{"name": "k"}]},
    }
    merged = merge_rules([old, parse_destination_rule(raw_new)])
    assert merged.annotations() == {}
    assert merged.annotations("k") == {"tether.dev/algorithm": "ketama"}
