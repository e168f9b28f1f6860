"""Istio's webhook rules for DestinationRules: same verdicts, messages and error/warning split.

Expected messages come from Istio's validation (shared/reference/istio-destinationrule.md §3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tether.models.destinationrule import parse_destination_rule
from tether.models.validation import check, validate

FIXTURES = Path(__file__).parents[2] / "fixtures" / "destinationrules"
EXPECTED = yaml.safe_load((FIXTURES / "expected.yaml").read_text())
DEPRECATED = (
    "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash "
    "configuration instead"
)


def rule(spec: dict[str, Any], namespace: str = "ns", **meta: Any) -> Any:
    return parse_destination_rule(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "r", "namespace": namespace, **meta},
            "spec": {"host": "h", **spec},
        }
    )


def with_lb(**fields: Any) -> Any:
    return rule({"trafficPolicy": {"loadBalancer": fields}})


def errors(dr: Any) -> list[str]:
    return list(validate(dr).errors)


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if "errors" in e])
def test_fixture_verdicts_match_istio(name: str) -> None:
    expected = EXPECTED[name]
    dr, result = check(yaml.safe_load((FIXTURES / name).read_text()))
    assert dr is not None
    assert list(result.errors) == expected["errors"]
    assert list(result.warnings) == expected["warnings"]
    assert result.valid is (not expected["errors"])
    if "message" in expected:
        assert result.message == expected["message"]


def test_undecodable_rule_reports_like_istios_webhook() -> None:
    dr, result = check(yaml.safe_load((FIXTURES / "invalid-two-hash-keys.yaml").read_text()))
    assert dr is None and not result.valid
    assert result.message.startswith("error decoding configuration: ")
    assert EXPECTED["invalid-two-hash-keys.yaml"]["decode_error"] in result.message


def test_single_plain_error_prints_bare_and_valid_prints_nothing() -> None:
    result = validate(with_lb(consistentHash={"maglev": {"tableSize": 4}}))
    assert result.message == "configuration is invalid: tableSize must be a prime number for maglev"
    ok = validate(with_lb(simple="RANDOM"))
    assert ok.valid and ok.message == "" and ok.error_text == ""


def test_several_errors_print_as_go_multierror() -> None:
    result = validate(rule({"host": "", "trafficPolicy": {}}))
    assert result.error_text == (
        "2 errors occurred:\n\t* empty domain name not allowed\n"
        "\t* traffic policy must have at least one field\n\n"
    )


# -- host (#1-#4) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "httpbin",
        "httpbin.default.svc.cluster.local",
        "*",
        "*.example.com",
        "*-foo.example.com",
        "*foo.example.com",
        "Reviews.Prod.SVC.cluster.local",
        "istio.io.",
        "a." + "b" * 63 + ".com",
        "x.99999999999999999999",  # Go's Atoi overflows, so not "all-numeric"
    ],
)
def test_hosts_istio_accepts(host: str) -> None:
    assert errors(rule({"host": host})) == []


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("", "empty domain name not allowed"),
        ("a" * 256, f'domain name "{"a" * 256}" too long (max 255)'),
        ("foo*.example.com", 'domain name "foo*.example.com" invalid (label "foo*" invalid)'),
        ("*.*.example.com", 'domain name "*.example.com" invalid (label "*" invalid)'),
        ("1.2.3.4", 'domain name "2.3.4" invalid (top level domain "4" cannot be all-numeric)'),
        ("a.b.-1", 'domain name "b.-1" invalid (top level domain "-1" cannot be all-numeric)'),
        ("a..b", 'domain name ".b" invalid (label "" invalid)'),
        ("a.b-.c", 'domain name "b-.c" invalid (label "b-" invalid)'),
        ("x" * 64, f'domain name "{"x" * 64}" invalid (label "{"x" * 64}" invalid)'),
        ('a.b"c.d', 'domain name "b\\"c.d" invalid (label "b\\"c" invalid)'),
    ],
)
def test_hosts_istio_rejects(host: str, message: str) -> None:
    assert errors(rule({"host": host})) == [message]


# -- subsets (#5-#10) ------------------------------------------------------------------------


def test_null_subset_and_subset_rules() -> None:
    dr = rule(
        {
            "subsets": [
                None,
                {"name": ""},
                {"name": "v1.0"},
                {"name": "V1"},
                {"name": "V1"},
                {"name": "ok", "labels": {"app.kubernetes.io/name": "x", "v": ""}},
            ]
        }
    )
    assert errors(dr) == [
        "subset name cannot be empty",  # the null subset: jsonpb decodes it as an empty one
        "duplicate subset names: ",
        "subset name cannot be empty",
        "subset name is invalid: v1.0",
        "duplicate subset names: V1",
    ]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("-bad", "v", ['invalid tag key: "-bad"']),
        ("ok", "-bad", ['invalid tag value: "-bad"']),
        ("k" * 64, "v", [f'invalid tag key: "{"k" * 64}" (name is too long)']),
        ("a" * 254 + "/k", "v", [f'invalid tag key: "{"a" * 254}/k" (DNS prefix is too long)']),
        ("ok", "v" * 100, []),  # Istio does not check the value's length
        ("", "v", ['invalid tag key: ""']),
    ],
)
def test_subset_label_rules(key: str, value: str, expected: list[str]) -> None:
    assert errors(rule({"subsets": [{"name": "s", "labels": {key: value}}]})) == expected


def test_subset_policy_is_validated_but_its_warnings_are_dropped() -> None:
    dr = rule(
        {
            "subsets": [
                {
                    "name": "s",
                    "trafficPolicy": {
                        "loadBalancer": {
                            "consistentHash": {"minimumRingSize": 8, "maglev": {"tableSize": 9}}
                        }
                    },
                },
                {"name": "t", "trafficPolicy": {}},
            ]
        }
    )
    result = validate(dr)
    assert list(result.errors) == [
        "only one of MinimumRingSize or Maglev/Ringhash can be specified",
        "tableSize must be a prime number for maglev",
        "traffic policy must have at least one field",
    ]
    assert result.warnings == ()


# -- traffic policy and port-level settings (#11-#15) ----------------------------------------


@pytest.mark.parametrize("field", ["outlierDetection", "tls", "proxyProtocol", "retryBudget"])
def test_any_one_policy_field_makes_a_policy_non_empty(field: str) -> None:
    assert errors(rule({"trafficPolicy": {field: {}}})) == []


def test_empty_connection_pool_and_tunnel_fail_their_own_checks() -> None:
    assert errors(rule({"trafficPolicy": {"connectionPool": {}}})) == [
        "connection pool must have at least one field"
    ]
    assert errors(rule({"trafficPolicy": {"tunnel": {}}})) == [
        "tunnel target host must be valid FQDN or IP address: empty domain name not allowed; "
        " is not a valid IP",
        "tunnel target port is invalid: port number 0 must be in the range 1..65535",
    ]


def test_empty_port_level_list_counts_as_absent() -> None:
    assert errors(rule({"trafficPolicy": {"portLevelSettings": []}})) == [
        "traffic policy must have at least one field"
    ]


def test_tunnel_with_proxy_protocol() -> None:
    dr = rule(
        {"trafficPolicy": {"tunnel": {"targetHost": "x", "targetPort": 1}, "proxyProtocol": {}}}
    )
    assert errors(dr) == ["tunnel and proxyProtocol must not be set together"]


def test_port_level_rules_and_dropped_warnings() -> None:
    dr = rule(
        {
            "trafficPolicy": {
                "portLevelSettings": [
                    None,
                    {"port": {"number": 0}, "tls": {}},  # Istio does not check the number
                    {"port": {"number": 0}, "tls": {}},  # ... nor duplicates
                    {"port": {"number": 80}},
                    {
                        "port": {"number": 81},
                        "loadBalancer": {"consistentHash": {"minimumRingSize": 4}},
                    },
                    {
                        "port": {"number": 82},
                        "loadBalancer": {"consistentHash": {"httpCookie": {"name": ""}}},
                    },
                ]
            }
        }
    )
    result = validate(dr)
    assert list(result.errors) == [
        "portTrafficPolicy must have valid port",  # the null entry decodes as an empty one
        "port traffic policy must have at least one field",
        "port traffic policy must have at least one field",
        "name required for HttpCookie",
    ]
    assert result.warnings == ()  # the port-level deprecation warning is lost, as in Istio


def test_top_level_warning_is_reported() -> None:
    result = validate(with_lb(consistentHash={"httpHeaderName": "x", "minimumRingSize": 2048}))
    assert result.valid and list(result.warnings) == [DEPRECATED]


# -- consistent hash (#16-#23) and what Istio lets through -----------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1, []),
        (2, []),
        (3, []),
        (65537, []),
        (4999999, []),
        (4, ["tableSize must be a prime number for maglev"]),
        (65535, ["tableSize must be a prime number for maglev"]),
        (5000011, ["tableSize must be less than 5000011 for maglev"]),
        (
            5000012,
            [
                "tableSize must be less than 5000011 for maglev",
                "tableSize must be a prime number for maglev",
            ],
        ),
    ],
)
def test_maglev_table_sizes(size: int, expected: list[str]) -> None:
    """Istio's verdict (tether refuses 1 and sizes over its budget on top: see below)."""
    dr = with_lb(consistentHash={"maglev": {"tableSize": size}})
    assert list(validate(dr, stricter=False).errors) == expected


