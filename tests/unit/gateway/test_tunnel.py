"""Upgrade and tunnels at the byte level, on both data paths: what may switch protocols and
what is proxied as a plain request, bytes around the switch, backpressure both ways,
half-close, timers, and SIGTERM draining."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading

from .hostile import one, responses, send
from .tunnels import (
    TunnelBackend,
    handshake,
    read_head,
    recv_exactly,
    tunnel_gateway,
    upgrade_request,
)


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}


def _eventually_eof(s: socket.socket) -> bytes:
    """Read until the gateway closes cleanly (a reset fails the test); returns what came."""
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def test_bytes_around_the_switch_keep_their_order(h):
    gw, (b,) = tunnel_gateway(h)
    b.greeting = b"HELLO"  # in the same write as the 101 head
    s, head, early = handshake(gw.port, upgrade_request() + b"EARLY")
    with s:
        assert _status(head) == 101
        hdrs = _headers(head)
        assert hdrs["upgrade"] == "websocket" and hdrs["connection"] == "upgrade"
        assert hdrs["x-backend"] == "t0"
        assert early + recv_exactly(s, 10 - len(early)) == b"HELLOEARLY"  # greeting, then echo
        s.sendall(b"more")
        assert recv_exactly(s, 4) == b"more"
    h.wait(lambda: bytes(b.conns[0].received) == b"EARLYmore")
    seen = dict(b.requests[0]["headers"])
    assert seen["connection"] == "upgrade" and seen["upgrade"] == "websocket"


def test_a_refused_upgrade_keeps_the_connection_http(h):
    gw, (b,) = tunnel_gateway(h)
    b.mode = "refuse"
    data = upgrade_request() + b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    got = responses(send(gw.port, data))  # the pipelined GET waited for the 403, then ran
    assert [r.status for r in got] == [403, 200]
    assert [r["url"] for r in b.requests] == ["/ws", "/after"]
    assert b.conns and not any(c.tunnel for c in b.conns)
    assert not gw.tunnels


def test_a_request_behind_others_switches_in_its_turn(h):
    gw, (b,) = tunnel_gateway(h)
    s, head, rest = handshake(
        gw.port, b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n" + upgrade_request()
    )
    with s:
        assert _status(head) == 200
        while b"101 Switching" not in rest:
            rest += s.recv(65536)
        s.sendall(b"ping")
        assert recv_exactly(s, 4) == b"ping"
    assert [r["url"] for r in b.requests] == ["/first", "/ws"]


def test_other_upgrades_are_proxied_as_plain_requests_on_a_connection_that_stays_http(h):
    gw, b = one(h)
    h2c = (
        b"POST /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAA\r\nContent-Length: 5\r\n\r\nhello"
    )
    other = b"GET /other HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: irc/6.9\r\n\r\n"
    loose = b"GET /loose HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"  # no Connection
    old = (
        b"GET /old HTTP/1.0\r\nHost: a\r\nConnection: upgrade, keep-alive\r\n"
        b"Upgrade: websocket\r\n\r\n"
    )
    last = b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    got = responses(send(gw.port, h2c + other + loose + old + last))
    assert [r.status for r in got] == [200] * 5
    assert [r["url"] for r in b.requests] == ["/h2c", "/other", "/loose", "/old", "/last"]
    assert b.requests[0]["body"] == b"hello"
    for req in b.requests:
        names = {k for k, _ in req["headers"]}
        assert "upgrade" not in names and "http2-settings" not in names
        assert "connection" not in names
    assert not gw.tunnels


def test_upgrade_protocols_can_be_widened(h):
    gw, (b,) = tunnel_gateway(h, upgrade_protocols=frozenset((b"websocket", b"irc")))
    req = b"GET /irc HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: irc/6.9\r\n\r\n"
    s, head, _ = handshake(gw.port, req)
    with s:
        assert _status(head) == 101
    assert dict(b.requests[0]["headers"])["upgrade"] == "irc/6.9"


def test_upgrade_requests_pass_the_same_checks(h):
    gw, (b,) = tunnel_gateway(h, max_header_bytes=2048)
    cases = {
        upgrade_request(extra="X-Big: " + "a" * 4096 + "\r\n"): 431,
        upgrade_request(host="a, b"): 400,
        b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n": 400,  # no Host
        b"POST /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n": 400,
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n": 405,
    }
    for data, status in cases.items():
        got = responses(send(gw.port, data))
        assert [r.status for r in got] == [status], data
    assert b.requests == [] and not gw.tunnels


def test_connection_tokens_never_remove_what_the_upgrade_was_routed_by(h):
    gw, (b,) = tunnel_gateway(h)
    extra = "Connection: upgrade, cookie, host, x-private\r\nCookie: sid=1\r\nX-Private: p\r\n"
    s, head, _ = handshake(gw.port, upgrade_request(extra=extra).replace(UPGRADE_LINE, b""))
    with s:
        assert _status(head) == 101
    seen = dict(b.requests[0]["headers"])
    assert seen["cookie"] == "sid=1" and seen["host"] == "a"
    assert "x-private" not in seen and seen["upgrade"] == "websocket"


UPGRADE_LINE = b"Connection: Upgrade\r\n"


def test_a_101_without_upgrade_is_a_bad_gateway(h):
    gw, (b,) = tunnel_gateway(h)
    b.mode = "bare"
    s, head, _ = handshake(gw.port)
    with s:
        assert _status(head) == 502
        s.sendall(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")  # the connection stays HTTP
        head, _ = read_head(s)
        assert _status(head) == 200
    assert not gw.tunnels


def test_half_close_is_relayed_and_the_other_direction_stays_open(h):
    gw, (b,) = tunnel_gateway(h)
    b.echo = False
    b.half_close = True
    s, _head, _ = handshake(gw.port)
    with s:
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)
        h.wait(lambda: b.conns[0].eof)
        assert bytes(b.conns[0].received) == b"last words"
        h.call(b.conns[0].transport.write, b"answer")
        assert recv_exactly(s, 6) == b"answer"
        h.call(b.conns[0].transport.close)
        assert _eventually_eof(s) == b""
    h.wait(lambda: not gw.tunnels)


def test_a_tunnel_holds_one_in_flight_slot_until_it_closes(h):
    gw, _ = tunnel_gateway(h)
    route = gw.router.routes[0]
    s, head, _ = handshake(gw.port)
    assert _status(head) == 101
    assert h.call(lambda: (route.total_active, len(gw.tunnels))) == (1, 1)
    s.close()
    h.wait(lambda: route.total_active == 0 and not gw.tunnels)
    assert gw.metrics.tunnels_opened == 1 and gw.metrics.tunnels_closed["client closed"] == 1


def test_a_client_that_stops_reading_stops_the_upstream_not_the_gateways_memory(h):
    gw, (b,) = tunnel_gateway(h)
    b.echo = False
    s, _head, _ = handshake(gw.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    with s:
        conn = b.conns[0]
        block = bytes(range(256)) * 4096  # 1 MiB
        total = 0

        async def flood():  # the upstream writes 48 MiB as fast as it can
            nonlocal total
            for _ in range(48):
                conn.transport.write(block)
                total += len(block)
                await asyncio.sleep(0)

        h.run(flood())
        tunnel = next(iter(gw.tunnels))
        h.wait(lambda: tunnel.upstream.held)  # the gateway stopped reading the upstream
        held = h.call(tunnel.client.transport.get_write_buffer_size)
        assert held < 4 << 20  # the rest waits in the upstream's own buffers, not the gateway
        assert h.call(conn.transport.get_write_buffer_size) > 24 << 20
        got = recv_exactly(s, total)  # the client reads again: everything arrives in order
        assert got == block * 48
        h.wait(lambda: not tunnel.upstream.held)


def test_an_upstream_that_stops_reading_stops_the_client(h):
    gw, (b,) = tunnel_gateway(h)
    b.echo = False
    s, _head, _ = handshake(gw.port)
    with s:
        conn = b.conns[0]
        h.call(conn.transport.pause_reading)
        tunnel = next(iter(gw.tunnels))
        block = b"z" * (1 << 20)
        sent = 0
        stop = threading.Event()

        def pump():
            nonlocal sent
            s.settimeout(0.2)
            while not stop.is_set() and sent < 64 << 20:
                try:
                    sent += s.send(block)
                except TimeoutError:
                    continue

        t = threading.Thread(target=pump)
        t.start()
        try:
            h.wait(lambda: tunnel.client.held, timeout=10)  # the gateway stopped reading us
            assert h.call(tunnel.upstream.transport.get_write_buffer_size) < 4 << 20
        finally:
            stop.set()
            t.join()
        h.call(conn.transport.resume_reading)
        h.wait(lambda: len(conn.received) == sent, timeout=20)
        assert bytes(conn.received) == b"z" * sent


def test_idle_timer_is_per_side_a_silent_client_is_closed_while_the_upstream_talks(h):
    gw, (b,) = tunnel_gateway(h, tunnel_idle_timeout=0.4)
    b.echo = False
    s, _head, _ = handshake(gw.port)
    conn = b.conns[0]
    talking = asyncio.run_coroutine_threadsafe(_talk(conn), h.loop)
    with s:
        s.settimeout(5)
        received = _eventually_eof(s)  # closed cleanly by the gateway, not reset
    talking.cancel()
    assert received.startswith(b"tick")
    h.wait(lambda: not gw.tunnels and conn.lost)
    assert dict(gw.metrics.tunnels_closed) == {"client idle": 1}


async def _talk(conn) -> None:
    while not conn.transport.is_closing():
        conn.transport.write(b"tick")
        await asyncio.sleep(0.05)


def test_a_client_that_takes_nothing_is_cut_after_the_idle_timeout(h):
    gw, (b,) = tunnel_gateway(h, tunnel_idle_timeout=0.4)
    b.echo = False
    s, _head, _ = handshake(gw.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn = b.conns[0]
    with s:
        h.call(conn.transport.write, b"x" * (16 << 20))
        stop = threading.Event()
        talker = threading.Thread(target=_keep_talking, args=(s, stop))
        talker.start()  # the client keeps talking, so only its reading is late
        try:
            h.wait(lambda: not gw.tunnels, timeout=10)
        finally:
            stop.set()
            talker.join()
    assert dict(gw.metrics.tunnels_closed) == {"client stopped reading": 1}


def _keep_talking(s: socket.socket, stop: threading.Event) -> None:
    while not stop.wait(0.05):
        try:
            s.sendall(b"p")
        except OSError:
            return


def test_sigterm_lets_tunnels_run_for_the_grace_period_then_closes_them_cleanly(h):
    gw, (b,) = tunnel_gateway(h, drain_timeout=1.0)
    s, _, _ = handshake(gw.port)
    keep = socket.create_connection(("127.0.0.1", gw.port), timeout=5)  # an idle keep-alive
    keep.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    read_head(keep)
    with s, keep:
        stopping = asyncio.run_coroutine_threadsafe(gw.shutdown(), h.loop)
        h.wait(lambda: gw.draining)
        s.sendall(b"during drain")
        assert recv_exactly(s, 12) == b"during drain"  # the tunnel still relays
        assert not stopping.done()
        s.settimeout(5)
        assert _eventually_eof(s) == b""  # then a clean close (FIN, not a reset)
        stopping.result(5)
    assert b.conns[0].lost
    assert dict(gw.metrics.tunnels_closed) == {"shutdown": 1}


def test_no_new_tunnel_while_draining(h):
    gw, (b,) = tunnel_gateway(h, drain_timeout=2.0)
    s, head, _ = handshake(gw.port)  # an open tunnel keeps the drain going
    busy = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    with s, busy:
        busy.sendall(b"GET /ws HTTP/1.1\r\n")  # a request under way when SIGTERM comes
        h.wait(lambda: any(c.cur is not None for c in gw.clients))
        stopping = asyncio.run_coroutine_threadsafe(gw.shutdown(), h.loop)
        h.wait(lambda: gw.draining)
        busy.sendall(upgrade_request().split(b"\r\n", 1)[1])
        head, _ = read_head(busy)
        assert _status(head) == 503
        s.close()
        stopping.result(5)
    assert [r["url"] for r in b.requests] == ["/ws"]  # the refused one never went upstream


def test_metrics_show_tunnels(h):
    gw, _ = tunnel_gateway(h)
    s, _head, _ = handshake(gw.port)
    with s:
        text = _metrics(gw)
        assert "tether_gateway_tunnels 1.0" in text
        assert "tether_gateway_tunnels_opened_total 1.0" in text
    h.wait(lambda: not gw.tunnels)
    text = _metrics(gw)
    assert 'tether_gateway_tunnels_closed_total{reason="client closed"} 1.0' in text


def _metrics(gw) -> str:
    import http.client

    c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=5)
    c.request("GET", "/metrics")
    return c.getresponse().read().decode()


def test_plain_requests_still_reach_the_tunnel_backend(h):
    gw, (b,) = tunnel_gateway(h)
    got = responses(send(gw.port, b"GET /get HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
    assert [r.status for r in got] == [200]
    assert json.loads(got[0].body)["backend"] == "t0"
    assert isinstance(b, TunnelBackend)


def test_an_upgrade_behind_a_full_pipeline_waits_its_turn(h):
    gw, (b,) = tunnel_gateway(h, max_pipelined=2)
    gets = b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(5))
    s, head, rest = handshake(gw.port, gets + upgrade_request() + b"EARLY")
    with s:
        data = head + rest
        while data.count(b"\r\n\r\n") < 6 or b"101 Switching" not in data:
            data += s.recv(65536)
        assert re.findall(rb"HTTP/1.1 (\d{3})", data) == [b"200"] * 5 + [b"101"]
        s.sendall(b"!")
        h.wait(lambda: bytes(b.conns[-1].received) == b"EARLY!")
    assert [r["url"] for r in b.requests] == ["/0", "/1", "/2", "/3", "/4", "/ws"]
