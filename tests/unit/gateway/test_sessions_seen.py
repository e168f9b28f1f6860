"""The gateway's session summary over real sockets, on both data paths: one store per request,
a session per affinity value, the admin /sessions document, and the sessions each table swap
moved, checked against the hashing layer's own choice for every client."""

from __future__ import annotations

import http.client
import json
import socket

from tether.hashing import Host, Maglev, MaglevConfig, RingHash, RingHashConfig, xxh64
from tether.models.table import HashKey

from .conftest import backend_of, get
from .docs import cookie_key, make_document

KEY = "default/httpbin:8000"


def sessions(gw, route: str | None = KEY) -> dict:
    c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=10)
    c.request("GET", "/sessions" + (f"?route={route}" if route else ""))
    r = c.getresponse()
    assert r.status == 200 and r.getheader("content-type") == "application/json"
    return json.loads(r.read())


def _chooser(algorithm: str, backends):
    hosts = [Host(f"127.0.0.1:{b.port}") for b in backends]
    if algorithm == "maglev":
        return Maglev.build(hosts, MaglevConfig(65537))
    return RingHash.build(hosts, RingHashConfig())


def _publish(h, backends, algorithm, key):
    eps = [("127.0.0.1", b.port, b.name) for b in backends]
    h.write_table("svc.json", make_document(eps, algorithm=algorithm, hash_key=key))


def _route(gw):
    return gw.router.by_key.get(KEY)


def _scale(h, gw, backends, algorithm, key):
    """Publish a table of ``backends`` and wait until the gateway routes by it and has counted
    the sessions its swap moved; returns the swap record."""
    before = _route(gw).doc.checksum
    _publish(h, backends, algorithm, key)
    h.wait(lambda: _route(gw).doc.checksum != before and len(_route(gw).targets) == len(backends))
    h.run(gw.sessions.settled())
    (swap,) = [s for s in sessions(gw)["routes"][0]["swaps"] if s["fromChecksum"] == before]
    assert swap["toChecksum"] == _route(gw).doc.checksum
    return swap


def _cells(pairs) -> dict:
    out: dict = {}
    for a, b in pairs:
        out[(a, b)] = out.get((a, b), 0) + 1
    return out


def _matrix(cells: list[dict]) -> dict:
    return {(c["from"], c["to"]): c["sessions"] for c in cells}


def _scale_3_to_5(h, algorithm: str):
    backends = [h.backend(f"b{i}") for i in range(5)]
    key = cookie_key("sid", ttl=None)
    _publish(h, backends[:3], algorithm, key)
    gw = h.gateway()
    h.wait(lambda: gw.loaded)
    old, new = _chooser(algorithm, backends[:3]), _chooser(algorithm, backends)
    users = [f"user-{i}" for i in range(120)]
    conn = None
    served = {}
    for user in users:
        for _ in range(2):  # a session is one entry however many requests it makes
            _, _, body, conn = get(gw.port, "/get", headers={"Cookie": f"sid={user}"}, conn=conn)
        served[user] = backend_of(body)
        assert served[user] == backends[old.choose(xxh64(user))].name
    summary = sessions(gw)
    assert summary["stores"] == 240 and summary["used"] == summary["active"] == 120
    (route,) = summary["routes"]
    assert route["active"] == 120 and route["away"] == 0 and route["affinity"] == "cookie"
    per_pod = {p["pod"]: p["active"] for p in route["pods"]}
    assert per_pod == {b: sum(1 for u in users if served[u] == b) for b in set(served.values())}

    swap = _scale(h, gw, backends, algorithm, key)
    after = {u: backends[new.choose(xxh64(u))].name for u in users}
    moved = [u for u in users if after[u] != served[u]]
    assert swap["countable"] and swap["active"] == 120
    assert swap["moved"] == swap["away"] == len(moved) > 0
    assert _matrix(swap["matrix"]) == _cells((served[u], after[u]) for u in users)
    assert _matrix(swap["awayMatrix"]) == _cells((served[u], after[u]) for u in moved)
    # the clients come back: each lands where the new table says, and is home again
    for user in users:
        _, _, body, conn = get(gw.port, "/get", headers={"Cookie": f"sid={user}"}, conn=conn)
        assert backend_of(body) == after[user]
    route = sessions(gw)["routes"][0]
    assert route["active"] == 120 and route["away"] == 0
    assert {p["pod"]: p["active"] for p in route["pods"]} == {
        b: sum(1 for u in users if after[u] == b) for b in set(after.values())
    }


def test_maglev_scale_counts_exactly_the_sessions_that_change_pod(h):
    _scale_3_to_5(h, "maglev")


def test_ring_hash_scale_counts_exactly_the_sessions_that_change_pod(h):
    _scale_3_to_5(h, "ring-hash")


