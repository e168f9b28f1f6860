"""Connection objects die by reference counting alone, on both data paths (issue 13, item 3).

The gateway moves what is alive into the collector's permanent generation (``gc.freeze``) at
the end of its first load, and table objects stay out of the collector's way afterwards. That
is only safe if nothing it pins can later become garbage that only the cyclic collector would
free. So a client or upstream connection, its exchanges, a tunnel and a TLS connection must be
freed as soon as they are closed: every test here runs with the collector disabled and counts
the gateway's objects still alive (``gc.get_objects()``, the permanent generation included).
"""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
import threading
import uuid
from collections import Counter

import pytest

from tether.gateway.config import TLSConfig

from .certs import Pki, write
from .conftest import get
from .docs import cookie_key, make_document
from .harness import raw_request
from .tunnels import handshake, recv_exactly, tunnel_gateway

OWNED = ("ClientProtocol", "RedirectProtocol", "Exchange", "UpstreamConnection", "Tunnel", "Side")


@pytest.fixture
def no_gc():
    """The cyclic collector off for the test: what is freed, reference counting freed. It
    starts from a heap without garbage, so ``_garbage`` sees only what the test made: the
    table worker threads of earlier tests' gateways (closed, not joined) have ended first, as
    a lagging one lets go of its gateway late, mid-test."""
    enabled = gc.isenabled()
    for thread in threading.enumerate():
        if thread.name == "tether-tables":  # this test's gateway does not exist yet
            thread.join(5)
    gc.unfreeze()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()


GATEWAY_MODULES = ("tether.", "uvloop.", "httptools.", "asyncio.", "_asyncio", "ssl", "_ssl")


