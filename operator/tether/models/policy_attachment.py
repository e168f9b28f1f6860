"""Which BackendLBPolicy applies to which Service, the session block it yields, and its status.

Gateway API policy conventions (GEP-713, ``apis/v1alpha2/policy_types.go``):

- a policy targets core Services in its own namespace; one ``PolicyAncestorStatus`` per target,
  with ``ancestorRef`` = the Service (tether has no Gateway object to name) and
  ``controllerName`` = ``CONTROLLER``; entries of other controllers are kept as they are;
- condition ``Accepted``: True/``Accepted``, or False with ``Invalid`` (the policy itself is
  unusable), ``TargetNotFound`` (no such Service, or a target kind tether cannot serve) or
  ``Conflicted`` (an older policy with session persistence targets the same Service: the oldest
  ``creationTimestamp`` wins, then ``namespace/name`` alphabetically);
- ``lastTransitionTime`` changes only when the condition's status changes.

A BackendLBPolicy wins over Istio's persistent-session labels on the same Service (it is the
explicit, typed API; the label is reported as ignored). The Service's ``tether.dev/session-*``
annotations (``models.session``) apply to both.

Invariant: everything here is a pure function of its arguments (the clock is passed in).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from tether.models.gateway_api import BackendLBPolicy, TargetRef
from tether.models.session import session_from_labels, session_options
from tether.models.table import SessionPolicy, SessionSource

CONTROLLER = "tether.dev/session-controller"
ACCEPTED, INVALID, TARGET_NOT_FOUND, CONFLICTED = (
    "Accepted",
    "Invalid",
    "TargetNotFound",
    "Conflicted",
)
DEFAULT_COOKIE_NAME = "tether-session"
DEFAULT_HEADER_NAME = "x-tether-session"
MAX_ANCESTORS = 16


class ServiceView(NamedTuple):
    """What attachment needs of a Service."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]


class TargetOutcome(NamedTuple):
    """The Accepted condition of one policy for one target."""

    ref: TargetRef
    reason: str
    message: str

    @property
    def accepted(self) -> bool:
        """True when the reason is ``Accepted``."""
        return self.reason == ACCEPTED


def session_from_policy(
    policy: BackendLBPolicy, annotations: Mapping[str, str]
) -> tuple[SessionPolicy | None, list[str]]:
    """The session block a valid policy gives the Service carrying ``annotations``."""
    sp = policy.session_persistence
    if sp is None:
        return None, []
    options, errors = session_options(annotations)
    if options.signing == "unsigned" and sp.idle_timeout is not None:
        return None, [
            *errors,
            "spec.sessionPersistence.idleTimeout needs signed session values, but the Service "
            'is annotated tether.dev/session-signing: "unsigned"',
        ]
    source = SessionSource(
        kind="BackendLBPolicy",
        namespace=policy.namespace,
        name=policy.name,
        generation=policy.generation,
    )
    common = dict(
        absoluteTimeoutSeconds=sp.absolute_timeout,
        idleTimeoutSeconds=sp.idle_timeout,
        strict=options.strict,
        signing=options.signing,
        drain=options.drain,
        source=source,
    )
    if sp.type == "Header":
        return SessionPolicy(
            kind="header", name=sp.session_name or DEFAULT_HEADER_NAME, **common
        ), errors
    max_age = sp.absolute_timeout if sp.lifetime_type == "Permanent" else None
    session = SessionPolicy(
        kind="cookie",
        name=sp.session_name or DEFAULT_COOKIE_NAME,
        path="/",
        cookieMaxAgeSeconds=max_age,
        **common,
    )
    return session, errors


def _order(policy: BackendLBPolicy) -> tuple[str, str]:
    # RFC 3339 timestamps in UTC ("...Z", as the apiserver writes them) sort as strings.
    return (policy.created, policy.key)


class Attachment(NamedTuple):
    """The result of attaching every policy: sessions per Service and outcomes per policy."""

    sessions: dict[tuple[str, str], SessionPolicy]  # (namespace, service) → session block
    outcomes: dict[str, list[TargetOutcome]]  # policy key → one outcome per target
    notes: dict[tuple[str, str], list[str]]  # (namespace, service) → messages for its Events


