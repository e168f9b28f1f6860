"""crds/gateway-api/backendlbpolicy.yaml: up to date, structural, equal in its rules to Gateway
API's own CRD (experimental, v1.2.1), and in agreement with tether's model of the policy.

Offline checks (schema_tools stands in for kube-apiserver); the CEL rule is evaluated here.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.crds.schema_tools import object_errors, structural_errors
from tether.models import gateway_api

ROOT = Path(__file__).parents[3]
CRD_FILE = ROOT / "crds" / "gateway-api" / "backendlbpolicy.yaml"
CRD = yaml.safe_load(CRD_FILE.read_text())
(VERSION,) = CRD["spec"]["versions"]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
SPEC = SCHEMA["properties"]["spec"]
PERSISTENCE = SPEC["properties"]["sessionPersistence"]


def _generator() -> Any:
    path = ROOT / "crds" / "gateway-api" / "generate.py"
    spec = importlib.util.spec_from_file_location("blb_generate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _without_cel(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_cel(v) for k, v in node.items() if k != "x-kubernetes-validations"}
    if isinstance(node, list):
        return [_without_cel(v) for v in node]
    return node


def cel_permanent(sp: dict) -> bool:
    """The CRD's one CEL rule, as CEL evaluates it (has() = field present)."""
    cookie = sp.get("cookieConfig")
    return (
        cookie is None
        or "lifetimeType" not in cookie
        or cookie["lifetimeType"] != "Permanent"
        or "absoluteTimeout" in sp
    )


def apiserver_errors(obj: dict) -> list[str]:
    errors = object_errors(_without_cel(SCHEMA), obj)
    sp = (obj.get("spec") or {}).get("sessionPersistence")
    if isinstance(sp, dict) and not cel_permanent(sp):
        errors.append(
            "spec.sessionPersistence: " + PERSISTENCE["x-kubernetes-validations"][0]["message"]
        )
    refs = (obj.get("spec") or {}).get("targetRefs") or []
    keys = [tuple(r.get(k) for k in ("group", "kind", "name")) for r in refs if isinstance(r, dict)]
    if len(set(keys)) != len(keys):
        errors.append("spec.targetRefs: Duplicate value")  # list-type map keys
    return errors


def policy(**spec: Any) -> dict:
    base = {"targetRefs": [{"group": "", "kind": "Service", "name": "httpbin"}]}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1alpha2",
        "kind": "BackendLBPolicy",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {**base, **spec},
    }


def test_committed_yaml_is_what_the_generator_writes():
    assert CRD_FILE.read_text() == _generator().render(), "run: python crds/gateway-api/generate.py"


def test_identity_matches_gateway_api():
    meta = CRD["metadata"]
    assert meta["name"] == "backendlbpolicies.gateway.networking.k8s.io"
    # kube-apiserver refuses a CRD in a *.k8s.io group without this annotation.
    assert meta["annotations"]["api-approved.kubernetes.io"].startswith("https://")
    assert meta["annotations"]["gateway.networking.k8s.io/channel"] == "experimental"
    assert meta["labels"]["gateway.networking.k8s.io/policy"] == "Direct"
    spec = CRD["spec"]
    assert (spec["group"], spec["scope"]) == ("gateway.networking.k8s.io", "Namespaced")
    assert spec["names"] == {
        "categories": ["gateway-api"],
        "kind": "BackendLBPolicy",
        "listKind": "BackendLBPolicyList",
        "plural": "backendlbpolicies",
        "shortNames": ["blbpolicy"],
        "singular": "backendlbpolicy",
    }
    assert (VERSION["name"], VERSION["served"], VERSION["storage"]) == ("v1alpha2", True, True)
    assert VERSION["subresources"] == {"status": {}}
    assert spec["group"] == gateway_api.GROUP and VERSION["name"] == gateway_api.VERSION
    assert spec["names"]["plural"] == gateway_api.PLURAL


def test_schema_is_structural():
    errors = structural_errors(SCHEMA)
    unexpected = [e for e in errors if "unexpected CEL rule" not in e]
    assert unexpected == []
    assert errors == [
        ".properties.spec.properties.sessionPersistence: unexpected CEL rule "
        + repr(PERSISTENCE["x-kubernetes-validations"][0]["rule"])
    ]


