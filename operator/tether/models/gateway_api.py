"""Gateway API ``BackendLBPolicy`` (``gateway.networking.k8s.io/v1alpha2``): read and check it.

tether reads ``spec.targetRefs`` (core Services in the policy's namespace) and
``spec.sessionPersistence`` (GEP-1619): ``sessionName``, ``type`` Cookie|Header (default Cookie),
``absoluteTimeout``, ``idleTimeout`` and ``cookieConfig.lifetimeType`` Session|Permanent
(default Session). ``spec_errors`` applies the rules of the upstream CRD (experimental channel,
v1.2) with kube-apiserver's wording, so a policy stored through an older or hand-made CRD is
judged as the real CRD would; ``semantic_errors`` adds what tether needs on top (names that are
HTTP tokens, timeouts above zero).

Gateway API durations (GEP-2257) match ``^([0-9]{1,5}(h|m|s|ms)){1,4}$`` and mean what Go's
``time.ParseDuration`` says; tether keeps whole seconds, rounding a fraction up.

Invariant: ``parse_backend_lb_policy`` never raises; a policy with any error has
``session_persistence`` None and its errors listed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from tether.models.duration import parse_go_duration
from tether.models.session import is_token

GROUP = "gateway.networking.k8s.io"
VERSION = "v1alpha2"
KIND = "BackendLBPolicy"
PLURAL = "backendlbpolicies"
DURATION_PATTERN = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"
GROUP_PATTERN = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
KIND_PATTERN = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
PERMANENT_RULE = "AbsoluteTimeout must be specified when cookie lifetimeType is Permanent"
MAX_TARGETS = 16
MAX_SESSION_NAME = 128


class TargetRef(NamedTuple):
    group: str
    kind: str
    name: str


class SessionPersistence(NamedTuple):
    """GEP-1619 settings with durations in whole seconds (None = not set)."""

    session_name: str | None
    type: str  # "Cookie" | "Header"
    absolute_timeout: int | None
    idle_timeout: int | None
    lifetime_type: str  # "Session" | "Permanent"


class BackendLBPolicy(NamedTuple):
    namespace: str
    name: str
    generation: int | None
    created: str  # metadata.creationTimestamp (RFC 3339), "" if unknown
    target_refs: tuple[TargetRef, ...]
    session_persistence: SessionPersistence | None

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"


def _quote(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _string(errors: list[str], path: str, value: Any, *, max_len=None, min_len=None, pattern=None):
    if not isinstance(value, str):
        errors.append(
            f"{path}: Invalid value: {_quote(value)}: {path} in body must be of type string"
        )
        return
    if max_len is not None and len(value.encode()) > max_len:
        errors.append(f"{path}: Too long: may not be more than {max_len} bytes")
    if min_len is not None and len(value) < min_len:
        errors.append(
            f'{path}: Invalid value: "{value}": {path} in body should be at least '
            f"{min_len} chars long"
        )
    if pattern is not None and not re.search(pattern, value):
        errors.append(
            f"{path}: Invalid value: \"{value}\": {path} in body should match '{pattern}'"
        )


def _enum(errors: list[str], path: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        supported = ", ".join(f'"{a}"' for a in allowed)
        errors.append(f"{path}: Unsupported value: {_quote(value)}: supported values: {supported}")


def _target_errors(refs: Any) -> list[str]:
    path = "spec.targetRefs"
    if refs is None:
        return [f"{path}: Required value"]
    if not isinstance(refs, list):
        return [f"{path}: Invalid value: {_quote(refs)}: {path} in body must be of type array"]
    errors: list[str] = []
    if not refs:
        errors.append(f"{path}: Invalid value: 0: {path} in body should have at least 1 items")
    if len(refs) > MAX_TARGETS:
        errors.append(f"{path}: Too many: {len(refs)}: must have at most {MAX_TARGETS} items")
    seen: set[tuple] = set()
    for i, ref in enumerate(refs):
        at = f"{path}[{i}]"
        if not isinstance(ref, dict):
            errors.append(
                f"{at}: Invalid value: {_quote(ref)}: {at} in body must be of type object"
            )
            continue
        for field in ("group", "kind", "name"):
            if field not in ref:
                errors.append(f"{at}.{field}: Required value")
        if "group" in ref:
            _string(errors, f"{at}.group", ref["group"], max_len=253, pattern=GROUP_PATTERN)
        if "kind" in ref:
            _string(errors, f"{at}.kind", ref["kind"], max_len=63, min_len=1, pattern=KIND_PATTERN)
        if "name" in ref:
            _string(errors, f"{at}.name", ref["name"], max_len=253, min_len=1)
        key = (ref.get("group"), ref.get("kind"), ref.get("name"))
        if key in seen:
            shown = json.dumps(
                dict(zip(("group", "kind", "name"), key, strict=True)), separators=(",", ":")
            )
            errors.append(f"{at}: Duplicate value: {shown}")
        seen.add(key)
    return errors


def _persistence_errors(sp: Any) -> list[str]:
    path = "spec.sessionPersistence"
    if not isinstance(sp, dict):
        return [f"{path}: Invalid value: {_quote(sp)}: {path} in body must be of type object"]
    errors: list[str] = []
    if "sessionName" in sp:
        _string(errors, f"{path}.sessionName", sp["sessionName"], max_len=MAX_SESSION_NAME)
    for field in ("absoluteTimeout", "idleTimeout"):
        if field in sp:
            _string(errors, f"{path}.{field}", sp[field], pattern=DURATION_PATTERN)
    if "type" in sp:
        _enum(errors, f"{path}.type", sp["type"], ("Cookie", "Header"))
    cookie = sp.get("cookieConfig")
    if cookie is not None and not isinstance(cookie, dict):
        errors.append(
            f"{path}.cookieConfig: Invalid value: {_quote(cookie)}: must be of type object"
        )
        cookie = None
    if cookie and "lifetimeType" in cookie:
        _enum(
            errors,
            f"{path}.cookieConfig.lifetimeType",
            cookie["lifetimeType"],
            ("Permanent", "Session"),
        )
    if cookie and cookie.get("lifetimeType") == "Permanent" and "absoluteTimeout" not in sp:
        errors.append(f'{path}: Invalid value: "object": {PERMANENT_RULE}')
    return errors


def spec_errors(spec: Any) -> list[str]:
    """What kube-apiserver would refuse in ``spec`` under the upstream CRD; [] if accepted."""
    if not isinstance(spec, dict):
        return ["spec: Required value"]
    errors = _target_errors(spec.get("targetRefs"))
    if spec.get("sessionPersistence") is not None:
        errors += _persistence_errors(spec["sessionPersistence"])
    return errors


def gateway_duration_seconds(text: str) -> int:
    """A GEP-2257 duration in whole seconds (fractions round up); ValueError if malformed."""
    if not re.search(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a Gateway API duration")
    return -(-parse_go_duration(text) // 1_000_000_000)


def semantic_errors(sp: Mapping[str, Any]) -> list[str]:
    """tether's own checks on a CRD-valid ``sessionPersistence``."""
    path = "spec.sessionPersistence"
    errors: list[str] = []
    name = sp.get("sessionName")
    if name is not None and not is_token(name):
        what = "header" if sp.get("type") == "Header" else "cookie"
        errors.append(
            f'{path}.sessionName: Invalid value: "{name}": must be a valid {what} name '
            "(an RFC 9110 token: letters, digits and !#$%&'*+-.^_`|~)"
        )
    for field in ("absoluteTimeout", "idleTimeout"):
        if field in sp and gateway_duration_seconds(sp[field]) == 0:
            errors.append(f'{path}.{field}: Invalid value: "{sp[field]}": must be greater than 0')
    return errors