@pytest.mark.parametrize(
    "consistent_hash",
    [
        {},
        {"useSourceIp": False},
        {"httpCookie": {"name": "c", "ttl": "-5s"}},
        {"httpCookie": {"name": "c", "ttl": "1.5ns", "path": "no slash"}},
        {"ringHash": {"minimumRingSize": 0}},
        {"ringHash": {"minimumRingSize": 3}},
    ],
)
def test_what_istio_does_not_check(consistent_hash: dict[str, Any]) -> None:
    assert validate(with_lb(consistentHash=consistent_hash)).valid


def test_simple_least_conn_gets_no_warning() -> None:
    result = validate(with_lb(simple="LEAST_CONN"))
    assert result.valid and result.warnings == ()


# -- locality and zone-aware (#24-#29) -------------------------------------------------------


def test_locality_and_zone_aware_are_exclusive() -> None:
    dr = with_lb(localityLbSetting={"enabled": True}, zoneAwareLbSetting={"enabled": True})
    assert errors(dr) == ["only one of localityLbSetting and zoneAwareLbSetting can be set"]


@pytest.mark.parametrize(
    ("locality", "expected"),
    [
        (
            {
                "distribute": [{"from": "a/*", "to": {"b/*": 100}}],
                "failover": [{"from": "a", "to": "b"}],
            },
            ["can not simultaneously specify 'distribute' and 'failover'"],
        ),
        (
            {
                "failover": [{"from": "a", "to": "b"}],
                "failoverPriority": ["topology.kubernetes.io/zone"],
            },
            [
                "can not simultaneously set 'failover' and topology label "
                "'topology.kubernetes.io/zone' in 'failover_priority'"
            ],
        ),
        (
            {"distribute": [{"from": "a/*", "to": {"b/*": 0, "c/*": 100}}]},
            ["locality weight must be in range [1, 100]"],
        ),
        (
            {"distribute": [{"from": "a/*", "to": {"b/*": 60, "c/*": 30}}]},
            ["total locality weight 90 != 100"],
        ),
        (
            {"distribute": [{"from": "a/*", "to": {"b/*/c": 50, "b/z": 50}}]},
            ["locality b/*/c wildcard '*' number can not exceed 1 and must be in the end"],
        ),
        (
            {"distribute": [{"from": "a/*", "to": {"b": 50, "b/z": 50}}]},
            ["locality b/z overlap with previous specified ones"],
        ),
        (
            {"distribute": [{"from": "a//c", "to": {"b": 100}}]},
            ["locality a//c must not contain empty region/zone/subzone info"],
        ),
        ({"distribute": [{"from": "us/z1", "to": {"us/z1/s1": 70, "us/z2": 30}}]}, []),
        (
            {"failover": [{"from": "us", "to": "us"}, {"from": "us/z", "to": "e*"}]},
            [
                "locality lb failover settings must specify different regions",
                "locality lb failover only specify region",
                "locality lb failover region should not contain '*' wildcard",
            ],
        ),
    ],
)
def test_locality_rules(locality: dict[str, Any], expected: list[str]) -> None:
    dr = rule(
        {"trafficPolicy": {"loadBalancer": {"localityLbSetting": locality}, "outlierDetection": {}}}
    )
    assert errors(dr) == expected


