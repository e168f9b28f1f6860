"""Offline stand-ins for what kube-apiserver does with a CRD schema (lab tests use the real one).

- ``structural_errors``: the invariants of apiextensions' ``ValidateStructural`` (types everywhere
  except int-or-string / preserve-unknown nodes, nothing but value validations inside junctors,
  the int-or-string anyOf pattern, items on arrays, no metadata schema).
- ``object_errors``: validate an object like the apiserver with kubectl's strict field
  validation: OpenAPI -> JSON Schema (nullable, unknown fields are errors except under
  ``x-kubernetes-preserve-unknown-fields``), plus the CEL rules this CRD uses, evaluated in
  Python (CEL ``duration()`` parses Go durations).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema

from tether.models.duration import DurationError, parse_go_duration

JUNCTORS = ("allOf", "anyOf", "oneOf")
FORBIDDEN_IN_JUNCTORS = (
    "type",
    "description",
    "default",
    "nullable",
    "additionalProperties",
    "title",
    "externalDocs",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
)
INT_OR_STRING_ANYOF = [{"type": "integer"}, {"type": "string"}]
KNOWN_RULES = {
    "duration(self) >= duration('1ms')",
    '!self.contains("*")',
    'self.all(key, !key.contains("*"))',
    "self.all(key, key.size() != 0)",
}


def _junctor_nodes(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for j in JUNCTORS:
        for i, sub in enumerate(node.get(j, ())):
            yield f"{path}.{j}[{i}]", sub
    if "not" in node:
        yield f"{path}.not", node["not"]


def _nested_errors(node: dict[str, Any], path: str, outer: dict[str, Any]) -> list[str]:
    errors = [
        f"{path}.{key}: forbidden inside a junctor" for key in FORBIDDEN_IN_JUNCTORS if key in node
    ]
    for key in node.get("required", ()):
        if key not in outer.get("properties", {}):
            errors.append(f"{path}.required: {key!r} is not a property of the outer schema")
    for key in node.get("properties", {}):
        if key not in outer.get("properties", {}):
            errors.append(f"{path}.properties.{key}: not specified outside the junctor")
    if "metadata" in node.get("properties", {}):
        errors.append(f"{path}.properties.metadata: must not be specified in a nested context")
    for sub_path, sub in _junctor_nodes(node, path):
        errors += _nested_errors(sub, sub_path, outer)
    return errors


def structural_errors(node: dict[str, Any], path: str = "", level: str = "root") -> list[str]:
    """Every violation of Kubernetes' structural-schema invariants under ``node``."""
    errors: list[str] = []
    int_or_string = node.get("x-kubernetes-int-or-string", False)
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if not node.get("type") and not int_or_string and not preserve:
        errors.append(f"{path}.type: must not be empty ({level})")
    if level == "root" and node.get("type") != "object":
        errors.append(f"{path}.type: must be object at the root")
    if int_or_string:
        if "type" in node:
            errors.append(f"{path}.type: must be empty with x-kubernetes-int-or-string")
        if preserve:
            errors.append(f"{path}: int-or-string cannot preserve unknown fields")
    if node.get("type") == "array" and "items" not in node:
        errors.append(f"{path}.items: must be specified")
    if "properties" in node and "additionalProperties" in node:
        errors.append(f"{path}: properties and additionalProperties are exclusive")
    if "pattern" in node:
        re.compile(node["pattern"])
    for rule in node.get("x-kubernetes-validations", ()):
        if rule["rule"] not in KNOWN_RULES:
            errors.append(f"{path}: unexpected CEL rule {rule['rule']!r}")
    if level == "root" and "metadata" in node.get("properties", {}):
        errors.append(f"{path}.properties.metadata: must not be specified")
    skip_anyof = node.get("anyOf") == INT_OR_STRING_ANYOF
    for sub_path, sub in _junctor_nodes(node, path):
        if skip_anyof and ".anyOf[" in sub_path[len(path) :]:
            continue
        errors += _nested_errors(sub, sub_path, node)
    for key, prop in node.get("properties", {}).items():
        errors += structural_errors(prop, f"{path}.properties.{key}", "field")
    if isinstance(node.get("items"), dict):
        errors += structural_errors(node["items"], f"{path}.items", "item")
    if isinstance(node.get("additionalProperties"), dict):
        errors += structural_errors(
            node["additionalProperties"], f"{path}.additionalProperties", "field"
        )
    return errors


def to_json_schema(node: Any) -> Any:
    """OpenAPI v3 (Kubernetes dialect) -> Draft 4 JSON Schema with strict unknown fields."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: to_json_schema(v)
        for k, v in node.items()
        if not k.startswith("x-kubernetes-") and k not in ("nullable", "format")
    }
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _cel_errors(node: dict[str, Any], value: Any, path: str) -> list[str]:
    errors: list[str] = []
    if value is None:
        return errors
    for rule in node.get("x-kubernetes-validations", ()):
        text = rule["rule"]
        if text == "duration(self) >= duration('1ms')":
            try:
                ok = parse_go_duration(value) >= 1_000_000
            except DurationError:
                ok = False
        elif text == '!self.contains("*")':
            ok = "*" not in value
        elif text == 'self.all(key, !key.contains("*"))':
            ok = all("*" not in k for k in value)
        elif text == "self.all(key, key.size() != 0)":
            ok = all(k != "" for k in value)
        else:
            raise AssertionError(f"unknown CEL rule {text}")
        if not ok:
            errors.append(f"{path}: {rule['message']}")
    props = node.get("properties", {})
    if isinstance(value, dict):
        for key, sub in value.items():
            if key in props:
                errors += _cel_errors(props[key], sub, f"{path}.{key}")
            elif isinstance(node.get("additionalProperties"), dict):
                errors += _cel_errors(node["additionalProperties"], sub, f"{path}.{key}")
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, sub in enumerate(value):
            errors += _cel_errors(node["items"], sub, f"{path}[{i}]")
    return errors


def object_errors(schema: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """What the apiserver (strict field validation) would reject in ``obj``; [] if accepted."""
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    validator = jsonschema.Draft4Validator(to_json_schema(schema))
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)
    ]
    return errors + _cel_errors(schema, body, "")
