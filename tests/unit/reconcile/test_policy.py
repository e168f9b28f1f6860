"""Effective load balancer and the published Policy, per Istio's precedence and Envoy translation.

Fixture expectations (tests/fixtures/destinationrules/expected.yaml) are written from Istio's
MergeTrafficPolicy / HashForHTTPDestination and envoy-hashing.md §9, not from tether's code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tether.models.destinationrule import DestinationRule, parse_destination_rule
from tether.models.table import HashKey, Policy
from tether.models.validation import validate
from tether.reconcile.policy import (
    auto_maglev_table_size,
    effective_load_balancer,
    merge_rules,
    resolve_host,
    resolve_policy,
    service_policy,
    to_policy,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "destinationrules"
EXPECTED = yaml.safe_load((FIXTURES / "expected.yaml").read_text())
CASES = [(name, case) for name, e in EXPECTED.items() for case in e.get("policies", ())]


def load(name: str) -> DestinationRule:
    return parse_destination_rule(yaml.safe_load((FIXTURES / name).read_text()))


def rule(spec: dict[str, Any], **meta: Any) -> DestinationRule:
    return parse_destination_rule(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "r", "namespace": "ns", **meta},
            "spec": {"host": "h", **spec},
        }
    )


def policy_for(dr: DestinationRule, port: int, subset: str | None = None) -> Policy:
    merged = merge_rules([dr], resolve_host(dr.spec.host, dr.namespace))
    return to_policy(effective_load_balancer(merged, port, subset), merged.annotations(subset))


@pytest.mark.parametrize(
    ("name", "case"), CASES, ids=[f"{n}:{c['port']}:{c.get('subset')}" for n, c in CASES]
)
def test_fixture_policies(name: str, case: dict[str, Any]) -> None:
    dr = load(name)
    assert validate(dr).valid
    assert resolve_host(dr.spec.host, dr.namespace) == EXPECTED[name]["host"]
    got = policy_for(dr, case["port"], case.get("subset"))
    assert got == Policy.model_validate(case["policy"])


def test_seed_rule_publishes_a_session_cookie_on_a_1024_ring() -> None:
    policy = policy_for(load("seed.yaml"), 80)
    assert policy.type == "consistentHash"
    assert (policy.algorithm, policy.min_ring_size, policy.hash_function) == (
        "ring-hash",
        1024,
        "xx-hash",
    )
    assert policy.hash_key == HashKey(kind="cookie", name="sticky-session-key", ttlSeconds=0)


def test_no_rule_means_istios_default_simple_policy() -> None:
    assert to_policy(effective_load_balancer(None, 80)) == Policy(
        type="simple", simple="LEAST_REQUEST"
    )


@pytest.mark.parametrize(
    ("lb", "expected"),
    [
        ({"simple": "UNSPECIFIED"}, "LEAST_REQUEST"),
        ({"simple": "LEAST_CONN"}, "LEAST_REQUEST"),
        ({"simple": "LEAST_REQUEST"}, "LEAST_REQUEST"),
        ({"simple": "RANDOM"}, "RANDOM"),
        ({"simple": "ROUND_ROBIN"}, "ROUND_ROBIN"),
        ({"simple": "PASSTHROUGH"}, "PASSTHROUGH"),
        ({"localityLbSetting": {"enabled": False}}, "LEAST_REQUEST"),
        ({"backendUtilization": {}}, "ROUND_ROBIN"),
    ],
)
def test_simple_policies(lb: dict[str, Any], expected: str) -> None:
    dr = rule({"trafficPolicy": {"loadBalancer": lb}})
    assert policy_for(dr, 80) == Policy(type="simple", simple=expected)


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [("0s", 0), ("10s", 10), ("1.9s", 1), ("90m", 5400), ("-5s", -5), ("500ms", 0)],
)
def test_cookie_ttl_becomes_whole_seconds_like_envoy(ttl: str, seconds: int) -> None:
    dr = rule(
        {
            "trafficPolicy": {
                "loadBalancer": {"consistentHash": {"httpCookie": {"name": "c", "ttl": ttl}}}
            }
        }
    )
    assert policy_for(dr, 80).hash_key.ttl_seconds == seconds


def test_use_source_ip_false_and_missing_key_hash_nothing() -> None:
    for ch in ({"useSourceIp": False}, {}, {"ringHash": {"minimumRingSize": 16}}):
        policy = policy_for(rule({"trafficPolicy": {"loadBalancer": {"consistentHash": ch}}}), 80)
        assert policy.type == "consistentHash" and policy.hash_key is None


def test_deprecated_ring_size_only_counts_without_an_algorithm() -> None:
    dr = rule({"trafficPolicy": {"loadBalancer": {"consistentHash": {"minimumRingSize": "4096"}}}})
    assert policy_for(dr, 80).min_ring_size == 4096


def test_maglev_table_size_zero_means_envoys_default() -> None:
    # Invalid for Istio's webhook, but this is what Istio would hand Envoy if it got through.
    dr = rule({"trafficPolicy": {"loadBalancer": {"consistentHash": {"maglev": {}}}}})
    assert policy_for(dr, 80).table_size == 65537


# -- precedence edge cases ----------------------------------------------------------------------


def test_port_entry_without_load_balancer_resets_to_defaults_not_top_level() -> None:
    dr = rule(
        {
            "trafficPolicy": {
                "loadBalancer": {"consistentHash": {"httpHeaderName": "x"}},
                "portLevelSettings": [{"port": {"number": 8080}, "tls": {"mode": "SIMPLE"}}],
            }
        }
    )
    # Cluster: port entry replaces loadBalancer with nothing -> LEAST_REQUEST; the route still
    # carries the top-level hash policy, which Envoy ignores on a non-hash cluster.
    assert policy_for(dr, 8080) == Policy(type="simple", simple="LEAST_REQUEST")
    eff = effective_load_balancer(merge_rules([dr]), 8080)
    assert eff.hash is not None and eff.hash.http_header_name == "x"


def test_subset_overrides_field_by_field_and_inherits_the_rest() -> None:
    dr = rule(
        {
            "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpHeaderName": "x"}}},
            "subsets": [{"name": "a", "trafficPolicy": {"tls": {"mode": "SIMPLE"}}}],
        }
    )
    assert policy_for(dr, 80, "a").hash_key == HashKey(kind="header", name="x")


def test_subset_algorithm_with_inherited_key_source() -> None:
    # Subset sets a keyless consistentHash: it is the first non-nil one, so nothing is hashed.
    dr = rule(
        {
            "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpHeaderName": "x"}}},
            "subsets": [
                {
                    "name": "a",
                    "trafficPolicy": {
                        "loadBalancer": {"consistentHash": {"maglev": {"tableSize": 7}}}
                    },
                }
            ],
        }
    )
    policy = policy_for(dr, 80, "a")
    assert (policy.algorithm, policy.table_size, policy.hash_key) == ("maglev", 7, None)


def test_port_level_hash_is_honoured_without_a_virtual_service() -> None:
    dr = rule(
        {
            "trafficPolicy": {
                "loadBalancer": {"simple": "ROUND_ROBIN"},
                "portLevelSettings": [
                    {
                        "port": {"number": 9000},
                        "loadBalancer": {"consistentHash": {"httpHeaderName": "p"}},
                    }
                ],
            }
        }
    )
    assert policy_for(dr, 9000).hash_key == HashKey(kind="header", name="p")
    assert policy_for(dr, 80).type == "simple"


def test_effective_origin_is_reported() -> None:
    merged = merge_rules([load("subsets.yaml")])
    assert effective_load_balancer(merged, 80).origin == "top level"
    assert effective_load_balancer(merged, 9080).origin == "port 9080"
    assert effective_load_balancer(merged, 80, "v2").origin == "subset v2"
    assert effective_load_balancer(merged, 9080, "v3").origin == "subset v3 port 9080"


def test_unknown_subset_is_an_error() -> None:
    with pytest.raises(KeyError):
        effective_load_balancer(merge_rules([load("subsets.yaml")]), 80, "v9")


# -- tether extensions ------------------------------------------------------------------------


def test_balance_factor_and_ketama_and_auto_size() -> None:
    ketama = policy_for(load("ketama.yaml"), 11211)
    assert (ketama.algorithm, ketama.min_ring_size, ketama.table_size) == ("ketama", None, None)
    auto = policy_for(load("tether-annotations.yaml"), 80)
    assert auto.table_size is None and auto.hash_balance_factor == 150
    assert resolve_policy(auto, 3).table_size == 65537
    assert resolve_policy(auto, 1000).table_size == auto_maglev_table_size(1000) > 100_000


def test_balance_factor_ignored_for_simple_policies() -> None:
    dr = rule(
        {"trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}},
        annotations={"tether.dev/hash-balance-factor": "150"},
    )
    assert policy_for(dr, 80) == Policy(type="simple", simple="RANDOM")


def test_to_policy_refuses_bad_annotations() -> None:
    eff = effective_load_balancer(merge_rules([load("seed.yaml")]), 80)
    with pytest.raises(ValueError, match="hash-balance-factor"):
        to_policy(eff, {"tether.dev/hash-balance-factor": "99"})


def _prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


@pytest.mark.parametrize("n", [0, 1, 3, 100, 655])
def test_auto_maglev_table_size_stays_at_envoys_default_up_to_655_endpoints(n: int) -> None:
    assert auto_maglev_table_size(n) == 65537  # scale events below a step never resize


def test_auto_maglev_table_size_climbs_a_fixed_ladder() -> None:
    step = auto_maglev_table_size(1000)
    assert _prime(step) and step >= 100_000 and step >= 2 * 65537
    assert auto_maglev_table_size(1200) == step  # same step, same table size
    assert all(not _prime(c) for c in range(2 * 65537, step))  # the first prime of that step
    assert auto_maglev_table_size(50_000) == 5000011  # Envoy's maximum table size


def test_resolve_policy_leaves_fixed_sizes_alone() -> None:
    fixed = policy_for(load("maglev-cookie.yaml"), 80)
    assert resolve_policy(fixed, 1000) == fixed


def test_service_policy_selects_merges_and_translates() -> None:
    seed = load("seed.yaml")
    result = service_policy([seed, load("ring-hash-header.yaml")], "default", "httpbin", 80)
    assert result.policy.hash_key == HashKey(kind="cookie", name="sticky-session-key", ttlSeconds=0)
    assert result.source is seed and result.shadowed == ()
    none = service_policy([seed], "default", "other", 80)
    assert none == service_policy([], "default", "other", 80)
    assert (none.policy, none.merged, none.source) == (
        Policy(type="simple", simple="LEAST_REQUEST"),
        None,
        None,
    )
