"""Session settings from Istio's Service labels, tether's annotations and Gateway API
BackendLBPolicy: parsing, validation messages, attachment and policy status."""

from __future__ import annotations

import copy

import pytest

from tether.models.gateway_api import (
    PERMANENT_RULE,
    gateway_duration_seconds,
    parse_backend_lb_policy,
)
from tether.models.policy_attachment import (
    CONTROLLER,
    ServiceView,
    attach,
    policy_status,
)
from tether.models.session import (
    EMPTY_COOKIE,
    session_from_labels,
    session_options,
)


def labels_session(labels, annotations=None):
    return session_from_labels("default", "httpbin", labels, annotations or {})


# -- Istio labels and tether annotations -------------------------------------------------------


def test_istio_cookie_label_default_path_and_envoy_ttl_zero():
    session, errors = labels_session({"istio.io/persistent-session": "sticky"})
    assert errors == []
    assert (session.kind, session.name, session.path) == ("cookie", "sticky", "/")
    assert session.cookie_max_age_seconds is None and session.absolute_timeout_seconds is None
    assert (session.strict, session.signing, session.drain) == (False, "signed", True)
    assert (session.source.kind, session.source.name) == ("Service", "httpbin")


def test_istio_cookie_label_with_path_and_cookie_winning_over_header():
    session, _ = labels_session(
        {
            "istio.io/persistent-session": "sid:/Service/Method",
            "istio.io/persistent-session-header": "x-session",
        }
    )
    assert (session.kind, session.name, session.path) == ("cookie", "sid", "/Service/Method")
    session, _ = labels_session({"istio.io/persistent-session": "sid:"})
    assert session.path == ""  # strings.Cut found ":" -> empty path: Envoy matches every path


def test_istio_header_label_and_unset_labels():
    session, _ = labels_session({"istio.io/persistent-session-header": "x-session"})
    assert (session.kind, session.name, session.path) == ("header", "x-session", "")
    assert labels_session({}) == (None, [])
    assert labels_session({"istio.io/persistent-session": ""}) == (None, [])


def test_empty_cookie_name_is_refused_with_envoys_message():
    assert labels_session({"istio.io/persistent-session": ":/x"}) == (
        None,
        [f"label istio.io/persistent-session: {EMPTY_COOKIE}"],
    )


def test_tether_annotations():
    session, errors = labels_session(
        {"istio.io/persistent-session": "sid"},
        {
            "tether.dev/session-strict": "true",
            "tether.dev/session-signing": "compat",
            "tether.dev/session-drain": "false",
        },
    )
    assert errors == [] and (session.strict, session.signing, session.drain) == (
        True,
        "compat",
        False,
    )
    options, errors = session_options(
        {"tether.dev/session-strict": "yes", "tether.dev/session-signing": "hmac"}
    )
    assert options == (False, "signed", True)
    assert errors == [
        'annotation tether.dev/session-strict must be "true" or "false", got "yes"',
        'annotation tether.dev/session-signing must be "signed", "compat" or "unsigned", '
        'got "hmac"',
    ]


# -- BackendLBPolicy ---------------------------------------------------------------------------

POLICY = {
    "apiVersion": "gateway.networking.k8s.io/v1alpha2",
    "kind": "BackendLBPolicy",
    "metadata": {
        "namespace": "default",
        "name": "sticky",
        "generation": 3,
        "creationTimestamp": "2025-06-01T10:00:00Z",
    },
    "spec": {
        "targetRefs": [{"group": "", "kind": "Service", "name": "httpbin"}],
        "sessionPersistence": {
            "sessionName": "cart",
            "absoluteTimeout": "1h30m",
            "idleTimeout": "500ms",
            "cookieConfig": {"lifetimeType": "Permanent"},
        },
    },
}


def policy(**spec_over):
    obj = copy.deepcopy(POLICY)
    obj["spec"].update(spec_over)
    return obj


def test_gateway_api_durations():
    assert gateway_duration_seconds("1h30m") == 5400
    assert gateway_duration_seconds("500ms") == 1  # fractions round up
    assert gateway_duration_seconds("0s") == 0
    for bad in ("1d", "1.5h", "", "100000s", "1h1m1s1ms1h"):
        with pytest.raises(ValueError):
            gateway_duration_seconds(bad)