def _garbage(h) -> Counter:
    """Cyclic garbage of the gateway's kinds (its own types, uvloop, httptools, asyncio, ssl)
    made since the test started, by type: what only the collector could free, and what
    gc.freeze() would pin for good. Left out: the test's own backends (their protocols and
    parsers are cycles) and an earlier test's event loop, and all they hold."""

    def collect() -> Counter:
        gc.unfreeze()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            found = list(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        ids = {id(o) for o in found}
        theirs: set[int] = set()
        stack = [o for o in found if type(o).__module__.startswith("tests.")
                 or type(o).__qualname__ == "Loop"]  # fmt: skip
        while stack:  # what the backends' cycles hold
            o = stack.pop()
            if id(o) not in theirs:
                theirs.add(id(o))
                stack.extend(r for r in gc.get_referents(o) if id(r) in ids)
        return Counter(
            f"{type(o).__module__}.{type(o).__qualname__}"
            for o in found
            if id(o) not in theirs and type(o).__module__.startswith(GATEWAY_MODULES)
        )

    return h.call(collect)


def _owner(obj):
    if type(obj).__name__ == "Exchange":
        client = obj.client
        return None if client is None else client.gw
    return getattr(obj, "gw", None)


def _alive(gw) -> Counter:
    """The gateway's connection objects still alive, frozen ones included, by type."""
    gc.unfreeze()  # the permanent generation is not listed by get_objects(); nothing is freed
    try:
        return Counter(
            type(o).__name__
            for o in gc.get_objects()
            if type(o).__name__ in OWNED and _owner(o) is gw
        )
    finally:
        gc.freeze()


def _gone(h, gw, keep: Counter | None = None) -> Counter:
    """Wait (deadline 5 s) until only ``keep`` of the gateway's objects are alive; return what
    is alive then. The collector stays off: only reference counting can free them."""
    keep = keep or Counter()

    async def settle():
        deadline = h.loop.time() + 5
        while h.loop.time() < deadline:
            alive = _alive(gw)
            if alive == keep:
                return alive
            await asyncio.sleep(0.01)
        return _alive(gw)

    return h.run(settle(), 10)


def _closed(h, gw) -> None:
    """Every client, tunnel and upstream connection of the gateway closed (pools emptied)."""
    h.wait(lambda: not gw.clients and not gw.tunnels)
    h.call(gw.pools.close_all)
    h.wait(lambda: not gw.upstreams)


def _gateway(h, n=2, **over):
    backends = [h.backend(f"b{i}") for i in range(n)]
    doc = make_document([("127.0.0.1", b.port, b.name) for b in backends], algorithm="maglev",
                        hash_key=cookie_key("sid"))  # fmt: skip
    h.write_table("svc.json", doc)
    gw = h.gateway(**over)
    h.wait(lambda: gw.loaded)
    return gw, backends


def test_connections_open_when_the_first_load_freezes_are_freed_after_close(h, tmp_path, no_gc):
    # The table directory appears only after clients connected: the first load, and the
    # gc.freeze() at its end, happen while their connections are open.
    tables = tmp_path / "later"
    gw = h.gateway(tables_dir=str(tables))
    conns = []
    for _ in range(3):
        status, _, _, c = get(gw.port, "/get", headers={"Host": "svc"})
        assert status == 503  # not loaded yet; the connection stays open
        conns.append(c)
    b = h.backend("b0")
    tables.mkdir()
    (tables / "svc.json").write_text(make_document([("127.0.0.1", b.port, "b0")]).dumps())
    h.wait(lambda: gw.loaded)
    # they are alive and frozen: the collector no longer lists them
    assert _alive(gw)["ClientProtocol"] == 3
    assert not [o for o in gc.get_objects() if type(o).__name__ == "ClientProtocol"
                and o.gw is gw]  # fmt: skip
    for c in conns:
        status, _, _, _ = get(gw.port, "/get", headers={"Host": "svc"}, conn=c)
        assert status == 200
        c.close()
    _closed(h, gw)
    gc.collect()  # a full collection cannot free what is frozen: only refcounting could
    assert _gone(h, gw) == Counter()
    assert _garbage(h) == Counter()


def _routes(key: str) -> int:
    gc.unfreeze()
    try:
        return sum(type(o).__name__ == "Route" and o.key == key for o in gc.get_objects())
    finally:
        gc.freeze()


def test_table_updates_freeze_while_traffic_flows_and_nothing_stays_pinned(h, no_gc):
    # Every slice of table changes the gateway commits ends with gc.freeze(): the connections
    # open then, and the routes live then, are frozen. Once closed or replaced, reference
    # counting alone must free them.
    backends = [h.backend(f"b{i}") for i in range(3)]
    eps = [("127.0.0.1", b.port, b.name) for b in backends]
    key, ns = cookie_key("sid"), f"ns{uuid.uuid4().hex[:8]}"  # its own routes in this process
    route = f"{ns}/httpbin:8000"
    h.write_table("svc.json", make_document(eps, algorithm="maglev", hash_key=key, namespace=ns))
    gw = h.gateway()
    h.wait(lambda: gw.loaded)
    clients = [get(gw.port, "/get", headers={"Cookie": f"sid={i}"})[3] for i in range(3)]
    frozen = gc.get_freeze_count()
    for version in range(1, 6):
        doc = make_document(eps[version % 3 :] + eps[: version % 3][:1], algorithm="maglev",
                            hash_key=key, namespace=ns)  # fmt: skip
        h.write_table("svc.json", doc)
        h.wait(lambda doc=doc: gw.router.by_key[route].checksum == doc.checksum)
        for i, c in enumerate(clients):
            assert get(gw.port, "/get", headers={"Cookie": f"sid={i}"}, conn=c)[0] == 200
    assert gc.get_freeze_count() > frozen  # the updates froze what was alive
    # the replaced routes are gone, but for those the live Router names as just removed
    assert _routes(route) == 1 + len(gw.router.removed)
    for c in clients:
        c.close()
    _closed(h, gw)
    assert _gone(h, gw) == Counter()
    assert _garbage(h) == Counter()


def test_keep_alive_connections_are_freed_when_the_client_closes(h, no_gc):
    gw, _ = _gateway(h)
    clients = []
    for i in range(4):
        c = None
        for j in range(3):
            status, _, _, c = get(gw.port, "/get", headers={"Cookie": f"sid={i}-{j}"}, conn=c)
            assert status == 200
        clients.append(c)
    status, _, _, c = get(gw.port, "/echo", method="POST", body=b"x" * 300_000)  # streamed
    assert status == 200
    clients.append(c)
    # chunked both ways: the slow path of both sides
    status, _, _, c = get(gw.port, "/echo", method="POST", body=iter([b"a", b"b"]), chunked=True)
    assert status == 200
    status, _, _, _ = get(gw.port, "/chunked", conn=c)
    assert status == 200
    clients.append(c)
    assert _alive(gw)["ClientProtocol"] == len(clients)
    for c in clients:
        c.close()
    h.wait(lambda: not gw.clients)
    pooled = Counter(UpstreamConnection=sum(len(s) for s in gw.pools.idle.values()))
    assert pooled["UpstreamConnection"] >= 1
    assert _gone(h, gw, pooled) == pooled  # only the idle pool holds upstream connections
    _closed(h, gw)
    assert _gone(h, gw) == Counter()
    assert _garbage(h) == Counter()


def test_exchanges_ended_by_errors_and_closes_are_freed(h, no_gc):
    gw, backends = _gateway(h, idle_timeout=0.3, header_timeout=0.3)
    # the client leaves mid-response (499; the upstream connection is aborted)
    s = socket.create_connection(("127.0.0.1", gw.port))
    s.sendall(b"GET /slow?s=5 HTTP/1.1\r\nHost: svc\r\n\r\n")
    h.wait(lambda: any(c.active is not None and c.active.upstream is not None
                       for c in gw.clients))  # fmt: skip
    s.close()
    # refused heads (lingering close), a pipeline cut by a refusal, a head that never ends
    assert raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n").startswith(b"HTTP/1.1 400")
    pipelined = b"GET /get HTTP/1.1\r\nHost: svc\r\n\r\n" * 3 + b"BAD\r\n\r\n"
    assert raw_request(gw.port, pipelined).count(b"HTTP/1.1 ") == 4
    assert b"408" in raw_request(gw.port, b"GET /get HTTP/1.1\r\nHost: svc\r\n")
    # Connection: close, an upstream that closes after answering, a dead endpoint (502)
    assert raw_request(gw.port, b"GET /get HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n")
    assert get(gw.port, "/close", headers={"Cookie": "sid=1"})[0] == 200
    for b in backends:
        h.stop_backend(b)
    h.call(gw.pools.close_all)  # the next request has to connect, and is refused
    assert get(gw.port, "/get", headers={"Cookie": "sid=2"})[0] == 502
    _closed(h, gw)
    assert _gone(h, gw) == Counter()
    assert _garbage(h) == Counter()


def test_a_connect_timeout_frees_the_exchange(h, no_gc):
    # A listener whose accept queue is full: the kernel drops further SYNs, connect hangs.
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        waiting = [socket.socket() for _ in range(3)]
        for s in waiting:
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
        h.write_table("svc.json", make_document([("127.0.0.1", port, "hung")]))
        gw = h.gateway(connect_timeout=0.2)
        h.wait(lambda: gw.loaded)
        status, _, body, c = get(gw.port, "/get")
        assert status == 504 and b"connect timeout" in body
        c.close()
        _closed(h, gw)
        assert _gone(h, gw) == Counter()
        assert _garbage(h) == Counter()
        for s in waiting:
            s.close()


def test_a_closed_tunnel_is_freed(h, no_gc):
    gw, _ = tunnel_gateway(h)
    socks = []
    for _ in range(3):
        s, head, _ = handshake(gw.port)
        assert head.startswith(b"HTTP/1.1 101")
        s.sendall(b"ping")
        assert recv_exactly(s, 4) == b"ping"
        socks.append(s)
    assert _alive(gw)["Tunnel"] == 3
    socks[0].shutdown(socket.SHUT_WR)  # a half-close first
    for s in socks:
        s.close()
    _closed(h, gw)
    assert _gone(h, gw) == Counter()
    assert _garbage(h) == Counter()


def test_a_closed_tls_connection_is_freed(h, tmp_path, no_gc):
    pki = Pki(tmp_path)
    certs = tmp_path / "certs"
    certs.mkdir()
    write(certs, "site", *pki.leaf(["a.example.test"], serial=11))
    tls = TLSConfig(listen_host="127.0.0.1", listen_port=0, cert_dir=str(certs))
    gw, _ = _gateway(h, tls=tls)
    h.wait(lambda: gw.certs_loaded)
    ctx = ssl.create_default_context(cafile=str(pki.ca_path))
    for _ in range(3):
        with (
            socket.create_connection(("127.0.0.1", gw.tls_port)) as raw,
            ctx.wrap_socket(raw, server_hostname="a.example.test") as s,
        ):
            s.sendall(b"GET /get HTTP/1.1\r\nHost: svc\r\nCookie: sid=1\r\n\r\n")
            assert s.recv(12) == b"HTTP/1.1 200"
    _closed(h, gw)
    assert _gone(h, gw) == Counter()
    assert _garbage(h) == Counter()


def test_failed_tls_handshakes_leave_nothing(h, tmp_path, no_gc):
    # The client protocol of a TLS connection exists from the accept; connection_made (and
    # connection_lost) only come after a good handshake. Anyone can fail one on purpose.
    pki = Pki(tmp_path)
    certs = tmp_path / "certs"
    certs.mkdir()
    write(certs, "site", *pki.leaf(["a.example.test"], serial=11))
    tls = TLSConfig(listen_host="127.0.0.1", listen_port=0, cert_dir=str(certs))
    gw, _ = _gateway(h, tls=tls, header_timeout=0.3)
    h.wait(lambda: gw.certs_loaded)
    untrusted = ssl.create_default_context()  # the client refuses the gateway's certificate
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", gw.tls_port)) as s:  # not TLS at all
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")
            assert s.recv(100) == b""
        socket.create_connection(("127.0.0.1", gw.tls_port)).close()  # gone before a hello
        with (
            socket.create_connection(("127.0.0.1", gw.tls_port)) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            untrusted.wrap_socket(raw, server_hostname="a.example.test")
    with socket.create_connection(("127.0.0.1", gw.tls_port), timeout=5) as s:  # silent
        assert s.recv(100) == b""  # the handshake timeout cuts it
    _closed(h, gw)
    assert _gone(h, gw) == Counter()
    assert _garbage(h) == Counter()


def test_the_redirecting_listener_frees_its_connections(h, no_gc):
    gw, _ = _gateway(h, https_redirect_port=8443)
    for _ in range(2):
        status, _, _, c = get(gw.port, "/x")
        assert status == 308
        c.close()
    _closed(h, gw)
    assert _gone(h, gw) == Counter()
    assert _garbage(h) == Counter()
