"""Affinity as the table document says, checked against the hashing layer's own choice."""

from __future__ import annotations

import http.client
import socket
from dataclasses import replace

from tether.hashing import (
    Host,
    Maglev,
    MaglevConfig,
    RingHash,
    RingHashConfig,
    generate_cookie_value,
    xxh64,
)
from tether.models.table import HashKey

from .conftest import backend_of, get, header
from .docs import cookie_key, make_document
from .harness import raw_request


def _sticky(h, *, n=3, key=None, algorithm="maglev", table_size=65537, dead=(), **gw):
    backends = [h.backend(f"b{i}") for i in range(n)]
    for i in dead:
        h.stop_backend(backends[i])
    eps = [("127.0.0.1", b.port, b.name) for b in backends]
    doc = make_document(
        eps, algorithm=algorithm, hash_key=key or cookie_key(), table_size=table_size
    )
    h.write_table("svc.json", doc)
    gateway = h.gateway(**gw)
    h.wait(lambda: gateway.loaded)
    hosts = [Host(f"127.0.0.1:{b.port}") for b in backends]
    if algorithm == "maglev":
        chooser = Maglev.build(hosts, MaglevConfig(table_size))
    else:
        chooser = RingHash.build(hosts, RingHashConfig())
    return gateway, backends, chooser


def test_generated_cookie_is_envoys_and_pins_the_connection(h):
    gw, backends, maglev = _sticky(h, key=cookie_key("sticky-session-key", ttl=0, path="/"))
    with socket.create_connection(("127.0.0.1", gw.port)) as s:
        local = f"127.0.0.1:{s.getsockname()[1]}"
        s.sendall(b"GET /status/418 HTTP/1.1\r\nHost: x\r\n\r\n")
        head = s.recv(65536).split(b"\r\n\r\n")[0].decode()
    value = generate_cookie_value(local, f"127.0.0.1:{gw.port}")
    cookies = [ln.split(": ", 1)[1] for ln in head.split("\r\n") if ln.lower().startswith("set-")]
    assert cookies == [f'sticky-session-key="{value}"; Path=/; HttpOnly']
    expected = backends[maglev.choose(xxh64(value))].name
    assert f"X-Backend: {expected}" in head


def test_max_age_when_ttl_set_and_app_cookie_untouched(h):
    gw, _, _ = _sticky(h, key=cookie_key("sid", ttl=3600))
    _status, headers, _, _ = get(gw.port, "/set-cookie")
    values = header(headers, "set-cookie")
    assert values[0] == "app=1; Path=/"  # the application's own, first and unchanged
    assert values[1].startswith('sid="') and values[1].endswith('"; Max-Age=3600; HttpOnly')


def test_same_cookie_same_backend_and_equal_to_maglev_choice(h):
    gw, backends, maglev = _sticky(h)
    conn = None
    for cookie in ("alice", "bob", "carol", "dave"):
        expected = backends[maglev.choose(xxh64(cookie))].name
        for _ in range(10):
            _status, headers, body, conn = get(
                gw.port, "/get", headers={"Cookie": f"other=1; sid={cookie}"}, conn=conn
            )
            assert backend_of(body) == expected
            assert header(headers, "set-cookie") == []


def test_ring_hash_choice_matches_hashing_layer(h):
    gw, backends, ring = _sticky(h, algorithm="ring-hash")
    for cookie in ("k1", "k2", "k3", "k4", "k5"):
        _, _, body, _ = get(gw.port, "/get", headers={"Cookie": f'sid="{cookie}"'})
        assert backend_of(body) == backends[ring.choose(xxh64(cookie))].name


def test_no_ttl_means_no_generated_cookie(h):
    gw, _, _ = _sticky(h, key=cookie_key("sid", ttl=None))
    seen = set()
    for _ in range(40):
        _status, headers, body, _ = get(gw.port, "/get")
        assert header(headers, "set-cookie") == []
        seen.add(backend_of(body))
    assert len(seen) > 1  # no hash → random pick, like Envoy


def test_header_key(h):
    gw, backends, maglev = _sticky(h, key=HashKey(kind="header", name="X-User"))
    for user in ("u1", "u2", "u3"):
        _, _, body, _ = get(gw.port, "/get", headers={"x-user": user})
        assert backend_of(body) == backends[maglev.choose(xxh64(user))].name


def test_header_key_with_two_values_and_on_a_ring(h):
    from tether.hashing.hashes import xxh64_chain

    gw, backends, ring = _sticky(
        h, key=HashKey(kind="header", name="X-User"), algorithm="ring-hash"
    )
    out = raw_request(
        gw.port,
        b"GET /get HTTP/1.1\r\nHost: a\r\nX-User: zed\r\nx-user: amy\r\nConnection: close\r\n\r\n",
    )
    expected = backends[ring.choose(xxh64_chain([b"amy", b"zed"]))].name
    assert f"X-Backend: {expected}".encode() in out
    for user in ("u1", "u2", "u3", "u4"):
        _, _, body, _ = get(gw.port, "/get", headers={"x-user": user})
        assert backend_of(body) == backends[ring.choose(xxh64(user))].name