def test_valid_policy_parses():
    parsed, errors = parse_backend_lb_policy(POLICY)
    assert errors == []
    assert parsed.key == "default/sticky" and parsed.generation == 3
    assert parsed.target_refs == (("", "Service", "httpbin"),)
    assert parsed.session_persistence == ("cart", "Cookie", 5400, 1, "Permanent")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"targetRefs": []},
            "spec.targetRefs: Invalid value: 0: spec.targetRefs in body should"
            " have at least 1 items",
        ),
        (
            {"targetRefs": [{"group": "", "kind": "Service", "name": f"s{i}"} for i in range(17)]},
            "spec.targetRefs: Too many: 17: must have at most 16 items",
        ),
        (
            {"targetRefs": [{"group": "", "kind": "Service", "name": "a"}] * 2},
            'spec.targetRefs[1]: Duplicate value: {"group":"","kind":"Service","name":"a"}',
        ),
        (
            {"targetRefs": [{"kind": "Service", "name": "a"}]},
            "spec.targetRefs[0].group: Required value",
        ),
        (
            {"targetRefs": [{"group": "", "kind": "Service", "name": ""}]},
            'spec.targetRefs[0].name: Invalid value: "": spec.targetRefs[0].name in body should be'
            " at least 1 chars long",
        ),
        (
            {"sessionPersistence": {"absoluteTimeout": "1d"}},
            'spec.sessionPersistence.absoluteTimeout: Invalid value: "1d": spec.sessionPersistence.'
            "absoluteTimeout in body should match '^([0-9]{1,5}(h|m|s|ms)){1,4}$'",
        ),
        (
            {"sessionPersistence": {"type": "Query"}},
            'spec.sessionPersistence.type: Unsupported value: "Query": supported values: "Cookie", '
            '"Header"',
        ),
        (
            {"sessionPersistence": {"sessionName": "x" * 129}},
            "spec.sessionPersistence.sessionName: Too long: may not be more than 128 bytes",
        ),
        (
            {"sessionPersistence": {"cookieConfig": {"lifetimeType": "Permanent"}}},
            f'spec.sessionPersistence: Invalid value: "object": {PERMANENT_RULE}',
        ),
        (
            {"sessionPersistence": {"sessionName": "my cart"}},
            'spec.sessionPersistence.sessionName: Invalid value: "my cart": must be a valid cookie'
            " name",
        ),
        (
            {"sessionPersistence": {"type": "Header", "sessionName": "x:y"}},
            'spec.sessionPersistence.sessionName: Invalid value: "x:y": must be a valid header'
            " name",
        ),
        (
            {"sessionPersistence": {"idleTimeout": "0s"}},
            'spec.sessionPersistence.idleTimeout: Invalid value: "0s": must be greater than 0',
        ),
    ],
)
def test_invalid_policies_say_why(spec, message):
    parsed, errors = parse_backend_lb_policy(policy(**spec))
    assert parsed.session_persistence is None
    assert any(e.startswith(message) for e in errors), errors


def test_missing_target_refs_and_spec():
    obj = copy.deepcopy(POLICY)
    del obj["spec"]["targetRefs"]
    assert parse_backend_lb_policy(obj)[1] == ["spec.targetRefs: Required value"]
    assert parse_backend_lb_policy({"metadata": {}})[1] == ["spec: Required value"]


# -- attachment and status ---------------------------------------------------------------------

SERVICES = {
    ("default", "httpbin"): ServiceView({}, {"tether.dev/session-strict": "true"}),
    ("default", "labelled"): ServiceView({"istio.io/persistent-session": "sid"}, {}),
}


def named(name, created, **spec_over):
    obj = policy(**spec_over)
    obj["metadata"].update(name=name, creationTimestamp=created)
    return parse_backend_lb_policy(obj)


def test_policy_gives_the_service_its_session_block():
    result = attach([named("sticky", "2025-06-01T10:00:00Z")], SERVICES)
    session = result.sessions[("default", "httpbin")]
    assert (session.kind, session.name, session.path) == ("cookie", "cart", "/")
    assert session.cookie_max_age_seconds == 5400 == session.absolute_timeout_seconds
    assert session.idle_timeout_seconds == 1 and session.strict is True
    assert (session.source.kind, session.source.name, session.source.generation) == (
        "BackendLBPolicy",
        "sticky",
        3,
    )
    assert result.outcomes["default/sticky"][0].reason == "Accepted"
    # The labelled Service keeps its label-based session.
    assert result.sessions[("default", "labelled")].source.kind == "Service"


def test_session_lifetime_cookie_and_header_defaults():
    session_cookie = named(
        "a", "2025-06-01T10:00:00Z", sessionPersistence={"absoluteTimeout": "10m"}
    )
    session = attach([session_cookie], SERVICES).sessions[("default", "httpbin")]
    assert (session.name, session.cookie_max_age_seconds, session.absolute_timeout_seconds) == (
        "tether-session",
        None,
        600,
    )
    header = named("b", "2025-06-01T10:00:00Z", sessionPersistence={"type": "Header"})
    session = attach([header], SERVICES).sessions[("default", "httpbin")]
    assert (session.kind, session.name, session.path) == ("header", "x-tether-session", "")