def test_a_generated_cookie_is_one_session_from_its_first_request(h):
    backends = [h.backend(f"b{i}") for i in range(3)]
    _publish(h, backends, "maglev", cookie_key("sticky", ttl=0))
    gw = h.gateway()
    h.wait(lambda: gw.loaded)
    with socket.create_connection(("127.0.0.1", gw.port)) as s:
        s.sendall(b"GET /get HTTP/1.1\r\nHost: x\r\n\r\n")
        head = s.recv(65536).split(b"\r\n\r\n")[0].decode()
    cookie = next(ln.split(": ", 1)[1].split(";")[0] for ln in head.split("\r\n")
                  if ln.lower().startswith("set-cookie"))  # fmt: skip
    for _ in range(3):
        get(gw.port, "/get", headers={"Cookie": cookie})
    summary = sessions(gw)
    assert summary["stores"] == 4 and summary["active"] == 1


def test_requests_without_a_key_value_and_round_robin_are_not_sessions(h):
    backends = [h.backend(f"b{i}") for i in range(3)]
    _publish(h, backends, "maglev", cookie_key("sid", ttl=None))  # no ttl: no cookie made
    gw = h.gateway()
    h.wait(lambda: gw.loaded)
    for _ in range(10):
        get(gw.port, "/get")  # no cookie: a random pick
    eps = [("127.0.0.1", b.port, b.name) for b in backends]
    h.write_table("svc.json", make_document(eps, algorithm=None))
    h.wait(lambda: _route(gw).mode == "rr")
    for _ in range(10):
        get(gw.port, "/get", headers={"Cookie": "sid=x"})
    summary = sessions(gw, None)
    assert summary["stores"] == 0 and summary["routes"] == []


def test_header_source_ip_and_query_keys_are_sessions(h):
    backends = [h.backend(f"b{i}") for i in range(3)]
    for key, requests in (
        (HashKey(kind="header", name="X-User"), [({"X-User": u}, "/get") for u in "abcab"]),
        (HashKey(kind="queryParameter", name="u"), [({}, f"/get?u={u}") for u in "pqrss"]),
        (HashKey(kind="sourceIp"), [({}, "/get")] * 4),
    ):
        _publish(h, backends, "maglev", key)
        gw = h.gw or h.gateway()
        h.wait(lambda g=gw, k=key: g.loaded and _route(g).doc.policy.hash_key == k)
        (before,) = sessions(gw)["routes"]
        for headers, path in requests:
            get(gw.port, path, headers=headers)
        (route,) = sessions(gw)["routes"]
        distinct = len({(tuple(hd.items()), p) for hd, p in requests})
        assert route["active"] - before["active"] == distinct, key


def test_persistent_sessions_move_only_when_their_pod_disappears():
    """A route that honours persistent sessions (hard affinity marks it with ``session``): a
    session stays on the pod that served it while that pod is listed; only the sessions of a
    pod that left move, to the new table's choice. The same swap without pins moves what the
    tables say."""
    import asyncio

    from tether.gateway.routes import Route, Router
    from tether.gateway.sessions_seen import SessionsSeen

    class Pinned(Route):
        __slots__ = ("session",)

    def routes(pods, pinned):
        doc = make_document(
            [(f"10.0.0.{i}", 80, f"p{i}") for i in pods], hash_key=cookie_key("sid", None)
        )
        if not pinned:
            return Route(doc)
        route = Pinned(doc)
        route.session = True
        return route

    async def run(pinned: bool):
        seen = SessionsSeen(4096, 300.0, 0.0, asyncio.get_running_loop())
        old, new = routes([1, 2, 3], pinned), routes([1, 2, 4, 5], pinned)
        router = Router([]).updated({old.key: old})
        seen.swapped(router, 0.0)
        users = [f"u{i}" for i in range(300)]
        served = {}
        for u in users:
            h = xxh64(u)
            target = old.targets[old.chooser.choose(h, 0)]
            seen.table.store(old.sid, h, target.sid, 1.0)
            served[u] = target.pod
        seen.swapped(router.updated({new.key: new}), 2.0)
        await seen.settled()
        (record,) = seen.swaps[KEY]
        return served, record, new

    for pinned in (False, True):
        served, record, new = asyncio.run(run(pinned))
        owner = {u: new.targets[new.chooser.choose(xxh64(u), 0)].pod for u in served}
        if pinned:
            owner = {u: p if p != "p3" else owner[u] for u, p in served.items()}
        moves = _cells((served[u], owner[u]) for u in served if served[u] != owner[u])
        assert record["moved"] == record["away"] == sum(moves.values()) > 0
        assert _matrix(record["awayMatrix"]) == moves
        if pinned:
            assert {a for a, _ in moves} == {"p3"}
