"""Timers that track progress, over real sockets (native lane and pure Python): an exchange
that keeps moving is never cut, whatever its total duration; a direction that stops moving is
cut after its own timeout, and every exchange ends."""

from __future__ import annotations

import socket
import time

import pytest

from .hostile import CLOSE, one, raw, responses
from .rawbackend import ok

PIECES = 16


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_steady_upload_longer_than_the_upstream_timeout_succeeds(h, framing):
    gw, b = one(h, upstream_timeout=0.3)
    piece = b"u" * 1000
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        if framing == "chunked":
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n" + b"\r\n")
        else:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
                      % (PIECES * len(piece)))  # fmt: skip
        start = time.monotonic()
        for _ in range(PIECES):  # 16 pieces, 0.08 s apart: ~1.3 s, 4x the upstream timeout
            s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if framing == "chunked" else piece)
            time.sleep(0.08)
        if framing == "chunked":
            s.sendall(b"0\r\n\r\n")
        s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n" + CLOSE.encode() + b"\r\n")
        out = _read_all(s)
    assert time.monotonic() - start > 3 * 0.3
    echo, _ = responses(out)
    assert echo.status == 200 and echo.body == piece * PIECES
    assert b.requests[0]["body"] == piece * PIECES


def test_a_steady_response_longer_than_the_upstream_timeout_succeeds(h):
    body = b"d" * 20_000
    pieces = [ok(body)[: -len(body)]] + [body[i : i + 1000] for i in range(0, len(body), 1000)]
    gw, _ = raw(h, lambda req: (pieces, False), delay=0.06, upstream_timeout=0.3)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        (r,) = responses(_read_all(s))
    assert r.status == 200 and r.body == body


def test_a_client_pausing_its_reads_longer_than_the_upstream_timeout_gets_everything(h):
    body = bytes(range(256)) * 32768  # 8 MiB: far more than the socket buffers hold
    gw, _ = raw(h, lambda req: (ok(body), False), upstream_timeout=0.3)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        first = s.recv(65536)
        h.wait(lambda: any(c.wpaused for c in gw.clients))  # the gateway has to wait for us
        time.sleep(1.0)  # 3x the upstream timeout, the upstream paused by the gateway
        (r,) = responses(first + _read_all(s))
    assert r.status == 200 and r.body == body


def test_a_slow_steady_reader_outlasts_the_idle_timeout(h):
    body = b"r" * 2_000_000
    gw, _ = raw(h, lambda req: (ok(body), False), idle_timeout=0.5)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        start, out = time.monotonic(), b""
        while chunk := s.recv(200_000):  # ~2 s in all, a little every 0.1 s
            out += chunk
            time.sleep(0.1)
    assert time.monotonic() - start > 2 * 0.5
    (r,) = responses(out)
    assert r.body == body


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_client_that_stops_sending_its_body_gets_408(h, framing):
    gw, b = one(h, idle_timeout=0.4, upstream_timeout=30)
    if framing == "chunked":
        head = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"
    else:
        head = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nhel"
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(head)
        start = time.monotonic()
        out = _read_all(s)
    (r,) = responses(out)
    assert r.status == 408 and b"request body" in r.body
    assert time.monotonic() - start < 5
    assert not b.requests  # the upstream never got a complete request
    h.wait(lambda: not gw.upstreams or all(u.ex is None for u in gw.upstreams))


def test_a_client_that_never_reads_its_response_is_cut_off(h):
    body = b"n" * 8_000_000
    gw, _ = raw(h, lambda req: (ok(body), False), idle_timeout=0.4, upstream_timeout=30)
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        h.wait(lambda: any(c.wpaused for c in gw.clients))
        h.wait(lambda: not gw.clients, timeout=10)  # dropped, though the client never closed
        h.wait(lambda: all(u.ex is None for u in gw.upstreams))  # and the upstream let go
    finally:
        s.close()


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(h):
    gw, _ = one(h, idle_timeout=0.3)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET /get HTTP/1.1\r\nHost: a\r\n\r\n")
        start = time.monotonic()
        out = _read_all(s)  # the gateway closes once the connection idled 0.3 s
    assert responses(out)[0].status == 200 and time.monotonic() - start < 5


def test_a_body_the_gateway_does_not_read_yet_is_not_timed_out(h):
    """The queue is full, so the gateway stops reading, and a queued request's body waits
    in the socket longer than the idle timeout. It is the gateway's own wait, not the
    client's: once the queue drains, the body is read and answered."""
    gw, b = one(h, idle_timeout=0.4, max_pipelined=1)
    body = b"q" * 50_000
    post = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET /slow?s=1.2 HTTP/1.1\r\nHost: a\r\n\r\n" + post + body[:10])
        h.wait(lambda: any(c.read_paused for c in gw.clients))  # queue full: not reading
        s.sendall(body[10:] + b"GET /x HTTP/1.1\r\nHost: a\r\n" + CLOSE.encode() + b"\r\n")
        slow, echo, last = responses(_read_all(s))
    assert (slow.status, echo.status, last.status) == (200, 200, 200)
    assert echo.body == body and [r["url"] for r in b.requests] == ["/slow?s=1.2", "/echo", "/x"]
