"""Decoding real Istio DestinationRule YAML: every served version, presence, Istio's encodings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tether.models.destinationrule import (
    DestinationRule,
    DestinationRuleParseError,
    PortTrafficPolicy,
    Subset,
    parse_destination_rule,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "destinationrules"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / name).read_text())


def rule(spec: dict[str, Any], version: str = "v1", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"networking.istio.io/{version}",
        "kind": "DestinationRule",
        "metadata": {"name": "r", "namespace": "ns", **meta},
        "spec": spec,
    }


def lb(**fields: Any) -> dict[str, Any]:
    return {"host": "h", "trafficPolicy": {"loadBalancer": fields}}


def test_seed_rule_parses_to_a_session_cookie() -> None:
    dr = parse_destination_rule(load("seed.yaml"))
    assert dr.api_version == "networking.istio.io/v1beta1"
    assert (dr.namespace, dr.name, dr.key) == ("default", "httpbin", "default/httpbin")
    cookie = dr.spec.traffic_policy.load_balancer.consistent_hash.http_cookie
    assert cookie.name == "sticky-session-key"
    assert cookie.ttl is not None and cookie.ttl.seconds == 0


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha3"])
def test_all_served_versions_decode_to_the_same_spec(version: str) -> None:
    spec = load("subsets.yaml")["spec"]
    parsed = parse_destination_rule(rule(spec, version))
    assert parsed.spec == parse_destination_rule(rule(spec)).spec


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"apiVersion": "networking.istio.io/v2", "kind": "DestinationRule", "spec": {}}, "v2"),
        ({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "spec": {}}, "kind"),
        ({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule"}, "spec: required"),
        ([], "not a mapping"),
    ],
)
def test_foreign_objects_are_refused(obj: Any, message: str) -> None:
    with pytest.raises(DestinationRuleParseError, match=message):
        parse_destination_rule(obj)


def test_absent_ttl_and_zero_ttl_differ() -> None:
    no_ttl = parse_destination_rule(load("cookie-no-ttl.yaml"))
    assert no_ttl.spec.traffic_policy.load_balancer.consistent_hash.http_cookie.ttl is None
    session = parse_destination_rule(load("seed.yaml"))
    assert session.spec.traffic_policy.load_balancer.consistent_hash.http_cookie.ttl is not None


def test_presence_is_kept_for_empty_messages() -> None:
    dr = parse_destination_rule(rule(lb(consistentHash={})))
    ch = dr.spec.traffic_policy.load_balancer.consistent_hash
    assert ch is not None and ch.hash_key_field is None
    empty = parse_destination_rule(rule({"host": "h", "trafficPolicy": {}}))
    assert empty.spec.traffic_policy is not None


def test_use_source_ip_false_is_a_present_key() -> None:
    dr = parse_destination_rule(rule(lb(consistentHash={"useSourceIp": False})))
    assert dr.spec.traffic_policy.load_balancer.consistent_hash.hash_key_field == "useSourceIp"


@pytest.mark.parametrize(
    ("value", "expected"), [(65537, 65537), ("65537", 65537), ("0", 0), (2**64 - 1, 2**64 - 1)]
)
def test_uint64_fields_take_integers_or_digit_strings(value: Any, expected: int) -> None:
    spec = lb(consistentHash={"maglev": {"tableSize": value}})
    dr = parse_destination_rule(rule(spec))
    assert dr.spec.traffic_policy.load_balancer.consistent_hash.maglev.table_size == expected
    ring = parse_destination_rule(rule(lb(consistentHash={"ringHash": {"minimumRingSize": value}})))
    assert (
        ring.spec.traffic_policy.load_balancer.consistent_hash.ring_hash.minimum_ring_size
        == expected
    )


@pytest.mark.parametrize("value", [-1, "-1", "+5", " 5", "1e3", "abc", 1.5, True, 2**64])
def test_uint64_fields_refuse_what_jsonpb_refuses(value: Any) -> None:
    # Istio's own text where Istio's decoder reports the value (Go's encoding/json words)
    with pytest.raises(DestinationRuleParseError, match=r"tableSize|Go value of type uint64"):
        parse_destination_rule(rule(lb(consistentHash={"maglev": {"tableSize": value}})))


def test_durations_must_be_go_duration_strings() -> None:
    with pytest.raises(DestinationRuleParseError) as number:
        parse_destination_rule(rule(lb(consistentHash={"httpCookie": {"name": "c", "ttl": 10}})))
    assert str(number.value) == "json: cannot unmarshal number into Go value of type string"
    with pytest.raises(DestinationRuleParseError) as unit:
        parse_destination_rule(rule(lb(consistentHash={"httpCookie": {"name": "c", "ttl": "1d"}})))
    assert str(unit.value) == 'bad Duration: time: unknown unit "d" in duration "1d"'


@pytest.mark.parametrize(
    ("field", "expected"), [("LEAST_CONN", "LEAST_CONN"), (4, "ROUND_ROBIN"), (0, "UNSPECIFIED")]
)
def test_simple_accepts_enum_names_and_numbers(field: Any, expected: str) -> None:
    dr = parse_destination_rule(rule(lb(simple=field)))
    assert dr.spec.traffic_policy.load_balancer.simple == expected


def test_unknown_simple_names_are_refused() -> None:
    with pytest.raises(DestinationRuleParseError, match="unknown SimpleLB 'FASTEST'"):
        parse_destination_rule(rule(lb(simple="FASTEST")))


@pytest.mark.parametrize(
    "fields",
    [
        {"simple": "RANDOM", "consistentHash": {}},
        {"consistentHash": {"httpHeaderName": "a", "httpQueryParameterName": "b"}},
        {"consistentHash": {"ringHash": {}, "maglev": {"tableSize": 3}}},
    ],
)
def test_oneof_groups_allow_at_most_one_key(fields: dict[str, Any]) -> None:
    with pytest.raises(DestinationRuleParseError, match="only one of"):
        parse_destination_rule(rule(lb(**fields)))


def test_unknown_and_uninterpreted_fields_are_preserved() -> None:
    raw = load("full-istio.yaml")
    raw["spec"]["futureField"] = {"x": 1}
    raw["spec"]["trafficPolicy"]["loadBalancer"]["consistentHash"]["futureKnob"] = True
    dr = parse_destination_rule(raw)
    dumped = dr.model_dump(mode="json", exclude_defaults=True)
    assert dumped["spec"]["futureField"] == {"x": 1}
    assert dumped["spec"]["trafficPolicy"]["loadBalancer"]["consistentHash"]["futureKnob"] is True
    assert (
        dumped["spec"]["trafficPolicy"]["connectionPool"]
        == raw["spec"]["trafficPolicy"]["connectionPool"]
    )
    assert dumped["spec"]["trafficPolicy"]["loadBalancer"]["warmup"] == {
        "duration": "30s",
        "minimumPercent": 20.0,
        "aggression": 1.5,
    }


def test_json_nulls_read_as_absent_lists_and_maps() -> None:
    dr = parse_destination_rule(
        rule(
            {
                "host": "h",
                "subsets": None,
                "exportTo": None,
                "workloadSelector": {"matchLabels": None},
            }
        )
    )
    assert dr.spec.subsets == () and dr.spec.export_to == ()
    assert dr.spec.workload_selector.match_labels == {}


def test_null_scalars_read_as_unset() -> None:
    dr = parse_destination_rule(
        rule(lb(consistentHash={"httpHeaderName": None, "maglev": {"tableSize": None}}))
    )
    ch = dr.spec.traffic_policy.load_balancer.consistent_hash
    assert ch.http_header_name is None and ch.maglev.table_size == 0


def test_null_list_items_decode_as_zero_values_as_in_jsonpb() -> None:
    dr = parse_destination_rule(
        rule(
            {
                "host": "h",
                "subsets": [None],
                "exportTo": [None],
                "trafficPolicy": {"portLevelSettings": [None]},
            }
        )
    )
    assert dr.spec.subsets == (Subset(),)
    assert dr.spec.export_to == ("",)
    assert dr.spec.traffic_policy.port_level_settings == (PortTrafficPolicy(),)


def test_decode_errors_name_every_bad_field() -> None:
    with pytest.raises(DestinationRuleParseError) as exc:
        parse_destination_rule(
            rule(
                {
                    "host": "h",
                    "subsets": [{"name": "a", "labels": {"version": 1}}],
                    "trafficPolicy": {"loadBalancer": {"simple": "NOPE"}},
                }
            )
        )
    text = str(exc.value)
    assert "spec.subsets[0].labels.version" in text
    assert "spec.trafficPolicy.loadBalancer.simple" in text


def test_port_policy_is_the_first_match() -> None:
    dr = parse_destination_rule(load("port-level.yaml"))
    entry = dr.spec.traffic_policy.port_policy(8080)
    assert entry.load_balancer.consistent_hash.http_header_name == "x-session"
    assert dr.spec.traffic_policy.port_policy(1) is None


def test_metadata_keeps_identity_and_annotations() -> None:
    raw = load("tether-annotations.yaml")
    raw["metadata"] |= {"uid": "u-1", "generation": 3, "creationTimestamp": "2024-05-01T10:00:00Z"}
    dr = parse_destination_rule(raw)
    assert dr.metadata.generation == 3 and dr.metadata.uid == "u-1"
    assert dr.metadata.creation_timestamp.year == 2024
    assert dr.metadata.annotations["tether.dev/hash-balance-factor"] == "150"
    assert isinstance(dr, DestinationRule)