def parse_backend_lb_policy(obj: Mapping[str, Any]) -> tuple[BackendLBPolicy, list[str]]:
    """The policy as tether uses it, and every reason it cannot be used ([] if none).

    Valid ``targetRefs`` are kept even when ``sessionPersistence`` is invalid, so the status
    can say ``Invalid`` on each target.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return _policy(meta, (), None), spec_errors(spec)
    target_errors = _target_errors(spec.get("targetRefs"))
    refs: tuple[TargetRef, ...] = ()
    if not target_errors:
        refs = tuple(TargetRef(r["group"], r["kind"], r["name"]) for r in spec["targetRefs"])
    sp = spec.get("sessionPersistence")
    errors = spec_errors(spec)
    if sp is None or errors:
        return _policy(meta, refs, None), errors
    errors = semantic_errors(sp)
    if errors:
        return _policy(meta, refs, None), errors
    persistence = SessionPersistence(
        session_name=sp.get("sessionName"),
        type=sp.get("type", "Cookie"),
        absolute_timeout=_seconds(sp.get("absoluteTimeout")),
        idle_timeout=_seconds(sp.get("idleTimeout")),
        lifetime_type=(sp.get("cookieConfig") or {}).get("lifetimeType", "Session"),
    )
    return _policy(meta, refs, persistence), []


def _policy(meta, refs, persistence) -> BackendLBPolicy:
    return BackendLBPolicy(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        generation=meta.get("generation"),
        created=meta.get("creationTimestamp") or "",
        target_refs=refs,
        session_persistence=persistence,
    )


def _seconds(text: str | None) -> int | None:
    return None if text is None else gateway_duration_seconds(text)
