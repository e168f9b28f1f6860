"""Persistent sessions in the operator: session blocks in the tables, BackendLBPolicy status,
Warning Events for session settings, and which keys a policy or Service event marks.

Runs the real Controller and caches against the fake API (real preconditions).
"""

from __future__ import annotations

import copy
import json

import pytest

from tether.k8s import kopf_io
from tether.k8s.tables import StatusPatch
from tether.models import table as t
from tether.models.policy_attachment import CONTROLLER

from .fake_api import FakeApi, endpointslice, service
from .test_controller import KEY, TABLE, Replica

POLICY_KEY = ("#policy", "default/shop")


@pytest.fixture
def api(monkeypatch) -> FakeApi:
    fake = FakeApi()
    monkeypatch.setattr(kopf_io, "request", fake.request)
    return fake


def labelled(value: str, **annotations) -> dict:
    svc = service(**annotations)
    svc["metadata"]["labels"] = {"istio.io/persistent-session": value, "app": "httpbin"}
    return svc


def policy(name="shop", target="httpbin", created="2026-01-01T00:00:00Z", rv="1", **sp) -> dict:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1alpha2",
        "kind": "BackendLBPolicy",
        "metadata": {"name": name, "namespace": "default", "generation": 1, "uid": f"u-{name}",
                     "creationTimestamp": created, "resourceVersion": rv},
        "spec": {
            "targetRefs": [{"group": "", "kind": "Service", "name": target}],
            "sessionPersistence": sp or {"sessionName": "shop", "type": "Cookie"},
        },
    }  # fmt: skip


class SessionReplica(Replica):
    def __init__(self, api: FakeApi, services=(), slices=(), policies=()) -> None:
        super().__init__(api, services, slices)
        self.ctl.policy_status = StatusPatch(None, kopf_io.BACKENDLBPOLICIES)
        for p in policies:
            api.policies[(p["metadata"]["namespace"], p["metadata"]["name"])] = p
        self.view.policies.replace(list(policies))
        self.marks.clear()

    def policy_watch(self) -> None:
        """The watch brings every policy's current state (status written by the operator)."""
        for p in self.api.policies.values():
            self.view.policies.handle("MODIFIED", copy.deepcopy(p))


def _doc(api: FakeApi) -> dict:
    return json.loads(api.configmaps[TABLE]["data"][t.DATA_KEY])


def _accepted(api: FakeApi, name="shop") -> list[tuple[str, str]]:
    status = api.policies[("default", name)].get("status") or {}
    return [
        (c["status"], c["reason"])
        for a in status.get("ancestors", [])
        if a["controllerName"] == CONTROLLER
        for c in a["conditions"]
    ]


def test_istio_label_puts_a_cookie_session_in_a_version_2_document(api):
    SessionReplica(api, [labelled("shop")], [endpointslice()]).sync()
    doc = _doc(api)
    assert doc["schemaVersion"] == 2
    assert doc["session"] == {"kind": "cookie", "name": "shop", "path": "/", "signing": "signed",
                              "strict": False, "drain": True, "attributes": [],
                              "source": {"kind": "Service", "namespace": "default",
                                         "name": "httpbin"}}  # fmt: skip
    t.loads(api.configmaps[TABLE]["data"][t.DATA_KEY])  # verifies (checksum, version rule)


def test_without_sessions_the_document_is_version_1_and_unchanged(api):
    SessionReplica(api, [service()], [endpointslice()]).sync()
    doc = _doc(api)
    assert doc["schemaVersion"] == 1 and "session" not in doc


def test_label_removed_turns_sessions_off_with_one_write(api):
    r = SessionReplica(api, [labelled("shop")], [endpointslice()])
    r.sync()
    api.deliver(r.view.tables)
    plain = service()
    plain["metadata"]["resourceVersion"] = "2"
    r.view.services.handle("MODIFIED", plain)
    assert KEY in r.marks
    r.sync(*r.marks)
    assert _doc(api)["schemaVersion"] == 1 and "session" not in _doc(api)
    assert "persistent sessions off" in r.events.posted[-1][3]


def test_policy_wins_over_the_label_status_accepted_and_the_label_reported_once(api):
    svc = labelled("istio-cookie", **{"tether.dev/session-strict": "true"})
    shop = policy(sessionName="shop", idleTimeout="30m")
    r = SessionReplica(api, [svc], [endpointslice()], [shop])
    r.sync(KEY, POLICY_KEY)
    session = _doc(api)["session"]
    assert (session["name"], session["strict"]) == ("shop", True)
    assert session["idleTimeoutSeconds"] == 1800
    assert session["source"]["kind"] == "BackendLBPolicy"
    assert _accepted(api) == [("True", "Accepted")]
    warnings = [p for p in r.events.posted if p[1] == "Warning"]
    assert [w[2] for w in warnings] == ["SessionSettings"]
    assert "label ignored" in warnings[0][3] and warnings[0][0]["kind"] == "Service"
    api.deliver(r.view.tables)
    r.policy_watch()
    writes, posted = len(api.writes), len(r.events.posted)
    r.sync(KEY, POLICY_KEY)
    assert len(api.writes) == writes and len(r.events.posted) == posted  # nothing changed


