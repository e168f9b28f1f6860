"""Persistent sessions through the gateway, on real sockets, on both data paths.

What a user checks: the first reply sets the session cookie, every later request with it
reaches that pod; adding pods moves no session; a gone pod's sessions move (or get 503 when
strict); forged, tampered and unsigned values are refused, counted and never sent to the
address they name; a draining pod keeps its sessions and gets no new ones; Envoy's own values
work in compat and unsigned modes; header sessions replace the upstream's header; the signing
keys rotate with an overlap.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections import Counter

import pytest

from tether.hashing.session import encode_envoy_cookie, encode_header

from .conftest import backend_of, get, header
from .docs import cookie_key
from .sessions_docs import (
    NOW,
    fields_of,
    keyring_json,
    session_document,
    session_policy,
    signed,
    write_keys,
)

K1 = ("k1", b"1" * 32, NOW - 3600, None)
RING = keyring_json(K1)


def _setup(h, n=3, session=None, draining=(), ring=RING, **doc):
    backends = [h.backend(f"b{i}") for i in range(n)]
    keys = os.path.join(h.tables, "..", f"keys-{id(h)}.json")
    if ring is not None:
        write_keys(keys, ring)
    d = session_document(backends, session or session_policy(), draining, **doc)
    h.write_table("svc.json", d)
    gw = h.gateway(session_keys_file=keys)
    h.wait(lambda: gw.loaded and gw.keys_loaded and gw.router.default is not None)
    return gw, backends, d, keys


def _publish(h, gw, backends, session=None, draining=(), **doc):
    d = session_document(backends, session or session_policy(), draining, **doc)
    h.write_table("svc.json", d)
    h.wait(lambda: gw.router.default is not None and gw.router.default.checksum == d.checksum)
    return d


def _cookie(set_cookies: list[str], name="shop") -> str:
    [sc] = [c for c in set_cookies if c.startswith(f"{name}=")]
    return sc.split(";", 1)[0]


def _counts(gw) -> dict[str, int]:
    return dict(gw.metrics.sessions.get("default/httpbin:8000", {}))


def test_first_reply_sets_a_signed_cookie_and_the_session_stays(h):
    gw, backends, _, _ = _setup(h)
    _, headers, body, conn = get(gw.port, "/get")
    first = backend_of(body)
    [sc] = header(headers, "set-cookie")
    assert sc.startswith('shop="') and sc.endswith('"; Path=/; HttpOnly')
    fields = fields_of(sc)
    port = next(b.port for b in backends if b.name == first)
    assert fields.address == f"127.0.0.1:{port}" and fields.key_id == "k1" and len(fields.mac) == 16
    cookie = _cookie(header(headers, "set-cookie"))
    for _ in range(20):
        _, headers, body, conn = get(gw.port, "/get", headers={"Cookie": cookie}, conn=conn)
        assert backend_of(body) == first and header(headers, "set-cookie") == []
    counts = _counts(gw)
    assert counts["pick/absent"] == 1 and counts["issued"] == 1
    assert counts["honour/valid"] == 20


def test_scale_up_moves_no_session(h):
    gw, backends, _, _ = _setup(h, n=3)
    sessions = {}
    for _ in range(60):
        _, headers, body, _ = get(gw.port, "/get")
        sessions[_cookie(header(headers, "set-cookie"))] = backend_of(body)
    assert len(set(sessions.values())) == 3  # round robin spread them
    more = [*backends, h.backend("b3"), h.backend("b4")]
    _publish(h, gw, more)
    moved = [c for c, b in sessions.items() if backend_of(get(gw.port, "/get",
             headers={"Cookie": c})[2]) != b]  # fmt: skip
    assert moved == []
    new = Counter(backend_of(get(gw.port, "/get")[2]) for _ in range(50))
    assert set(new) == {b.name for b in more}  # new sessions use the new pods too


def test_gone_pod_moves_only_its_sessions_and_rewrites_them(h):
    gw, backends, _, _ = _setup(h, n=3)
    sessions = {}
    for _ in range(30):
        _, headers, body, _ = get(gw.port, "/get")
        sessions[_cookie(header(headers, "set-cookie"))] = backend_of(body)
    _publish(h, gw, backends[1:])  # b0 deleted
    for cookie, was in sessions.items():
        _, headers, body, _ = get(gw.port, "/get", headers={"Cookie": cookie})
        now = backend_of(body)
        if was == "b0":
            assert now != "b0" and fields_of(header(headers, "set-cookie")[0]).address.endswith(
                str(next(b.port for b in backends if b.name == now))
            )
        else:
            assert now == was and header(headers, "set-cookie") == []
    # values are deterministic per pod and second: count the distinct ones that named b0
    assert _counts(gw)["pick/unavailable"] == list(sessions.values()).count("b0") >= 1


def test_strict_answers_503_for_a_gone_pod(h):
    gw, backends, _, _ = _setup(h, session=session_policy(strict=True))
    _, headers, body, _ = get(gw.port, "/get")
    cookie, pod = _cookie(header(headers, "set-cookie")), backend_of(body)
    _publish(h, gw, [b for b in backends if b.name != pod], session=session_policy(strict=True))
    status, headers, body, _ = get(gw.port, "/get", headers={"Cookie": cookie})
    assert status == 503 and b"session endpoint unavailable (strict)" in body
    assert header(headers, "set-cookie") == []
    assert get(gw.port, "/get")[0] == 200  # a request without a session is served


def test_forged_and_tampered_values_are_refused_counted_and_never_forwarded(h):
    gw, backends, d, _ = _setup(h, n=2)
    outsider = h.backend("outsider")  # listening, but not in the table
    outside = f"127.0.0.1:{outsider.port}"
    forged = [
        encode_envoy_cookie(outside),  # Envoy's unsigned value: refused in signed mode
        signed(d, outside, keyring_json(("k1", b"2" * 32, NOW - 10, None))),  # another key
        signed(d, outside, RING),  # valid signature, but not an endpoint: moved, not honoured
        "bm90LWJhc2U2NA",  # not canonical base64
    ]
    tampered = bytearray(signed(d, f"127.0.0.1:{backends[0].port}", RING).encode())
    tampered[-6] = ord("A") if tampered[-6] != ord("A") else ord("B")
    forged.append(tampered.decode())
    for value in forged:
        status, headers, body, _ = get(gw.port, "/get", headers={"Cookie": f"shop={value}"})
        assert status == 200 and backend_of(body) in ("b0", "b1")
        assert fields_of(header(headers, "set-cookie")[0]).address != outside
    assert outsider.requests == []
    counts = _counts(gw)
    assert counts["rejected/unsigned"] == 1 and counts["rejected/malformed"] == 1
    assert counts["rejected/bad-signature"] == 2 and counts["pick/unavailable"] == 1
    text = urllib.request.urlopen(f"http://127.0.0.1:{gw.admin_port}/metrics").read().decode()
    line = ('tether_gateway_session_values_rejected_total{reason="bad-signature",'
            'route="default/httpbin:8000"} 2.0')  # fmt: skip
    assert line in text


def test_draining_pod_keeps_its_sessions_and_gets_no_new_ones(h):
    gw, backends, _, _ = _setup(h, n=3)
    sessions = {}
    for _ in range(30):
        _, headers, body, _ = get(gw.port, "/get")
        sessions[_cookie(header(headers, "set-cookie"))] = backend_of(body)
    _publish(h, gw, backends, draining=("b1",))
    for cookie, was in sessions.items():
        assert backend_of(get(gw.port, "/get", headers={"Cookie": cookie})[2]) == was
    fresh = Counter(backend_of(get(gw.port, "/get")[2]) for _ in range(40))
    assert "b1" not in fresh and set(fresh) == {"b0", "b2"}
    _publish(h, gw, backends, draining=("b1",), session=session_policy(drain=False))
    moved = [c for c, b in sessions.items() if b == "b1"]
    assert all(backend_of(get(gw.port, "/get", headers={"Cookie": c})[2]) != "b1" for c in moved)


def test_expired_value_gets_a_new_session(h):
    gw, backends, d, _ = _setup(h, session=session_policy(idleTimeoutSeconds=60))
    old = signed(d, f"127.0.0.1:{backends[2].port}", RING, now=NOW - 3600)
    _, headers, _, _ = get(gw.port, "/get", headers={"Cookie": f"shop={old}"})
    assert header(headers, "set-cookie") and _counts(gw)["pick/expired"] == 1


def test_half_used_window_is_re_issued_on_the_same_pod(h):
    gw, backends, d, _ = _setup(h, session=session_policy(idleTimeoutSeconds=600))
    addr = f"127.0.0.1:{backends[1].port}"
    aging = signed(d, addr, RING, now=int(__import__("time").time()) - 400)
    _, headers, body, _ = get(gw.port, "/get", headers={"Cookie": f"shop={aging}"})
    assert backend_of(body) == "b1"
    fresh = fields_of(header(headers, "set-cookie")[0])
    assert fresh.address == addr and fresh.valid_until > fields_of(f'shop="{aging}"').valid_until


def test_key_rotation_keeps_old_values_through_the_overlap(h):
    gw, _, _, keys = _setup(h)
    _, headers, body, _ = get(gw.port, "/get")
    cookie, pod = _cookie(header(headers, "set-cookie")), backend_of(body)
    k2 = ("k2", b"2" * 32, NOW - 60, None)
    write_keys(keys, keyring_json((*K1[:3], NOW + 3600), k2))  # k1 retires in an hour
    h.wait(lambda: gw.session_keys.ring is not None and len(gw.session_keys.ring.keys) == 2)
    _, headers, body, _ = get(gw.port, "/get", headers={"Cookie": cookie})
    assert backend_of(body) == pod
    renewed = header(headers, "set-cookie")
    assert fields_of(renewed[0]).key_id == "k2"  # re-signed with the key that signs now
    write_keys(keys, keyring_json(k2))  # k1 gone: its values are unknown
    h.wait(lambda: len(gw.session_keys.ring.keys) == 1)
    get(gw.port, "/get", headers={"Cookie": cookie})
    assert _counts(gw)["rejected/unknown-key"] == 1
    _, headers, body, _ = get(gw.port, "/get", headers={"Cookie": _cookie(renewed)})
    assert backend_of(body) == pod and header(headers, "set-cookie") == []


def test_a_bad_key_ring_keeps_the_last_good_one(h):
    gw, _, _, keys = _setup(h)
    write_keys(keys, '{"version": 1, "keys": [{"id": "short", "secret": "c2hvcnQ=",'
                     ' "activatesAt": 0}]}')  # fmt: skip
    h.wait(lambda: gw.metrics.keyring_loads.get("error", 0) >= 1)
    assert [k.id for k in gw.session_keys.ring.keys] == ["k1"]
    _, headers, _, _ = get(gw.port, "/get")
    assert fields_of(header(headers, "set-cookie")[0]).key_id == "k1"


def test_no_key_ring_yet_routes_without_a_value(h):
    gw, _, _, _ = _setup(h, ring=None)
    status, headers, _, _ = get(gw.port, "/get")
    assert status == 200 and header(headers, "set-cookie") == []
    assert _counts(gw)["no-keys"] == 1


def test_compat_mode_honours_envoys_cookie_and_re_issues_it_signed(h):
    gw, backends, _, _ = _setup(h, session=session_policy(signing="compat"))
    addr = f"127.0.0.1:{backends[2].port}"
    _, headers, body, _ = get(
        gw.port, "/get", headers={"Cookie": f'shop="{encode_envoy_cookie(addr)}"'}
    )
    assert backend_of(body) == "b2"
    fields = fields_of(header(headers, "set-cookie")[0])
    assert fields.address == addr and fields.mac


def test_unsigned_mode_is_envoys_format_exactly(h):
    gw, backends, _, _ = _setup(h, session=session_policy(signing="unsigned"), ring=None)
    _, headers, body, _ = get(gw.port, "/get")
    addr = f"127.0.0.1:{next(b.port for b in backends if b.name == backend_of(body))}"
    assert header(headers, "set-cookie") == [
        f'shop="{encode_envoy_cookie(addr)}"; Path=/; HttpOnly'
    ]
    other = f"127.0.0.1:{backends[0].port}"
    _, _, body, _ = get(gw.port, "/get", headers={"Cookie": f"shop={encode_envoy_cookie(other)}"})
    assert backend_of(body) == "b0"


def test_header_sessions_replace_the_upstream_header(h):
    s = session_policy(kind="header", name="X-Backend", signing="unsigned")
    gw, backends, _, _ = _setup(h, session=s, ring=None)
    _, headers, body, _ = get(gw.port, "/get")
    addr = f"127.0.0.1:{next(b.port for b in backends if b.name == backend_of(body))}"
    assert header(headers, "x-backend") == [encode_header(addr)]  # the upstream's copy is gone
    other = f"127.0.0.1:{backends[1].port}"
    _, headers, body, _ = get(gw.port, "/get", headers={"X-Backend": encode_header(other)})
    assert backend_of(body) == "b1" and header(headers, "x-backend") == ["b1"]  # not rewritten


def test_cookie_path_rule_limits_where_sessions_apply(h):
    gw, _, _, _ = _setup(h, session=session_policy(path="/shop"))
    assert header(get(gw.port, "/get")[1], "set-cookie") == []
    assert header(get(gw.port, "/shop?x=1")[1], "set-cookie")
    assert header(get(gw.port, "/shopping")[1], "set-cookie") == []


def test_access_log_names_the_decision_never_the_value(h, tmp_path):
    log = tmp_path / "access.log"
    backends = [h.backend(f"b{i}") for i in range(2)]
    keys = str(tmp_path / "keys.json")
    write_keys(keys, RING)
    h.write_table("svc.json", session_document(backends, session_policy()))
    gw = h.gateway(session_keys_file=keys, access_log=str(log))
    h.wait(lambda: gw.loaded and gw.keys_loaded)
    _, headers, _, _ = get(gw.port, "/get")
    cookie = _cookie(header(headers, "set-cookie"))
    get(gw.port, "/get", headers={"Cookie": cookie})
    get(gw.port, "/get", headers={"Cookie": "shop=forged"})
    h.call(gw.accesslog.flush)
    h.wait(lambda: len(log.read_text().splitlines()) == 3)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [(x["session"], x["session_reason"]) for x in lines] == [
        ("pick", "absent"), ("honour", "valid"), ("pick", "malformed"),
    ]  # fmt: skip
    assert cookie.split("=", 1)[1] not in log.read_text()


@pytest.mark.parametrize("algorithm", ["maglev", None])
def test_soft_policy_picks_new_sessions(h, algorithm):
    """A DestinationRule's consistent hash still picks the first pod of a new session."""
    key = cookie_key("sticky", ttl=None) if algorithm else None
    gw, _, _, _ = _setup(h, algorithm=algorithm, hash_key=key)
    picks = {backend_of(get(gw.port, "/get", headers={"Cookie": "sticky=alice"})[2])
             for _ in range(5)}  # fmt: skip
    assert len(picks) == (1 if algorithm else 3)


def test_native_lane_honours_valid_cookies_without_the_python_path(monkeypatch):
    """The lane settles the common case itself (wire/session.c); Python sees the rest."""
    from tether.gateway import native
    from tether.gateway.proxy import ClientProtocol

    from .harness import Harness

    assert native.enable()
    calls = []
    dispatch = ClientProtocol._dispatch
    monkeypatch.setattr(
        ClientProtocol, "_dispatch", lambda self, ex: (calls.append(ex.path), dispatch(self, ex))[1]
    )
    h = Harness()
    try:
        gw, _, _, _ = _setup(h)
        _, headers, _, conn = get(gw.port, "/first")
        cookie = _cookie(header(headers, "set-cookie"))
        for _ in range(10):
            _, _, _, conn = get(gw.port, "/again", headers={"Cookie": cookie}, conn=conn)
        get(gw.port, "/forged", headers={"Cookie": "shop=AAAA"}, conn=conn)
    finally:
        h.close()
    assert calls == [b"/first", b"/forged"]
