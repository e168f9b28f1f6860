"""Limits over real sockets (native lane and pure Python): body and head sizes, pipelining
depth, and memory against clients that never read. A limit refuses a pipelined follower as it
refuses the first request, in its turn, and never drops a request accepted before it."""

from __future__ import annotations

import contextlib
import socket

import pytest

from tether.gateway.flow import ClientFlow

from .hostile import CLOSE, one, request, responses, send

# -- body size -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra", ["", "Connection: x-slow-path\r\n"], ids=["fast path head", "llhttp head"]
)
def test_declared_length_over_the_limit_gets_413_before_any_body(h, extra):
    gw, b = one(h, max_body_bytes=1000)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(
            f"POST /echo HTTP/1.1\r\nHost: a\r\n{extra}Content-Length: 10000000\r\n\r\n".encode()
        )
        out = s.recv(65536)  # answered without a single body byte sent
    (r,) = responses(out)
    assert r.status == 413 and r.header("connection") == ["close"]
    assert b"larger than 1000 bytes" in r.body and not b.requests


def test_a_client_that_sends_its_whole_body_anyway_reads_the_413(h):
    """The gateway half-closes after the 413 and discards the body still coming (nginx's
    lingering close): closing at once would reset the connection under the answer."""
    gw, b = one(h, max_body_bytes=1000)
    body = b"x" * 4_000_000
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body))
        s.sendall(body)  # no reset: the gateway reads it all, and drops it
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    (r,) = responses(out)
    assert r.status == 413 and not b.requests


def test_pipelined_follower_over_the_body_limit_is_refused_in_its_turn(h):
    gw, b = one(h, max_body_bytes=1000)
    data = request("/status/201") + request("/echo", body=b"x" * 2000) + request("/never")
    first, second = responses(send(gw.port, data))
    assert (first.status, second.status) == (201, 413)
    assert [x["url"] for x in b.requests] == ["/status/201"]


def test_chunked_body_over_the_limit_gets_413_and_the_upstream_no_complete_request(h):
    gw, b = one(h, max_body_bytes=1000)
    chunk = b"%x\r\n%s\r\n" % (600, b"y" * 600)
    data = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3
    (r,) = responses(send(gw.port, data))
    assert r.status == 413
    assert not b.requests  # the upstream never saw the chunked body end


# -- head size -------------------------------------------------------------------------------


@pytest.mark.parametrize("follower", ["fast path head", "llhttp head"])
def test_pipelined_follower_head_over_the_limit_gets_431_in_its_turn(h, follower):
    gw, b = one(h, max_header_bytes=2048)
    extra = "Connection: x-slow\r\n" if follower == "llhttp head" else ""
    big = request("/big", extra=extra + "X-Big: " + "b" * 3000 + "\r\n")
    first, second = responses(send(gw.port, request("/status/201") + big + request("/never")))
    assert (first.status, second.status) == (201, 431)
    assert second.header("connection") == ["close"]
    assert [x["url"] for x in b.requests] == ["/status/201"]


def test_a_read_ending_mid_head_after_a_large_body_is_no_false_431(h):
    """A 60 KiB chunked body and the start of the next head arrive in one read: the bytes of
    the body must not count as head bytes once the head completes in the next read."""
    gw, b = one(h, max_header_bytes=4096)
    body = b"z" * 60_000
    chunked = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    nxt = request("/status/202", extra=CLOSE)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(chunked + nxt[:10])
        h.wait(lambda: any(c.cur is not None and not c.cur.head_done for c in gw.clients))
        s.sendall(nxt[10:])
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    echo, last = responses(out)
    assert (echo.status, echo.body, last.status) == (200, body, 202)
    assert [x["url"] for x in b.requests] == ["/echo", "/status/202"]


def test_heads_split_across_many_reads_are_all_answered(h):
    """Pipelined heads cut at every few bytes: no request is lost or refused."""
    gw, b = one(h, max_header_bytes=1024)
    data = b"".join(request(f"/status/{200 + i}", extra="X-Pad: " + "p" * 300 + "\r\n")
                    for i in range(5)) + request("/status/299", extra=CLOSE)  # fmt: skip
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        for i in range(0, len(data), 7):
            s.sendall(data[i : i + 7])
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    assert [r.status for r in responses(out)] == [200, 201, 202, 203, 204, 299]
    assert len(b.requests) == 6