def test_query_key(h):
    gw, backends, maglev = _sticky(h, key=HashKey(kind="queryParameter", name="user"))
    for user in ("u1", "u2", "u3"):
        _, _, body, _ = get(gw.port, f"/get?a=1&user={user}")
        assert backend_of(body) == backends[maglev.choose(xxh64(user))].name


def test_source_ip_key_trusts_xff_only_from_trusted_proxies(h):
    import ipaddress

    key = HashKey(kind="sourceIp")
    gw, backends, maglev = _sticky(h, key=key)
    _, _, body, _ = get(gw.port, "/get", headers={"X-Forwarded-For": "198.51.100.7"})
    assert backend_of(body) == backends[maglev.choose(xxh64("127.0.0.1"))].name
    gw.config = replace(gw.config, trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),))
    gw._trusted = gw.config.trusted_proxies
    for client in ("198.51.100.7", "198.51.100.8", "203.0.113.1"):
        _, _, body, _ = get(gw.port, "/get", headers={"X-Forwarded-For": f"{client}, 127.0.0.2"})
        assert backend_of(body) == backends[maglev.choose(xxh64(client))].name


def test_dead_endpoint_is_retried_with_envoys_next_attempt(h):
    gw, backends, maglev = _sticky(h, dead=(1,), eject_seconds=0)
    cookies = [f"c{i}" for i in range(200)]
    on_dead = [c for c in cookies if maglev.choose(xxh64(c)) == 1][:5]
    assert on_dead
    for cookie in on_dead:
        h_ = xxh64(cookie)
        # the next attempt that leaves the dead host, within 2·n selections; else a live host
        # chosen by the hash (the walk can stay on one host for many attempts)
        walk = [maglev.choose(h_, a) for a in range(1, 8)]
        live = [i for i in range(3) if i != 1]
        expected = next((i for i in walk if i != 1), live[h_ % len(live)])
        status, _, body, _ = get(gw.port, "/get", headers={"Cookie": f"sid={cookie}"})
        assert status == 200
        assert backend_of(body) == backends[expected].name


def test_a_retry_walk_that_only_finds_tried_hosts_still_picks_a_live_one():
    from tether.gateway.routes import Route

    doc = make_document([("10.0.0.1", 80, "a"), ("10.0.0.2", 80, "b"), ("10.0.0.3", 80, "c")])
    route = Route(doc)

    class _Stuck:  # a table whose retry walk never leaves host 1
        def choose(self, h, attempt=0):
            return 1

    route.chooser = _Stuck()

    class _Request:
        hash = 12345
        rand = None
        attempt = 0

    request = _Request()
    assert route.pick(request, 1, {1}, None) == [0, 2][12345 % 2]
    assert route.pick(request, 1, {0, 1, 2}, None) is None  # nothing left to try


def test_round_robin_for_simple_policy(h):
    backends = [h.backend(f"b{i}") for i in range(3)]
    doc = make_document([("127.0.0.1", b.port, b.name) for b in backends], algorithm=None)
    h.write_table("svc.json", doc)
    gw = h.gateway()
    h.wait(lambda: gw.loaded)
    conn = http.client.HTTPConnection("127.0.0.1", gw.port)
    counts: dict[str, int] = {}
    for _ in range(30):
        _, _, body, conn = get(gw.port, "/get", conn=conn)
        counts[backend_of(body)] = counts.get(backend_of(body), 0) + 1
    assert counts == {"b0": 10, "b1": 10, "b2": 10}


def test_bounded_load_moves_requests_off_a_busy_endpoint(h):
    backends = [h.backend(f"b{i}") for i in range(3)]
    doc = make_document(
        [("127.0.0.1", b.port, b.name) for b in backends],
        hash_key=HashKey(kind="header", name="x-user"),
        balance=150,
    )
    h.write_table("svc.json", doc)
    gw = h.gateway()
    h.wait(lambda: gw.loaded)
    route = gw.router.routes[0]
    maglev = Maglev.build([Host(f"127.0.0.1:{b.port}") for b in backends])
    home = maglev.choose(xxh64("heavy"))
    _, _, body, _ = get(gw.port, "/get", headers={"x-user": "heavy"})
    assert backend_of(body) == backends[home].name
    route.active[home] += 50  # as if 50 requests were in flight there
    route.total_active += 50
    _, _, body, _ = get(gw.port, "/get", headers={"x-user": "heavy"})
    assert backend_of(body) != backends[home].name
    route.active[home] -= 50
    route.total_active -= 50


def test_cookie_value_is_stable_per_connection(h):
    gw, _, _ = _sticky(h, key=cookie_key("sid", ttl=0))
    with socket.create_connection(("127.0.0.1", gw.port)) as s:
        values = set()
        for _ in range(3):
            s.sendall(b"GET /get HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(
                next(
                    ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")
                ).split(b":")[1]
            )
            while len(rest) < length:
                rest += s.recv(65536)
            values |= {ln for ln in head.split(b"\r\n") if ln.startswith(b"set-cookie")}
    assert len(values) == 1
    assert raw_request(gw.port, b"GET /get HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