def test_older_policy_wins_the_younger_is_conflicted_until_the_older_goes(api):
    old = policy("shop", created="2026-01-01T00:00:00Z")
    young = policy("cart", created="2026-02-01T00:00:00Z", sessionName="cart")
    r = SessionReplica(api, [service()], [endpointslice()], [old, young])
    r.sync(KEY, POLICY_KEY, ("#policy", "default/cart"))
    assert _doc(api)["session"]["name"] == "shop"
    assert _accepted(api, "shop") == [("True", "Accepted")]
    assert _accepted(api, "cart") == [("False", "Conflicted")]
    r.policy_watch()
    api.deliver(r.view.tables)
    r.marks.clear()
    deleted = api.policies.pop(("default", "shop"))
    r.view.policies.handle("DELETED", deleted)
    assert KEY in r.marks and ("#policy", "default/cart") in r.marks
    r.sync(*r.marks)
    assert _doc(api)["session"]["name"] == "cart"
    assert _accepted(api, "cart") == [("True", "Accepted")]


def test_policy_for_a_missing_service_is_accepted_once_the_service_appears(api):
    r = SessionReplica(api, [], [endpointslice()], [policy()])
    r.sync(POLICY_KEY)
    assert _accepted(api) == [("False", "TargetNotFound")]
    before = api.policies[("default", "shop")]["status"]["ancestors"][0]["conditions"][0]
    r.policy_watch()
    r.marks.clear()
    r.view.services.handle("ADDED", service())
    assert r.marks == [KEY, POLICY_KEY]
    r.sync(*r.marks)
    after = api.policies[("default", "shop")]["status"]["ancestors"][0]["conditions"][0]
    assert (after["status"], after["reason"]) == ("True", "Accepted")
    assert after["observedGeneration"] == 1 and before["lastTransitionTime"]
    assert _doc(api)["session"]["name"] == "shop"


def test_invalid_policy_is_reported_and_gives_no_session(api):
    bad = policy(type="Cookie", cookieConfig={"lifetimeType": "Permanent"})
    r = SessionReplica(api, [service()], [endpointslice()], [bad])
    r.sync(KEY, POLICY_KEY)
    assert "session" not in _doc(api)
    cond = api.policies[("default", "shop")]["status"]["ancestors"][0]["conditions"][0]
    assert (cond["status"], cond["reason"]) == ("False", "Invalid")
    assert "AbsoluteTimeout must be specified" in cond["message"]


def test_status_of_other_controllers_is_kept(api):
    condition = {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip
    theirs = {"ancestorRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                              "name": "gw", "namespace": "default"},
              "controllerName": "example.com/other", "conditions": [condition]}  # fmt: skip
    p = policy()
    p["status"] = {"ancestors": [theirs]}
    SessionReplica(api, [service()], [endpointslice()], [p]).sync(POLICY_KEY)
    ancestors = api.policies[("default", "shop")]["status"]["ancestors"]
    assert ancestors[0] == theirs and ancestors[1]["controllerName"] == CONTROLLER


def test_status_only_change_of_a_policy_marks_only_its_status(api):
    r = SessionReplica(api, [service()], [endpointslice()], [policy()])
    changed = policy(rv="2")
    changed["status"] = {"ancestors": []}
    r.view.policies.handle("MODIFIED", changed)
    assert r.marks == [POLICY_KEY]


def test_policy_retargeted_marks_both_services(api):
    r = SessionReplica(api, [service(), service("other")], [endpointslice()], [policy()])
    r.view.policies.handle("MODIFIED", policy(target="other", rv="2"))
    assert set(r.marks) == {KEY, ("default", "other"), POLICY_KEY}
    assert r.view.sessions.policies_of(KEY) == set()
    assert r.view.sessions.policies_of(("default", "other")) == {"default/shop"}


def test_closed_gate_writes_no_policy_status(api):
    r = SessionReplica(api, [service()], [endpointslice()], [policy()])
    r.open = False
    r.sync(KEY, POLICY_KEY)
    assert api.writes == [] and "status" not in api.policies[("default", "shop")]


def test_bad_session_annotation_is_one_warning_and_the_default(api):
    svc = labelled("shop", **{"tether.dev/session-signing": "maybe"})
    r = SessionReplica(api, [svc], [endpointslice()])
    r.sync()
    assert _doc(api)["session"]["signing"] == "signed"
    [warning] = [p for p in r.events.posted if p[1] == "Warning"]
    assert "tether.dev/session-signing" in warning[3]
    api.deliver(r.view.tables)
    r.sync()
    assert len([p for p in r.events.posted if p[1] == "Warning"]) == 1