def test_a_head_over_the_limit_across_reads_gets_431(h):
    gw, _ = one(h, max_header_bytes=4096)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: ")
        for _ in range(10):  # one header value, 10 KiB, never terminated
            s.sendall(b"v" * 1024)
        out = s.recv(65536)
    assert responses(out)[0].status == 431


# -- pipelining depth ------------------------------------------------------------------------


def _deepest(monkeypatch) -> list[int]:
    """Record the queue length after every enqueue (both paths call ClientFlow._enqueue)."""
    depths: list[int] = []
    real = ClientFlow._enqueue

    def enqueue(self, ex):
        real(self, ex)
        depths.append(len(self.queue))

    monkeypatch.setattr(ClientFlow, "_enqueue", enqueue)
    return depths


def test_many_pipelined_requests_in_one_read_are_all_answered_with_a_bounded_queue(h, monkeypatch):
    depths = _deepest(monkeypatch)
    gw, b = one(h, max_pipelined=4)
    data = b"".join(request(f"/status/{200 + i % 50}") for i in range(200))
    rs = responses(send(gw.port, data + request("/status/299", extra=CLOSE)))
    assert [r.status for r in rs] == [200 + i % 50 for i in range(200)] + [299]
    assert len(b.requests) == 201 and max(depths) <= 4


def test_pipelined_llhttp_requests_past_the_limit_get_503_in_turn(h, monkeypatch):
    """Heads the fast path declines (chunked) are parsed by llhttp a read at a time: the one
    past the limit is refused with 503 after those before it, then the connection closes."""
    depths = _deepest(monkeypatch)
    gw, b = one(h, max_pipelined=3)
    post = (
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    )
    rs = responses(send(gw.port, request("/slow?s=0.2") + post * 10))
    assert [r.status for r in rs] == [200, 200, 200, 200, 503]
    assert b"too many pipelined requests" in rs[-1].body
    assert len(b.requests) == 4 and max(depths) <= 3


def test_clients_that_never_read_hold_bounded_memory(h):
    """8 clients pipeline 100 requests for 256 KiB each and never read. The gateway stops
    reading them and their upstreams: what it holds for them (response bytes not taken, the
    unparsed rest of a read, queued request bodies) stays under 1 MiB per client, instead of
    growing with every response (25 MiB per client before)."""
    import select
    import time

    gw, _ = one(h, max_pipelined=8)
    data = request("/echo", body=b"x" * 262_144) * 100
    socks = []
    try:
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.setblocking(False)
            socks.append(s)
        sent = [0] * 8
        deadline = time.monotonic() + 20
        # send whatever the gateway takes, until every client is one it stopped serving
        while not h.call(lambda: len(gw.clients) == 8 and all(c.wpaused for c in gw.clients)):
            assert time.monotonic() < deadline, "the gateway never saw 8 clients not reading"
            _, writable, _ = select.select([], socks, [], 0.05)
            for s in writable:
                i = socks.index(s)
                with contextlib.suppress(BlockingIOError):
                    sent[i] += s.send(data[sent[i] :])

        def held() -> int:
            total = 0
            for c in gw.clients:
                total += c.transport.get_write_buffer_size() + len(c.stash or b"")
                total += sum(len(p) for ex in (c.queue or ()) for p in ex.pending)
                if c.active is not None:
                    total += sum(len(p) for p in c.active.pending)
            return total

        samples = []
        for _ in range(20):
            samples.append(h.call(held))
            h.run(_sleep(0.02))
        assert max(samples) <= 8 * 2**20, samples
        assert max(h.call(lambda: [len(c.queue or ()) for c in gw.clients])) <= 8
        assert min(sent) < len(data)  # they were stopped, not served to the end
    finally:
        for s in socks:
            s.close()
    h.wait(lambda: not gw.clients)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def test_a_lingering_close_ends_when_the_client_goes_quiet(h):
    gw, _ = one(h, idle_timeout=0.3)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GARBAGE / NOT-HTTP\r\n\r\n")
        (r,) = responses(s.recv(65536))
        assert r.status == 400 and s.recv(65536) == b""  # answered, then half-closed
        s.sendall(b"more bytes, discarded")
        h.wait(lambda: not gw.clients)  # and closed once the client went quiet
