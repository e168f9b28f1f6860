"""Persistent sessions in the operator on a real cluster (lab or kind), checked with kubectl.

What a user does and sees: label a Service with Istio's persistent-session label, or apply a
Gateway API BackendLBPolicy (whose CRD may be installed after the operator started), and the
Service's table carries the session settings; the policy's status says Accepted, Conflicted
or TargetNotFound; the signing keys live in one Secret the operator creates, rotates and
re-creates; the operator's RBAC reaches that Secret and nothing else.
"""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest

from tether.lab.testing import wait_until
from tether.models import session_keys as sk
from tether.models.policy_attachment import CONTROLLER

from .deploy import (
    EXAMPLES,
    ROOT,
    TABLES_NS,
    crd_established,
    httpbin_settled,
    operator_pods,
    table_doc,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tether_operator")]

CRD = "backendlbpolicies.gateway.networking.k8s.io"
CRD_FILE = ROOT / "crds" / "gateway-api" / "backendlbpolicy.yaml"
POLICY = """
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: BackendLBPolicy
metadata: {{name: {name}, namespace: {ns}}}
spec:
  targetRefs: [{{group: "", kind: Service, name: {target}}}]
  sessionPersistence: {{sessionName: {session}, type: Cookie, idleTimeout: 30m}}
"""


def install_crd(cluster) -> None:
    """Apply tether's BackendLBPolicy CRD and wait until it serves."""
    cluster.kubectl("apply", "-f", str(CRD_FILE))
    wait_until(lambda: crd_established(cluster, CRD), timeout=60, what="BackendLBPolicy CRD")


def apply_policy(cluster, ns: str, name: str, session: str, target: str = "httpbin") -> None:
    """A BackendLBPolicy with cookie sessions on ``target``."""
    cluster.apply(POLICY.format(ns=ns, name=name, session=session, target=target))


def accepted(cluster, ns: str, name: str) -> list[tuple[str, str, str]]:
    """(target, status, reason) of tether's Accepted conditions on a policy."""
    obj = cluster.kubectl_json("backendlbpolicy", name, "-n", ns)
    return [
        (a["ancestorRef"]["name"], c["status"], c["reason"])
        for a in (obj.get("status") or {}).get("ancestors", [])
        if a["controllerName"] == CONTROLLER
        for c in a["conditions"]
        if c["type"] == "Accepted"
    ]


def session_of(cluster, ns: str):
    """The session block of ns/httpbin's table (None: no sessions, or no table yet)."""
    doc = table_doc(cluster, ns, "httpbin", 8000)
    return doc.session if doc else None


def _restarts(cluster) -> int:
    return sum(
        s.get("restartCount", 0)
        for p in operator_pods(cluster)
        for s in p["status"].get("containerStatuses", [])
    )


def _httpbin(cluster, ns: str) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", str(EXAMPLES / "httpbin.yaml"))
    httpbin_settled(cluster, ns, 3)


def test_policy_crd_installed_after_the_operator_is_picked_up_without_a_restart(
    cluster, namespace: str
):
    cluster.kubectl("delete", "crd", CRD, "--ignore-not-found", "--wait=true")
    restarts = _restarts(cluster)
    _httpbin(cluster, namespace)  # the operator publishes tables without the CRD
    assert table_doc(cluster, namespace, "httpbin", 8000).schema_version == 1
    install_crd(cluster)
    apply_policy(cluster, namespace, "shop", "shop")
    session = wait_until(
        lambda: session_of(cluster, namespace), timeout=60, what="the policy's session block"
    )
    assert (session.kind, session.name, session.idle_timeout_seconds) == ("cookie", "shop", 1800)
    assert session.source.kind == "BackendLBPolicy" and session.source.name == "shop"
    assert table_doc(cluster, namespace, "httpbin", 8000).schema_version == 2
    wait_until(
        lambda: accepted(cluster, namespace, "shop") == [("httpbin", "True", "Accepted")],
        timeout=30,
        what="status Accepted",
    )
    assert _restarts(cluster) == restarts and len(operator_pods(cluster, ready=True)) == 2


def test_policy_status_conflicted_and_target_not_found(cluster, namespace: str):
    install_crd(cluster)
    _httpbin(cluster, namespace)
    apply_policy(cluster, namespace, "a-shop", "shop")
    wait_until(lambda: session_of(cluster, namespace), timeout=30, what="the first policy")
    apply_policy(cluster, namespace, "b-cart", "cart")  # younger (or same second, later name)
    apply_policy(cluster, namespace, "c-none", "none", target="nothing")
    wait_until(
        lambda: (
            accepted(cluster, namespace, "b-cart") == [("httpbin", "False", "Conflicted")]
            and accepted(cluster, namespace, "c-none") == [("nothing", "False", "TargetNotFound")]
        ),
        timeout=30,
        what="Conflicted and TargetNotFound",
    )
    assert accepted(cluster, namespace, "a-shop") == [("httpbin", "True", "Accepted")]
    assert session_of(cluster, namespace).name == "shop"
    cluster.kubectl("delete", "backendlbpolicy", "a-shop", "-n", namespace)
    wait_until(
        lambda: (s := session_of(cluster, namespace)) and s.name == "cart",
        timeout=30,
        what="the remaining policy's sessions",
    )
    wait_until(
        lambda: accepted(cluster, namespace, "b-cart") == [("httpbin", "True", "Accepted")],
        timeout=30,
        what="the remaining policy Accepted",
    )


def test_istio_label_and_annotations_give_sessions_and_removing_the_label_ends_them(
    cluster, namespace: str
):
    _httpbin(cluster, namespace)
    cluster.kubectl(
        "label", "service", "httpbin", "-n", namespace, "istio.io/persistent-session=shop"
    )
    cluster.kubectl(
        "annotate", "service", "httpbin", "-n", namespace, "tether.dev/session-strict=true",
        "tether.dev/session-signing=sometimes",
    )  # fmt: skip
    session = wait_until(
        lambda: (s := session_of(cluster, namespace)) and s.strict and s, timeout=30,
        what="cookie sessions, strict",
    )  # fmt: skip
    assert (session.kind, session.name, session.path, session.signing) == (
        "cookie", "shop", "/", "signed",  # the unusable signing value falls back to the default
    )  # fmt: skip
    assert session.source.kind == "Service"

    def warning():
        events = cluster.kubectl_json(
            "events", "-n", namespace, "--field-selector",
            "involvedObject.kind=Service,involvedObject.name=httpbin,reason=SessionSettings",
        )["items"]  # fmt: skip
        return [e["message"] for e in events if e["type"] == "Warning"]

    [message] = wait_until(warning, timeout=30, what="a SessionSettings Warning on the Service")
    assert "tether.dev/session-signing" in message and "sometimes" in message
    cluster.kubectl("label", "service", "httpbin", "-n", namespace, "istio.io/persistent-session-")
    doc = wait_until(
        lambda: (d := table_doc(cluster, namespace, "httpbin", 8000)) and not d.session and d,
        timeout=30,
        what="sessions off",
    )
    assert doc.schema_version == 1


def _keyring(cluster) -> sk.SessionKeyRing | None:
    out = cluster.kubectl(
        "get", "secret", sk.SECRET_NAME, "-n", TABLES_NS, "-o", "json", check=False
    )
    if not out.strip():
        return None
    data = json.loads(out)["data"][sk.SECRET_KEY]
    return sk.loads_keyring(base64.b64decode(data))


def _write_keyring(cluster, ring: dict) -> None:
    text = json.dumps(ring)
    cluster.apply(
        f"""
apiVersion: v1
kind: Secret
metadata: {{name: {sk.SECRET_NAME}, namespace: {TABLES_NS}}}
type: Opaque
data: {{{sk.SECRET_KEY}: {base64.b64encode(text.encode()).decode()}}}
"""
    )


def test_session_key_secret_is_created_rotated_when_due_and_recreated(cluster):
    ring = wait_until(lambda: _keyring(cluster), timeout=60, what="the session-key Secret")
    assert len(ring.keys) >= 1 and all(len(k.secret_bytes) == 32 for k in ring.keys)
    now = int(time.time())
    old_secret = base64.b64encode(secrets.token_bytes(32)).decode()
    month_old = {"id": "k-old", "secret": old_secret, "activatesAt": now - 31 * 86_400}
    _write_keyring(cluster, {"version": 1, "keys": [month_old]})
    rotated = wait_until(
        lambda: (r := _keyring(cluster)) and len(r.keys) == 2 and r,
        timeout=60,
        what="the operator to rotate a 31-day-old key",
    )
    old, new = rotated.keys
    assert old.id == "k-old" and old.secret == old_secret  # the old key is kept ...
    assert new.activates_at - now >= 300 - 5  # ... the new one signs after propagation
    assert old.retires_at == new.activates_at + 2 * 86_400  # 48 h overlap
    cluster.kubectl("delete", "secret", sk.SECRET_NAME, "-n", TABLES_NS)
    fresh = wait_until(
        lambda: (r := _keyring(cluster)) and r.keys[0].id != "k-old" and r,
        timeout=60,
        what="the operator to re-create the deleted Secret",
    )
    assert len(fresh.keys) == 1 and fresh.keys[0].retires_at is None


def _can(cluster, sa: str, *args: str) -> bool:
    out = cluster.kubectl(
        "auth", "can-i", *args, "-n", TABLES_NS,
        f"--as=system:serviceaccount:{TABLES_NS}:{sa}", check=False,
    )  # fmt: skip
    return out.strip() == "yes"


def test_operator_rbac_reaches_the_key_secret_and_no_other(cluster):
    sa = "tether-operator"
    name = f"secrets/{sk.SECRET_NAME}"
    assert all(_can(cluster, sa, verb, name) for verb in ("get", "update", "watch", "list"))
    assert _can(cluster, sa, "create", "secrets")  # create cannot be narrowed by name
    assert not _can(cluster, sa, "get", "secrets/another")
    assert not _can(cluster, sa, "list", "secrets")
    assert not _can(cluster, sa, "delete", name)
    assert not _can(cluster, sa, "patch", name)
    assert _can(cluster, sa, "patch", "backendlbpolicies.gateway.networking.k8s.io",
                "--subresource=status")  # fmt: skip
    assert _can(cluster, sa, "watch", "backendlbpolicies.gateway.networking.k8s.io")
    assert not _can(cluster, sa, "update", "backendlbpolicies.gateway.networking.k8s.io")
