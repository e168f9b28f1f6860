"""Persistent sessions end to end (lab and kind): Istio's label on the Service, tether's
operator and gateway from deploy/, real pods, real HTTP.

What a user checks: a browser keeps the cookie the gateway set and stays on its pod; scaling
3→5 moves no session; deleting a pod moves only that pod's sessions; a rolling update moves
each session about once; both gateway replicas honour each other's cookies and agree on
expiry; a forged cookie is refused, counted and never reaches the address it names; strict
sessions get 503 when their pod is gone; rotated keys keep old cookies valid through the
overlap. On the lab the gateway is reached at its pod IP; on kind from the host through the
NodePort (any replica), and which pod answered comes from the gateway's access log.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest

from tether.cli.demo_http import Connection, SessionClient, request, session_cookie, visit
from tether.hashing.session import (
    KeyRing,
    SigningKey,
    encode_envoy_cookie,
    issue,
    spec_from_model,
    to_keyring,
)
from tether.lab.testing import wait_until
from tether.models import session_keys as sk

from .deploy import (
    EXAMPLES,
    TABLES_NS,
    gateway_pods,
    httpbin_settled,
    metrics,
    ready_pods_in_table,
    table_doc,
)
from .test_gateway import Gateway

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tether_gateway")]

NAME = "shop"


def _setup(
    cluster, ns: str, replicas: int = 3, strict: bool = False, manifest: str | None = None
) -> tuple[Gateway, str]:
    """httpbin (deploy/examples, or ``manifest``) with persistent sessions ``shop``; every
    gateway replica issues its cookies."""
    if manifest is None:
        cluster.kubectl("apply", "-n", ns, "-f", str(EXAMPLES / "httpbin.yaml"))
    else:
        cluster.apply(manifest, namespace=ns)
    if replicas != 3:
        cluster.kubectl("scale", "deployment/httpbin", "-n", ns, f"--replicas={replicas}")
    httpbin_settled(cluster, ns, replicas)
    if strict:
        cluster.kubectl("annotate", "service", "httpbin", "-n", ns,
                        "tether.dev/session-strict=true")  # fmt: skip
    cluster.kubectl("label", "service", "httpbin", "-n", ns, f"istio.io/persistent-session={NAME}")
    wait_until(
        lambda: (s := table_doc(cluster, ns, "httpbin", 8000).session) and s.strict == strict,
        timeout=30,
        what="the session block in the table",
    )
    gw = Gateway(cluster)
    host = f"httpbin.{ns}"
    _wait_replicas(cluster, host, bool)  # every replica serves the session route
    return gw, host


def _replica_ips(cluster) -> list[str]:
    return [p["status"]["podIP"] for p in gateway_pods(cluster)]


def _at(cluster, ip: str, host: str, cookie: str | None = None):
    """One request to the gateway replica at pod IP ``ip`` (from the cluster's network)."""
    conn = Connection(ip, 8080, cluster.connect)
    try:
        return request(ip, 8080, "/get", cookie, conn, {"Host": host})
    finally:
        conn.close()


def _via(gw: Gateway, host: str, cookie: str | None = None):
    """One request through the gateway's user-facing address."""
    conn = Connection(*gw.addr, gw.connect)
    try:
        return request(*gw.addr, "/get", cookie, conn, {"Host": host})
    finally:
        conn.close()


def _gw_metric(cluster, name: str, *labels: str) -> float:
    """Sum over gateway replicas of the samples of ``name`` carrying every label given."""
    total = 0.0
    for pod in gateway_pods(cluster):
        for sample, value in metrics(pod, 9901, cluster).items():
            if sample.startswith(name + "{") and all(lb in sample for lb in labels):
                total += value
    return total


def _open(gw: Gateway, host: str, n: int) -> list[SessionClient]:
    """``n`` browsers, each after its first visit: a session cookie and a pod."""
    clients = [SessionClient(NAME) for _ in range(n)]
    visit(*gw.addr, clients, answers=gw.answers, connect_fn=gw.connect, headers={"Host": host})
    assert all(c.cookie for c in clients)
    return clients


def _again(gw: Gateway, host: str, clients: list[SessionClient]):
    return visit(*gw.addr, clients, answers=gw.answers, connect_fn=gw.connect,
                 headers={"Host": host})  # fmt: skip


def test_scale_up_moves_no_session(cluster, namespace: str):
    gw, host = _setup(cluster, namespace)
    clients = _open(gw, host, 300)
    assert len({c.pods[0] for c in clients}) == 3
    cluster.kubectl("scale", "deployment/httpbin", "-n", namespace, "--replicas=5")
    httpbin_settled(cluster, namespace, 5)
    wait_until(
        lambda: len({c.pods[0] for c in _open(gw, host, 60)}) == 5,
        timeout=60,
        what="new sessions on all 5 pods",
    )
    replies = _again(gw, host, clients)
    assert [c.moves for c in clients] == [0] * 300
    assert not any(session_cookie(r.set_cookies, NAME) for r in replies)


def test_deleting_a_pod_moves_only_its_sessions(cluster, namespace: str):
    gw, host = _setup(cluster, namespace)
    clients = _open(gw, host, 200)
    victim = clients[0].pods[0]
    cluster.kubectl("delete", "pod", victim, "-n", namespace, "--wait=true")
    wait_until(
        lambda: (p := ready_pods_in_table(table_doc(cluster, namespace, "httpbin", 8000)))
        and len(p) == 3 and victim not in p,
        timeout=120,
        what="the table without the deleted pod",
    )  # fmt: skip

    def moved_off():
        _again(gw, host, clients)
        return victim not in {c.pods[-1] for c in clients}

    wait_until(moved_off, timeout=60, what="the gateway to stop routing to the deleted pod")
    for c in clients:
        if c.pods[0] != victim:
            assert set(c.pods) == {c.pods[0]}, c.pods  # never moved
        else:
            after = c.pods[c.pods.index(next(p for p in c.pods if p != victim)) :]
            assert len(set(after)) == 1 and after[0] != victim, c.pods  # moved once


def test_rolling_update_moves_each_session_about_once(cluster, namespace: str):
    gw, host = _setup(cluster, namespace)
    clients = _open(gw, host, 100)
    before = {c.pods[0] for c in clients}
    statuses: list[int] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def browse() -> None:
        try:
            while not stop.is_set():
                statuses.extend(r.status for r in _again(gw, host, clients))
        except Exception as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    # As a user paces a rollout behind a proxy (minReadySeconds; or a preStop sleep): each new
    # pod serves long enough for the table to reach the gateway before an old pod is stopped.
    # Without it the lab's kubelet replaces all 3 pods faster than any table can follow, and
    # requests find only stopped pods in the gateway's (old) table.
    cluster.kubectl("patch", "deployment/httpbin", "-n", namespace,
                    "-p", '{"spec": {"minReadySeconds": 3}}')  # fmt: skip
    th = threading.Thread(target=browse)
    th.start()
    try:
        cluster.kubectl("rollout", "restart", "deployment/httpbin", "-n", namespace)
        cluster.kubectl("rollout", "status", "deployment/httpbin", "-n", namespace,
                        "--timeout=180s")  # fmt: skip
        wait_until(
            lambda: (p := ready_pods_in_table(table_doc(cluster, namespace, "httpbin", 8000)))
            and len(p) == 3 and not p & before,
            timeout=120,
            what="the table with only new pods",
        )  # fmt: skip
        mark = len(statuses)
        wait_until(lambda: errors or len(statuses) > mark + 2 * len(clients), timeout=60,
                   what="two more rounds after the rollout")  # fmt: skip
    finally:
        stop.set()
        th.join(timeout=60)
    assert not errors, errors
    assert set(statuses) == {200}, [s for s in statuses if s != 200][:5]
    assert all(c.pods[-1] not in before for c in clients)
    moves = sum(c.moves for c in clients) / len(clients)
    print(f"rolling update 3 pods: {moves:.2f} moves per session (optimum 1)")
    assert 1.0 <= moves <= 2.0


def test_gateway_replicas_honour_each_others_cookies_and_agree_on_expiry(cluster, namespace):
    gw, host = _setup(cluster, namespace)
    a, b = _replica_ips(cluster)[:2]
    first = _at(cluster, a, host)
    cookie = session_cookie(first.set_cookies, NAME)
    replies = [_at(cluster, ip, host, cookie) for ip in (b, a, b)]
    gw.answers.resolve([first, *replies])
    assert {r.pod for r in replies} == {first.pod}
    assert not any(r.set_cookies for r in replies)  # b verified a's signature: nothing re-issued
    doc = table_doc(cluster, namespace, "httpbin", 8000)
    ring = _ring(cluster)
    spec = spec_from_model(doc.session, namespace, "httpbin")
    addr = next(e.authority for e in doc.endpoints if e.pod == first.pod)
    expired, _ = issue(spec, addr, ring, int(time.time()) - spec.window - 60)
    name, label = "tether_gateway_session_decisions_total", 'reason="expired"'
    before = _gw_metric(cluster, name, label)
    for ip in (a, b):  # wall-clock expiry: both replicas see an expired value as expired
        r = _at(cluster, ip, host, f"{NAME}={expired}")
        assert session_cookie(r.set_cookies, NAME), ip
    assert _gw_metric(cluster, name, label) == before + 2


def _ring(cluster) -> KeyRing:
    """The cluster's key ring, each key usable for signing at any past instant (the tag does
    not cover when a key started signing), to make values as old as a test needs."""
    secret = cluster.kubectl_json("secret", sk.SECRET_NAME, "-n", TABLES_NS)
    ring = to_keyring(sk.loads_keyring(base64.b64decode(secret["data"][sk.SECRET_KEY])))
    return KeyRing(SigningKey(k.id, k.secret, 0, k.retires_at) for k in ring.keys)


def test_forged_cookie_is_refused_counted_and_never_forwarded(cluster, namespace: str):
    gw, host = _setup(cluster, namespace)
    cluster.kubectl("create", "deployment", "outsider", "-n", namespace,
                    "--image=docker.io/mccutchen/go-httpbin:v2.15.0")  # fmt: skip
    outsider = wait_until(
        lambda: (p := cluster.kubectl_json("pods", "-n", namespace, "-l", "app=outsider")["items"])
        and p[0]["status"].get("podIP"),
        timeout=120,
        what="the outsider pod's IP",
    )  # fmt: skip
    forged = f"{NAME}={encode_envoy_cookie(f'{outsider}:8080')}"
    before = _rejected(cluster)
    replies = gw.answers.resolve([_via(gw, host, forged) for _ in range(10)])
    pods = ready_pods_in_table(table_doc(cluster, namespace, "httpbin", 8000))
    assert {r.status for r in replies} == {200} and {r.pod for r in replies} <= pods
    assert all(session_cookie(r.set_cookies, NAME) for r in replies)  # a real session instead
    assert _rejected(cluster) == before + 10  # counted as they were refused
    tags = [r.tag for r in replies]
    # the access log is flushed within about a second: wait until every request's line is there
    logged = wait_until(lambda: (u := _logged_upstreams(cluster, tags)).keys() == set(tags) and u,
                        timeout=30, what="the access-log lines of the 10 requests")  # fmt: skip
    assert f"{outsider}:8080" not in set(logged.values())


def _rejected(cluster) -> float:
    return _gw_metric(cluster, "tether_gateway_session_values_rejected_total")


def _logged_upstreams(cluster, tags: list[str]) -> dict[str, str]:
    """tag → upstream address, from the gateways' access-log lines of the last 120 s."""
    out = cluster.kubectl("logs", "-n", TABLES_NS, "-l", "app.kubernetes.io/name=tether-gateway",
                          "--tail=-1", "--prefix=false", "--max-log-requests=20",
                          "--since=120s")  # fmt: skip
    found = {}
    for line in out.splitlines():
        if line.startswith("{"):
            for t in tags:
                if t in line:
                    found[t] = json.loads(line)["upstream_addr"]
    return found


def test_strict_sessions_get_503_when_their_pod_is_gone(cluster, namespace: str):
    gw, host = _setup(cluster, namespace, strict=True)
    [client] = _open(gw, host, 1)
    pod = client.pods[0]
    cluster.kubectl("delete", "pod", pod, "-n", namespace, "--wait=true")
    wait_until(
        lambda: pod not in ready_pods_in_table(table_doc(cluster, namespace, "httpbin", 8000)),
        timeout=120,
        what="the table without the session's pod",
    )

    wait_until(lambda: _via(gw, host, client.cookie).status == 503, timeout=60,
               what="503 for the strict session")  # fmt: skip
    assert _via(gw, host).status == 200  # a new session is served


def test_rotated_keys_keep_old_cookies_through_the_overlap(cluster, namespace: str):
    gw, host = _setup(cluster, namespace)
    [client] = _open(gw, host, 1)
    old_cookie, pod = client.cookie, client.pods[0]
    ring = sk.loads_keyring(
        base64.b64decode(cluster.kubectl_json("secret", sk.SECRET_NAME, "-n", TABLES_NS)
                         ["data"][sk.SECRET_KEY])
    )  # fmt: skip
    now = int(time.time())
    new_key = {"id": "k-e2e", "secret": base64.b64encode(b"n" * 32).decode(), "activatesAt": now}
    old = [k.model_dump(by_alias=True) | {"retiresAt": now + 3600} for k in ring.keys]
    try:
        _write_ring(cluster, {"version": 1, "keys": [*old, new_key]})
        _wait_replicas(cluster, host, lambda c: c and _key_id(c) == "k-e2e")  # new key signs
        renewed = SessionClient(NAME, old_cookie)
        _again(gw, host, [renewed])
        assert renewed.pods == [pod] and _key_id(renewed.cookie) == "k-e2e"
        _write_ring(cluster, {"version": 1, "keys": [new_key]})  # the old key retired
        _wait_replicas(cluster, host, lambda c: c and _key_id(c) == "k-e2e")
        label = 'reason="unknown-key"'
        before = _gw_metric(cluster, "tether_gateway_session_values_rejected_total", label)
        stale = SessionClient(NAME, old_cookie)
        _again(gw, host, [stale])
        assert stale.cookie != old_cookie  # refused (unknown key) and replaced
        after = _gw_metric(cluster, "tether_gateway_session_values_rejected_total", label)
        assert after == before + 1
        kept = SessionClient(NAME, renewed.cookie)
        _again(gw, host, [kept])
        assert kept.pods == [pod] and kept.cookie == renewed.cookie
    finally:  # the operator re-creates a fresh ring for the tests that follow
        cluster.kubectl("delete", "secret", sk.SECRET_NAME, "-n", TABLES_NS)
        wait_until(
            lambda: cluster.kubectl("get", "secret", sk.SECRET_NAME, "-n", TABLES_NS, check=False),
            timeout=60,
            what="a fresh key Secret",
        )


def _key_id(cookie: str) -> str:
    from tether.hashing.session import b64decode, parse_cookie

    return parse_cookie(b64decode(cookie.split("=", 1)[1].strip('"'))).key_id


def _write_ring(cluster, ring: dict) -> None:
    data = base64.b64encode(json.dumps(ring).encode()).decode()
    cluster.apply(
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {sk.SECRET_NAME}, namespace: "
        f"{TABLES_NS}}}\ntype: Opaque\ndata: {{{sk.SECRET_KEY}: {data}}}\n"
    )


def _wait_replicas(cluster, host: str, ok) -> None:
    """Every gateway replica issues cookies that satisfy ``ok`` (it loaded the ring)."""
    for ip in _replica_ips(cluster):
        wait_until(
            lambda ip=ip: ok(session_cookie(_at(cluster, ip, host).set_cookies, NAME)),
            timeout=60,
            what=f"gateway {ip} to issue session cookies from the key ring",
        )