def test_oldest_policy_wins_and_the_other_is_conflicted():
    newer = named("newer", "2025-06-02T00:00:00Z")
    older = named("older", "2025-06-01T00:00:00Z")
    result = attach([newer, older], SERVICES)
    assert result.sessions[("default", "httpbin")].source.name == "older"
    (outcome,) = result.outcomes["default/newer"]
    assert outcome.reason == "Conflicted" and "default/older" in outcome.message
    # Same timestamp: namespace/name order decides.
    tie = attach([named("b", "2025-06-01T00:00:00Z"), named("a", "2025-06-01T00:00:00Z")], SERVICES)
    assert tie.sessions[("default", "httpbin")].source.name == "a"


def test_target_not_found_invalid_and_label_override():
    missing = named(
        "m", "2025-06-01T00:00:00Z", targetRefs=[{"group": "", "kind": "Service", "name": "nope"}]
    )
    foreign = named(
        "f",
        "2025-06-01T00:00:00Z",
        targetRefs=[{"group": "multicluster.x-k8s.io", "kind": "ServiceImport", "name": "httpbin"}],
    )
    bad = named("bad", "2025-06-01T00:00:00Z", sessionPersistence={"absoluteTimeout": "1d"})
    over = named(
        "over",
        "2025-06-03T00:00:00Z",
        targetRefs=[{"group": "", "kind": "Service", "name": "labelled"}],
    )
    result = attach([missing, foreign, bad, over], SERVICES)
    assert result.outcomes["default/m"][0][1:] == (
        "TargetNotFound",
        "Service default/nope not found",
    )
    assert result.outcomes["default/f"][0].reason == "TargetNotFound"
    assert result.outcomes["default/bad"][0].reason == "Invalid"
    assert result.sessions[("default", "labelled")].source.kind == "BackendLBPolicy"
    assert result.notes[("default", "labelled")] == [
        "Istio persistent-session label ignored: BackendLBPolicy default/over applies"
    ]


def test_unsigned_mode_cannot_carry_an_idle_timeout():
    services = {("default", "httpbin"): ServiceView({}, {"tether.dev/session-signing": "unsigned"})}
    result = attach([named("sticky", "2025-06-01T10:00:00Z")], services)
    assert ("default", "httpbin") not in result.sessions
    assert result.outcomes["default/sticky"][0].reason == "Invalid"
    assert "idleTimeout needs signed session values" in result.outcomes["default/sticky"][0].message


def test_status_follows_the_policy_conventions():
    parsed, errors = named("sticky", "2025-06-01T10:00:00Z")
    outcomes = attach([(parsed, errors)], SERVICES).outcomes["default/sticky"]
    other = {"ancestorRef": {"name": "gw"}, "controllerName": "example.net/gw", "conditions": []}
    status = policy_status(parsed, outcomes, {"ancestors": [other]}, "2025-06-01T10:00:05Z")
    assert status["ancestors"][0] == other  # other controllers' entries are kept
    ours = status["ancestors"][1]
    assert ours["controllerName"] == CONTROLLER
    assert ours["ancestorRef"] == {
        "group": "",
        "kind": "Service",
        "name": "httpbin",
        "namespace": "default",
    }
    assert ours["conditions"] == [
        {
            "type": "Accepted",
            "status": "True",
            "reason": "Accepted",
            "message": "cookie sessions named 'cart'",
            "lastTransitionTime": "2025-06-01T10:00:05Z",
            "observedGeneration": 3,
        }
    ]
    # Same status later: the transition time stays; a change of status moves it.
    again = policy_status(parsed, outcomes, status, "2025-06-01T11:00:00Z")
    assert again["ancestors"][1]["conditions"][0]["lastTransitionTime"] == "2025-06-01T10:00:05Z"
    conflicted = [outcomes[0]._replace(reason="Conflicted", message="x")]
    moved = policy_status(parsed, conflicted, again, "2025-06-01T12:00:00Z")
    assert moved["ancestors"][1]["conditions"][0]["lastTransitionTime"] == "2025-06-01T12:00:00Z"
    assert moved["ancestors"][1]["conditions"][0]["status"] == "False"


def test_status_never_exceeds_sixteen_ancestors():
    parsed, _ = named("sticky", "2025-06-01T10:00:00Z")
    others = [{"ancestorRef": {"name": f"g{i}"}, "controllerName": "x/y"} for i in range(16)]
    outcomes = attach([(parsed, [])], SERVICES).outcomes["default/sticky"]
    assert policy_status(parsed, outcomes, {"ancestors": others}, "t")["ancestors"] == others