@pytest.mark.parametrize("setting", ["localityLbSetting", "zoneAwareLbSetting"])
def test_failover_without_outlier_detection_is_a_warning(setting: str) -> None:
    failover = {setting: {"failover": [{"from": "us", "to": "eu"}]}}
    result = validate(with_lb(**failover))
    assert result.valid
    assert list(result.warnings) == ["outlier detection policy must be provided for failover"]
    dr = rule({"trafficPolicy": {"loadBalancer": failover, "outlierDetection": {"interval": "1s"}}})
    assert validate(dr).warnings == ()


# -- warmup (#30-#33) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("warmup", "expected"),
    [
        ({"duration": "10s", "minimumPercent": 100, "aggression": 0.5}, []),
        ({"minimumPercent": 10}, ["duration is required"]),
        ({"duration": "0.5ms"}, ["duration must be greater than 1ms"]),
        ({"duration": "1500us"}, ["only durations to ms precision are supported"]),
        (
            {"duration": "1s", "minimumPercent": 100.5},
            ["minimumPercent value should be less than or equal to 100"],
        ),
        ({"duration": "1s", "aggression": 0}, ["aggression should be greater than 0"]),
    ],
)
def test_warmup_rules(warmup: dict[str, Any], expected: list[str]) -> None:
    assert errors(with_lb(simple="ROUND_ROBIN", warmup=warmup)) == expected


