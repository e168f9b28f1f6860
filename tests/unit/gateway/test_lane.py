"""Framing and ordering cases the native lane hands over to Python, or handles itself.

Every test runs on the native lane and on pure Python (the ``h`` fixture); both must behave
the same way a user can see: complete responses, in order, stray upstream bytes never
reaching the client, and connections reused only when that is safe.
"""

from __future__ import annotations

import json

import pytest

from tether.gateway.wire import _wire
from tether.hashing import Host, Maglev, MaglevConfig, xxh64

from .conftest import backend_of, get, header
from .docs import cookie_key, make_document
from .harness import raw_request
from .hostile import one as _one


def test_body_arriving_in_several_reads_is_relayed_whole(h):
    gw, b = _one(h)
    status, headers, body, c = get(gw.port, "/split")
    assert status == 200 and backend_of(body) == "b0"
    assert header(headers, "content-length") == [str(len(body))]
    status, _, body, _ = get(gw.port, "/split", conn=c)  # the pooled connection still works
    assert status == 200 and backend_of(body) == "b0" and b.connections == 1


def test_stray_upstream_bytes_never_reach_the_client(h):
    gw, _ = _one(h)
    status, _, body, c = get(gw.port, "/junk-later")
    assert status == 200 and backend_of(body) == "b0"
    h.wait(lambda: not gw.pools.count())  # the connection that misbehaved is not reused
    status, _, body, _ = get(gw.port, "/get", conn=c)
    assert status == 200 and json.loads(body)["conn"] == 2
    status, _, body, c = get(gw.port, "/split-junk", conn=c)
    assert status == 200 and backend_of(body) == "b0" and b"JUNK" not in body
    status, _, body, _ = get(gw.port, "/get", conn=c)
    assert status == 200 and json.loads(body)["conn"] == 3
    out = raw_request(gw.port, b"GET /junk-after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert b"JUNK" not in out


def test_upstream_connection_close_is_not_pooled(h):
    gw, b = _one(h)
    c = None
    for _ in range(3):
        status, _, body, c = get(gw.port, "/close-after", conn=c)
        assert status == 200 and backend_of(body) == "b0"
    assert b.connections == 3  # each response said close: a fresh connection every time
    assert header(get(gw.port, "/get")[1], "connection") == []


def test_pipelined_fast_and_slow_requests_answer_in_order(h):
    gw, b = _one(h)
    out = raw_request(
        gw.port,
        b"GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /status/202 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /status/203 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    assert out.index(b"HTTP/1.1 201") < out.index(b"hello") < out.index(b"HTTP/1.1 202")
    assert out.index(b"HTTP/1.1 202") < out.index(b"HTTP/1.1 203")
    assert [r["url"] for r in b.requests] == ["/status/201", "/echo", "/status/202", "/status/203"]


def test_many_sticky_requests_on_one_connection_and_their_log_lines(h, tmp_path):
    backends = [h.backend(f"b{i}") for i in range(3)]
    eps = [("127.0.0.1", b.port, b.name) for b in backends]
    h.write_table("svc.json", make_document(eps, hash_key=cookie_key("sid", ttl=None)))
    log = tmp_path / "access.log"
    gw = h.gateway(access_log=str(log))
    h.wait(lambda: gw.loaded)
    maglev = Maglev.build([Host(f"127.0.0.1:{b.port}") for b in backends], MaglevConfig(65537))
    conn, sids = None, [f"user-{i}" for i in range(60)]
    for sid in sids:
        _, headers, body, conn = get(gw.port, f"/get?u={sid}", headers={"Cookie": f"sid={sid}"},
                                     conn=conn)  # fmt: skip
        assert backend_of(body) == backends[maglev.choose(xxh64(sid))].name
        assert header(headers, "keep-alive") == [] and header(headers, "connection") == []
    assert sum(b.connections for b in backends) <= 3  # one pooled connection per backend
    h.call(gw.accesslog.flush)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["path"] for line in lines] == [f"/get?u={sid}" for sid in sids]
    for line, sid in zip(lines, sids, strict=True):
        assert line["hash"] == format(xxh64(sid), "016x") and line["affinity"] == "cookie"
        assert line["status"] == 200 and line["attempts"] == 1 and line["error"] == ""
        assert line["bytes"] > 0 and line["client"] == "127.0.0.1"


def _read_responses(sock, count: int) -> list[bytes]:
    """Read exactly ``count`` Content-Length responses (bodies included) from a socket."""
    buf, out = b"", []
    while len(out) < count:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(out)} responses"
        buf += chunk
        while b"\r\n\r\n" in buf:
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(rest) < length:
                break
            out.append(head + b"\r\n\r\n" + rest[:length])
            buf = rest[length:]
    return out