def test_rules_are_gateway_apis():
    # Values as in Gateway API v1.2.1's experimental CRD, and the model uses the same ones.
    props = PERSISTENCE["properties"]
    for field in ("absoluteTimeout", "idleTimeout"):
        assert props[field]["pattern"] == r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"
        assert props[field]["pattern"] == gateway_api.DURATION_PATTERN
    assert props["sessionName"]["maxLength"] == 128 == gateway_api.MAX_SESSION_NAME
    assert (props["type"]["enum"], props["type"]["default"]) == (["Cookie", "Header"], "Cookie")
    lifetime = props["cookieConfig"]["properties"]["lifetimeType"]
    assert (lifetime["enum"], lifetime["default"]) == (["Permanent", "Session"], "Session")
    (rule,) = PERSISTENCE["x-kubernetes-validations"]
    assert rule["message"] == gateway_api.PERMANENT_RULE
    refs = SPEC["properties"]["targetRefs"]
    assert (refs["minItems"], refs["maxItems"]) == (1, 16) == (1, gateway_api.MAX_TARGETS)
    assert refs["x-kubernetes-list-type"] == "map"
    assert refs["x-kubernetes-list-map-keys"] == ["group", "kind", "name"]
    item = refs["items"]["properties"]
    assert item["group"]["pattern"] == gateway_api.GROUP_PATTERN
    assert item["kind"]["pattern"] == gateway_api.KIND_PATTERN
    assert SPEC["required"] == ["targetRefs"] and SCHEMA["required"] == ["spec"]


VALID = [
    policy(),
    policy(sessionPersistence={}),
    policy(sessionPersistence={"sessionName": "cart", "type": "Cookie"}),
    policy(sessionPersistence={"type": "Header", "sessionName": "x-session", "idleTimeout": "30m"}),
    policy(
        sessionPersistence={
            "absoluteTimeout": "1h30m",
            "cookieConfig": {"lifetimeType": "Permanent"},
        }
    ),
    policy(sessionPersistence={"cookieConfig": {"lifetimeType": "Session"}}),
    policy(targetRefs=[{"group": "", "kind": "Service", "name": f"s{i}"} for i in range(16)]),
]
INVALID = [
    policy(targetRefs=[]),
    policy(targetRefs=[{"group": "", "kind": "Service", "name": f"s{i}"} for i in range(17)]),
    policy(targetRefs=[{"kind": "Service", "name": "a"}]),
    policy(targetRefs=[{"group": "", "kind": "Service", "name": ""}]),
    policy(targetRefs=[{"group": "Bad_Group", "kind": "Service", "name": "a"}]),
    policy(targetRefs=[{"group": "", "kind": "Service", "name": "a"}] * 2),
    policy(sessionPersistence={"absoluteTimeout": "1d"}),
    policy(sessionPersistence={"idleTimeout": "1.5h"}),
    policy(sessionPersistence={"type": "Query"}),
    policy(sessionPersistence={"sessionName": "x" * 129}),
    policy(sessionPersistence={"cookieConfig": {"lifetimeType": "Forever"}}),
    policy(sessionPersistence={"cookieConfig": {"lifetimeType": "Permanent"}}),
]


@pytest.mark.parametrize("obj", VALID)
def test_valid_policies_are_accepted_by_the_crd_and_the_model(obj):
    assert apiserver_errors(obj) == []
    assert gateway_api.spec_errors(obj["spec"]) == []


@pytest.mark.parametrize("obj", INVALID)
def test_invalid_policies_are_refused_by_the_crd_and_the_model(obj):
    assert apiserver_errors(obj) != []
    assert gateway_api.spec_errors(obj["spec"]) != []


def test_status_written_by_tether_fits_the_status_schema():
    from tether.models.policy_attachment import ServiceView, attach, policy_status

    obj = copy.deepcopy(VALID[2])
    obj["metadata"].update(generation=1, creationTimestamp="2025-06-01T10:00:00Z")
    parsed = gateway_api.parse_backend_lb_policy(obj)
    services = {("default", "httpbin"): ServiceView({}, {})}
    outcomes = attach([parsed], services).outcomes["default/p"]
    obj["status"] = policy_status(parsed[0], outcomes, None, "2025-06-01T10:00:05Z")
    assert apiserver_errors(obj) == []
    obj["status"]["ancestors"][0]["controllerName"] = "no-slash"
    assert apiserver_errors(obj) != []