# -- exportTo (#34-#37) and workloadSelector (#38, #39) --------------------------------------


@pytest.mark.parametrize(
    ("export_to", "expected"),
    [
        ([".", "*"], ["cannot have both public (*) and non-public exportTo values for a resource"]),
        (["*"], []),
        (["ns", "other"], []),
        (["ns", "."], ["duplicate entries in exportTo: . and current namespace ns"]),
        ([".", "ns"], ["duplicate entries in exportTo for entry ns"]),
        (["other", "other"], ["duplicate entries in exportTo for entry other"]),
        (["~"], ["exportTo ~ (none) is not allowed for Istio configuration objects"]),
        (["Bad_NS"], ["only .,*, or a valid DNS 1123 label is allowed as exportTo entry"]),
    ],
)
def test_export_to_rules(export_to: list[str], expected: list[str]) -> None:
    assert errors(rule({"exportTo": export_to})) == expected


@pytest.mark.parametrize(
    ("export_to", "expected"),
    [
        (["."], []),
        (["ns"], []),
        (
            ["other"],
            [
                "destination rule with workload selector cannot have exportTo beyond current "
                + "namespace"
            ],
        ),
        (
            [".", "other"],
            ["destination rule with workload selector cannot have multiple entries in exportTo"],
        ),
    ],
)
def test_export_to_with_workload_selector(export_to: list[str], expected: list[str]) -> None:
    spec = {"exportTo": export_to, "workloadSelector": {"matchLabels": {"app": "x"}}}
    assert errors(rule(spec)) == expected


def test_workload_selector_rules() -> None:
    dr = rule({"workloadSelector": {"matchLabels": {"": "x", "a*": "b", "c": "d*"}}})
    assert errors(dr) == [
        'empty key is not supported in selector: "=x"',
        'wildcard is not supported in selector: "a*=b"',
        'wildcard is not supported in selector: "c=d*"',
    ]
    empty = validate(rule({"workloadSelector": {}}))
    assert empty.valid and list(empty.warnings) == ["workload selector specified without labels"]


# -- tether's own checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "annotations", "expected"),
    [
        (
            {"consistentHash": {"httpHeaderName": ""}},
            {},
            ["httpHeaderName must not be empty (Envoy rejects an empty header name)"],
        ),
        (
            {"consistentHash": {"httpQueryParameterName": ""}},
            {},
            ["httpQueryParameterName must not be empty (Envoy rejects an empty parameter name)"],
        ),
        (
            {"consistentHash": {"ringHash": {"minimumRingSize": 65537}}},
            {},
            [
                "tables too large for tether: 2097184 weighted entries per service port (a ring "
                "entry counts 32, a Maglev slot 1, any table at least 4096), over the budget of "
                "2097152 per rule"
            ],
        ),
        ({"consistentHash": {"ringHash": {"minimumRingSize": 65536}}}, {}, []),
        ({"consistentHash": {"maglev": {"tableSize": 1999993}}}, {}, []),
        (
            {"consistentHash": {"maglev": {"tableSize": 1}}},
            {},
            ["tableSize 1 is not usable for maglev (Envoy would divide by tableSize - 1)"],
        ),
        ({"simple": "RANDOM"}, {"tether.dev/hash-balance-factor": "100"}, []),
        (
            {"simple": "RANDOM"},
            {"tether.dev/hash-balance-factor": "1.5"},
            ['annotation tether.dev/hash-balance-factor must be an integer >= 100, got "1.5"'],
        ),
        (
            {"simple": "RANDOM"},
            {"tether.dev/algorithm": "maglev"},
            ['annotation tether.dev/algorithm must be "ketama", got "maglev"'],
        ),
        (
            {"simple": "RANDOM"},
            {"tether.dev/maglev-table-size": "1000"},
            ['annotation tether.dev/maglev-table-size must be "auto", got "1000"'],
        ),
        ({"simple": "RANDOM"}, {"unrelated.io/x": "y"}, []),
    ],
)
def test_tether_checks(
    spec: dict[str, Any], annotations: dict[str, str], expected: list[str]
) -> None:
    dr = rule({"trafficPolicy": {"loadBalancer": spec}}, annotations=annotations)
    assert errors(dr) == expected