def test_content_length_body_in_pieces_then_a_pipelined_request(h):
    import socket
    import time

    gw, b = _one(h)
    body = bytes(range(256)) * 40  # 10 KiB, every byte value
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, 8000, 2000):  # the body trickles in: first while connecting
            s.sendall(body[i : i + 2000])
            time.sleep(0.02)
        s.sendall(body[8000:] + b"GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\n")
        first, second = _read_responses(s, 2)
    assert first.startswith(b"HTTP/1.1 200") and first.endswith(body)
    assert second.startswith(b"HTTP/1.1 201")
    assert b.requests[0]["body"] == body and len(b.requests) == 2


def test_content_length_body_with_connection_close(h):
    gw, b = _one(h)
    body = b"z" * 70000
    out = raw_request(
        gw.port,
        b"PUT /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 70000\r\n\r\n"
        + body
        + b"GET /never HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(body)
    assert b"connection: close" in out.lower().split(b"\r\n\r\n")[0]
    assert [r["url"] for r in b.requests] == ["/echo"]  # nothing after a request that closes


_AMBIGUOUS_FRAMING = [
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    b"Content-Length: 5\r\nContent-Length: 6\r\n",
    b"Content-Length: 5\r\nContent-Length: 5\r\n",
    b"Content-Length: 5, 5\r\n",
    b"Content-Length: +5\r\n",
    b"Content-Length: -1\r\n",
    b"Content-Length : 5\r\n",
    b"Content-Length: 99999999999999999999999\r\n",
    b"Transfer-Encoding: chunked, gzip\r\n",
]


def test_ambiguous_request_framing_is_refused(h):
    """Request smuggling: a request whose body length is ambiguous goes to llhttp (never the
    fast path) and gets 400, alone or pipelined after a fast-path request (which is answered
    first, then the 400, then the connection closes); nothing of it reaches an upstream."""
    gw, b = _one(h)
    for framing in _AMBIGUOUS_FRAMING:
        smuggle = b"POST /x HTTP/1.1\r\nHost: a\r\n" + framing + b"\r\n0\r\n\r\nhello"
        smuggle += b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        out = raw_request(gw.port, smuggle)
        assert out.startswith(b"HTTP/1.1 400 ") and out.count(b"HTTP/1.1 ") == 1, framing
        out = raw_request(gw.port, b"GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\n" + smuggle)
        assert out.startswith(b"HTTP/1.1 201 ") and out.count(b"HTTP/1.1 ") == 2, framing
        assert out.index(b"HTTP/1.1 400 ") > out.index(b"HTTP/1.1 201 "), framing
        assert [r["url"] for r in b.requests] == ["/status/201"], framing
        b.requests.clear()


def test_a_failed_lane_bind_leaves_the_bound_lane_intact(h):
    """lane_bind resolves every offset before it changes anything: a call that fails (here on
    the template, after resolving an Exchange lookalike with three more slots first) must not
    leave the running lane copying the real template from the lookalike's offsets (past its
    end: a heap over-read, and garbage references in every new exchange)."""
    from tether.gateway import native

    gw, _ = _one(h)
    real = [native.AccessLog, native.ClientProtocol, native.Exchange, type(gw),
            native.GatewayConfig, native.Histogram, native.Pools, native.Route, native.Router,
            native.SessionRoute, native.Target, native.UpstreamConnection]  # fmt: skip
    decoys = {cls.__name__: type(cls.__name__, (), {"__slots__": cls.__slots__}) for cls in real}
    slots = ("_p0", "_p1", "_p2", *native.Exchange.__slots__)
    decoys["Exchange"] = type("Exchange", (), {"__slots__": slots})
    with pytest.raises(TypeError, match="template"):
        _wire.lane_bind(decoys, object(), (0.1,), 0, native.scan_cookie, xxh64)
    c = None
    for _ in range(3):
        status, _, body, c = get(gw.port, "/get", conn=c)
        assert status == 200 and backend_of(body) == "b0"


def test_a_target_index_out_of_range_is_an_error_not_a_read(h):
    """The lane indexes route.targets with what the schedule (or a ring chooser) returns: a
    negative index must raise, never read before the list."""
    gw, _ = _one(h)
    assert get(gw.port, "/get")[0] == 200
    (route,) = {r for r in gw.router._cache.values() if r is not None}
    schedule = route.schedule
    for bad in ([-5], [-(2**40)]):
        h.call(setattr, route, "schedule", bad)
        out = raw_request(gw.port, b"GET /get HTTP/1.1\r\nHost: a\r\n\r\n", timeout=2)
        assert not out.startswith(b"HTTP/1.1 200")
    h.call(setattr, route, "schedule", schedule)
    assert get(gw.port, "/get")[0] == 200