def _judge(
    policy: BackendLBPolicy,
    errors: list[str],
    ref: TargetRef,
    services: Mapping[tuple[str, str], ServiceView],
    owner: Mapping[tuple[str, str], str],
) -> tuple[TargetOutcome, SessionPolicy | None, list[str]]:
    """One target's outcome, and the session block it would carry if accepted."""
    svc = f"{policy.namespace}/{ref.name}"
    if errors:
        return TargetOutcome(ref, INVALID, "; ".join(errors)), None, []
    if (ref.group, ref.kind) != ("", "Service"):
        message = (
            'tether attaches to core Services only (group "", kind Service), '
            f"not {ref.group or 'core'}/{ref.kind}"
        )
        return TargetOutcome(ref, TARGET_NOT_FOUND, message), None, []
    view = services.get((policy.namespace, ref.name))
    if view is None:
        return TargetOutcome(ref, TARGET_NOT_FOUND, f"Service {svc} not found"), None, []
    if policy.session_persistence is None:
        return TargetOutcome(ref, ACCEPTED, "no sessionPersistence: nothing to apply"), None, []
    first = owner.get((policy.namespace, ref.name))
    if first is not None:
        message = f"Service {svc} already has sessionPersistence from BackendLBPolicy {first}"
        return TargetOutcome(ref, CONFLICTED, message + ", which is older"), None, []
    session, problems = session_from_policy(policy, view.annotations)
    if session is None:
        return TargetOutcome(ref, INVALID, "; ".join(problems)), None, []
    message = f"{session.kind} sessions named {session.name!r}"
    return TargetOutcome(ref, ACCEPTED, message), session, problems


def attach(
    policies: Iterable[tuple[BackendLBPolicy, list[str]]],
    services: Mapping[tuple[str, str], ServiceView],
) -> Attachment:
    """Attach parsed policies (with their errors) to Services; labels fill the rest."""
    sessions: dict[tuple[str, str], SessionPolicy] = {}
    outcomes: dict[str, list[TargetOutcome]] = {}
    notes: dict[tuple[str, str], list[str]] = {}
    owner: dict[tuple[str, str], str] = {}
    for policy, errors in sorted(policies, key=lambda pe: _order(pe[0])):
        results = outcomes.setdefault(policy.key, [])
        for ref in policy.target_refs:
            outcome, session, problems = _judge(policy, errors, ref, services, owner)
            results.append(outcome)
            if session is not None:
                svc_key = (policy.namespace, ref.name)
                sessions[svc_key], owner[svc_key] = session, policy.key
                notes.setdefault(svc_key, []).extend(problems)
    for svc_key, view in services.items():
        labelled, problems = session_from_labels(*svc_key, view.labels, view.annotations)
        if svc_key in owner:
            if labelled is not None:
                notes[svc_key].append(
                    "Istio persistent-session label ignored: "
                    f"BackendLBPolicy {owner[svc_key]} applies"
                )
            continue
        if labelled is not None:
            sessions[svc_key] = labelled
        if problems:
            notes.setdefault(svc_key, []).extend(problems)
    return Attachment(sessions, outcomes, notes)


def _ancestor_ref(namespace: str, ref: TargetRef) -> dict[str, Any]:
    return {"group": ref.group, "kind": ref.kind, "name": ref.name, "namespace": namespace}


def policy_status(
    policy: BackendLBPolicy,
    outcomes: Iterable[TargetOutcome],
    previous: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    """The policy's ``status`` with tether's ancestor entries replaced and others kept.

    ``now`` is an RFC 3339 time, used as ``lastTransitionTime`` only for conditions whose status
    changed (or are new). At most ``MAX_ANCESTORS`` entries in all: when other controllers fill
    the list, tether adds no further entries (as the API requires).
    """
    previous_ancestors = list((previous or {}).get("ancestors") or [])
    others = [a for a in previous_ancestors if a.get("controllerName") != CONTROLLER]
    ours_before = {
        _ref_key(a.get("ancestorRef") or {}): a
        for a in previous_ancestors
        if a.get("controllerName") == CONTROLLER
    }
    ancestors = list(others)
    for outcome in outcomes:
        if len(ancestors) >= MAX_ANCESTORS:
            break
        ref = _ancestor_ref(policy.namespace, outcome.ref)
        status = "True" if outcome.accepted else "False"
        before = _accepted(ours_before.get(_ref_key(ref)))
        since = before["lastTransitionTime"] if before and before.get("status") == status else now
        condition = {
            "type": "Accepted",
            "status": status,
            "reason": outcome.reason,
            "message": outcome.message,
            "lastTransitionTime": since,
        }
        if policy.generation is not None:
            condition["observedGeneration"] = policy.generation
        ancestors.append(
            {"ancestorRef": ref, "controllerName": CONTROLLER, "conditions": [condition]}
        )
    return {"ancestors": ancestors}


def _ref_key(ref: Mapping[str, Any]) -> tuple:
    return (
        ref.get("group", ""),
        ref.get("kind", ""),
        ref.get("namespace", ""),
        ref.get("name", ""),
    )


def _accepted(entry: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    for condition in (entry or {}).get("conditions") or ():
        if condition.get("type") == "Accepted":
            return condition
    return None
