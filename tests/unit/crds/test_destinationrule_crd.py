"""crds/destinationrule.yaml: up to date, structural, and as permissive/strict as Istio's CRD.

Offline checks only; the lab applies the same file to a real kube-apiserver.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.crds.schema_tools import object_errors, structural_errors

ROOT = Path(__file__).parents[3]
CRD_FILE = ROOT / "crds" / "destinationrule.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "destinationrules"
EXPECTED = yaml.safe_load((FIXTURES / "expected.yaml").read_text())
CRD = yaml.safe_load(CRD_FILE.read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("crd_generate", ROOT / "crds" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dr(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "r"},
        "spec": {"host": "h", **spec},
    }


def with_lb(**lb: Any) -> dict[str, Any]:
    return dr({"trafficPolicy": {"loadBalancer": lb}})


def test_committed_yaml_is_what_the_generator_writes() -> None:
    assert CRD_FILE.read_text() == _generator().render(), "run: python crds/generate.py"


def test_identity_versions_and_columns_match_istio() -> None:
    assert CRD["metadata"]["name"] == "destinationrules.networking.istio.io"
    spec = CRD["spec"]
    assert spec["group"] == "networking.istio.io" and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "categories": ["istio-io", "networking-istio-io"],
        "kind": "DestinationRule",
        "listKind": "DestinationRuleList",
        "plural": "destinationrules",
        "shortNames": ["dr"],
        "singular": "destinationrule",
    }
    versions = {v["name"]: v for v in spec["versions"]}
    assert set(versions) == {"v1", "v1beta1", "v1alpha3"}
    assert all(v["served"] for v in versions.values())
    assert [n for n, v in versions.items() if v["storage"]] == ["v1"]
    for v in versions.values():
        assert v["subresources"] == {"status": {}}
        assert v["schema"] == versions["v1"]["schema"]
        columns = [(c["name"], c["jsonPath"]) for c in v["additionalPrinterColumns"]]
        assert columns[:2] == [("Host", ".spec.host"), ("Age", ".metadata.creationTimestamp")]
        assert columns[2:] == [
            ("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            ("Algorithm", ".status.algorithm"),
            ("Endpoints", ".status.endpoints"),
            ("Moved", ".status.keysMoved"),  # kubectl get dr: MOVED, the last keys-moved fraction
        ]
    status = SCHEMA["properties"]["status"]
    assert status == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def test_schema_is_structural() -> None:
    assert structural_errors(SCHEMA) == []


def test_structural_checker_catches_violations() -> None:
    broken = copy.deepcopy(SCHEMA)
    consistent_hash = broken["properties"]["spec"]["properties"]["trafficPolicy"]["properties"][
        "loadBalancer"
    ]["properties"]["consistentHash"]
    consistent_hash["allOf"][0]["oneOf"][1]["type"] = "object"
    consistent_hash["properties"]["maglev"]["properties"]["tableSize"]["type"] = "integer"
    del consistent_hash["properties"]["httpHeaderName"]["type"]
    found = structural_errors(broken)
    assert any("oneOf[1].type: forbidden" in e for e in found)
    assert any("tableSize.type: must be empty" in e for e in found)
    assert any("httpHeaderName.type: must not be empty" in e for e in found)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixtures_against_the_schema(name: str) -> None:
    obj = yaml.safe_load((FIXTURES / name).read_text())
    errors = object_errors(SCHEMA, obj)
    if EXPECTED[name]["crd"] == "valid":
        assert errors == []
    else:
        assert errors


ISTIO_DOC_EXAMPLES = [
    # bookinfo reviews with subsets and a subset policy
    dr(
        {
            "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}},
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {
                    "name": "v2",
                    "labels": {"version": "v2"},
                    "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}},
                },
            ],
        }
    ),
    # TLS origination and port-level settings
    dr(
        {
            "trafficPolicy": {
                "portLevelSettings": [
                    {"port": {"number": 443}, "tls": {"mode": "SIMPLE", "sni": "x.example.com"}},
                    {"port": {"number": 80}, "loadBalancer": {"simple": "LEAST_REQUEST"}},
                ]
            }
        }
    ),
    # circuit breaking
    dr(
        {
            "trafficPolicy": {
                "connectionPool": {
                    "tcp": {"maxConnections": 1},
                    "http": {"http1MaxPendingRequests": 1, "maxRequestsPerConnection": 1},
                },
                "outlierDetection": {
                    "consecutive5xxErrors": 1,
                    "interval": "1s",
                    "baseEjectionTime": "3m",
                    "maxEjectionPercent": 100,
                },
            }
        }
    ),
    # locality failover with distribute weights
    dr(
        {
            "trafficPolicy": {
                "loadBalancer": {
                    "localityLbSetting": {
                        "enabled": True,
                        "distribute": [
                            {
                                "from": "us-west/zone1/*",
                                "to": {"us-west/zone1/*": 80, "us-west/zone2/*": 20},
                            }
                        ],
                    }
                },
                "outlierDetection": {
                    "consecutive5xxErrors": 7,
                    "interval": "30s",
                    "baseEjectionTime": "30s",
                },
            }
        }
    ),
    # tunnel
    dr(
        {
            "trafficPolicy": {
                "tunnel": {
                    "protocol": "CONNECT",
                    "targetHost": "egress.example.com",
                    "targetPort": 3128,
                }
            }
        }
    ),
    # retry budget, proxy protocol, warmup, zone aware, workload selector, exportTo
    dr(
        {
            "exportTo": ["."],
            "workloadSelector": {"matchLabels": {"app": "ratings"}},
            "trafficPolicy": {
                "retryBudget": {"percent": 20, "minRetryConcurrency": 2},
                "proxyProtocol": {"version": "V2"},
                "loadBalancer": {
                    "simple": "ROUND_ROBIN",
                    "warmup": {"duration": "60s", "minimumPercent": 10, "aggression": 1.0},
                    "zoneAwareLbSetting": {"enabled": True, "minClusterSize": 6},
                },
            },
        }
    ),
    with_lb(
        consistentHash={
            "httpCookie": {
                "name": "user",
                "ttl": "0s",
                "attributes": [{"name": "SameSite", "value": "Strict"}],
            }
        }
    ),
    with_lb(consistentHash={"httpHeaderName": "x", "ringHash": {"minimumRingSize": "1024"}}),
    with_lb(consistentHash={"useSourceIp": True, "minimumRingSize": 1024}),
    with_lb(simple="PASSTHROUGH", warmupDurationSecs="10s"),
    with_lb(backendUtilization={"blackoutPeriod": "10s"}),
    # newer Istio fields in sub-messages tether does not interpret are kept, not rejected
    dr(
        {
            "trafficPolicy": {
                "connectionPool": {"http": {"futureSetting": 1}},
                "tls": {"futureTls": "x"},
            }
        }
    ),
]


@pytest.mark.parametrize("obj", ISTIO_DOC_EXAMPLES)
def test_real_istio_examples_are_accepted(obj: dict[str, Any]) -> None:
    assert object_errors(SCHEMA, obj) == []


@pytest.mark.parametrize(
    ("obj", "why"),
    [
        (with_lb(simple="RANDOM", consistentHash={}), "lb_policy oneof"),
        (with_lb(consistentHash={"httpHeaderName": "x", "useSourceIp": False}), "hash key oneof"),
        (with_lb(consistentHash={"ringHash": {}, "maglev": {}}), "algorithm oneof"),
        (with_lb(consistentHash={"maglev": {"tableSize": -1}}), "negative uint64"),
        (with_lb(consistentHash={"maglev": {"tableSize": "abc"}}), "non-decimal string"),
        (with_lb(consistentHash={"maglev": {"tableSize": 1.5}}), "non-integer"),
        (with_lb(consistentHash={"httpCookie": {"ttl": "10s"}}), "httpCookie.name required"),
        (
            with_lb(consistentHash={"httpCookie": {"name": "c", "attributes": [{"value": "v"}]}}),
            "attribute name",
        ),
        (
            with_lb(consistentHash={"httpHeaderName": "x", "hashOnEverything": True}),
            "unknown field",
        ),
        (with_lb(simple="FASTEST"), "enum"),
        (with_lb(simple="RANDOM", warmup={"minimumPercent": 10}), "warmup.duration required"),
        (
            with_lb(simple="RANDOM", warmup={"duration": "1s", "minimumPercent": 150}),
            "minimumPercent",
        ),
        (with_lb(simple="RANDOM", warmup={"duration": "1s", "aggression": -0.1}), "aggression"),
        (with_lb(simple="RANDOM", warmupDurationSecs="0s"), "CEL duration >= 1ms"),
        (dr({"trafficPolicy": {"outlierDetection": {"interval": "500us"}}}), "CEL duration >= 1ms"),
        (dr({"trafficPolicy": {"outlierDetection": {"interval": "1d"}}}), "CEL: not a duration"),
        (dr({"trafficPolicy": {"tunnel": {"targetHost": "x"}}}), "tunnel.targetPort required"),
        (dr({"subsets": [{"labels": {"a": "b"}}]}), "subset name required"),
        (dr({"subsets": [{"name": "a", "labels": {"version": 1}}]}), "label value type"),
        (dr({"workloadSelector": {"matchLabels": {"app": "a*"}}}), "CEL wildcard"),
        (
            dr({"trafficPolicy": {"portLevelSettings": [{"port": {"number": 80}, "tunnel": {}}]}}),
            "no tunnel per port",
        ),
        (
            {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "spec": {}},
            "host required",
        ),
    ],
)
def test_invalid_objects_are_rejected(obj: dict[str, Any], why: str) -> None:
    assert object_errors(SCHEMA, obj), why


def test_cookie_ttl_has_no_minimum() -> None:
    assert (
        object_errors(SCHEMA, with_lb(consistentHash={"httpCookie": {"name": "c", "ttl": "0s"}}))
        == []
    )
    assert (
        object_errors(
            SCHEMA, dr({"trafficPolicy": {"connectionPool": {"tcp": {"idleTimeout": "0s"}}}})
        )
        == []
    )


def test_every_rule_istios_crd_admits_in_the_corpus_is_admitted_by_ours() -> None:
    """The generated corpus rules passed Istio's own CRD schema (tools/istio-validate)."""
    from tests.unit.models.istio_corpus import load_inputs

    generated = [d for d in load_inputs() if d["metadata"]["name"].startswith("gen-")]
    assert len(generated) >= 1000
    assert [d["metadata"]["name"] for d in generated if object_errors(SCHEMA, d)] == []
