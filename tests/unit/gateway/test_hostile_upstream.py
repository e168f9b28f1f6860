"""Misbehaving upstreams over real sockets (native lane and pure Python): stale pooled
connections, bodies where a response has none, close-delimited bodies, oversized heads. Each
exchange must end, with the bytes the client is owed and nothing else."""

from __future__ import annotations

import socket

import pytest

from .hostile import CLOSE, raw, request, responses, send
from .rawbackend import ok

# -- stale pooled connections --------------------------------------------------------------


def _first_only(req):
    """Answer the first request on each connection; close reused ones without answering."""
    return (ok(b"conn %d" % req["conn"]), False) if req["nth"] == 1 else None


def test_stale_pooled_connection_resends_a_bodyless_request_once(h):
    gw, b = raw(h, _first_only)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(request("/a"))
        (r,) = responses(s.recv(65536))
        assert r.body == b"conn 1"
        s.sendall(request("/b", extra=CLOSE))  # goes out on the pooled connection, which drops it
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    (r,) = responses(out)
    assert r.status == 200 and r.body == b"conn 2"  # resent once, on a fresh connection
    assert [(x["url"], x["conn"]) for x in b.requests] == [("/a", 1), ("/b", 1), ("/b", 2)]


def test_stale_pooled_connection_with_a_body_gets_502(h):
    gw, b = raw(h, _first_only)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(request("/a"))
        responses(s.recv(65536))
        s.sendall(request("/post", body=b"payload", extra=CLOSE))
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    (r,) = responses(out)
    assert r.status == 502 and b"closed the connection before responding" in r.body
    assert [x["url"] for x in b.requests] == ["/a", "/post"]  # never sent twice


def test_a_resent_request_that_fails_again_gets_502(h):
    """Every connection after the first answers nothing: the resend fails, the client gets
    502, not a hang."""
    gw, b = raw(h, lambda req: (ok(), False) if req["conn"] == 1 and req["nth"] == 1 else None)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(request("/a"))
        responses(s.recv(65536))
        s.sendall(request("/b", extra=CLOSE))
        out = s.recv(65536)
    (r,) = responses(out)
    assert r.status == 502
    assert [(x["url"], x["conn"]) for x in b.requests] == [("/a", 1), ("/b", 1), ("/b", 2)]


def test_a_partial_answer_on_a_pooled_connection_is_not_resent(h):
    """Bytes came back (half a head): the upstream did see the request, so no resend."""

    def script(req):
        if req["nth"] == 1:
            return ok(), False
        return b"HTTP/1.1 200 OK\r\nContent-Len", True

    gw, b = raw(h, script)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(request("/a"))
        responses(s.recv(65536))
        s.sendall(request("/b", extra=CLOSE))
        out = s.recv(65536)
    assert responses(out)[0].status == 502
    assert [x["url"] for x in b.requests] == ["/a", "/b"]


def test_pipelined_requests_over_a_stale_connection_all_end(h):
    gw, _ = raw(h, _first_only)
    data = request("/a") + request("/b") + request("/c") + request("/d", extra=CLOSE)
    rs = responses(send(gw.port, data))
    assert [r.status for r in rs] == [200, 200, 200, 200]
    assert [r.body for r in rs] == [b"conn 1", b"conn 2", b"conn 3", b"conn 4"]


# -- Connection tokens in responses ------------------------------------------------------------


@pytest.mark.parametrize("token", [b"content-length", b"Transfer-Encoding", b"x-a, content-length"])
def test_upstream_connection_tokens_never_remove_the_response_framing(h, token):
    """The client still gets the framing the gateway read the response by; the next
    response on the same client connection is its own."""
    chunked = token.lower() == b"transfer-encoding"
    framing = (b"Transfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n" if chunked
               else b"Content-Length: 5\r\n\r\nfirst")  # fmt: skip
    reply = b"HTTP/1.1 200 OK\r\nConnection: %s\r\nX-A: 1\r\n%s" % (token, framing)
    gw, _ = raw(h, lambda req: (reply if req["url"] == "/1" else ok(b"second"), False))
    first, second = responses(send(gw.port, request("/1") + request("/2", extra=CLOSE)))
    assert (first.body, second.body) == (b"first", b"second")
    name = "transfer-encoding" if chunked else "content-length"
    assert first.header(name) and first.header("x-a") == ([] if b"x-a" in token else ["1"])


# -- no body where a response has none -------------------------------------------------------

_NO_BODY = [
    ("HEAD with Content-Length and a body", "HEAD",
     b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nJUNK!"),
    ("HEAD, chunked, with a body", "HEAD",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nJUNK!\r\n0\r\n\r\n"),
    ("204 with a body", "GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nJUNK!"),
    ("304 with a body", "GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nJUNK!"),
    ("204 with chunked junk", "GET",
     b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nJUNK!\r\n0\r\n\r\n"),
    ("two responses for one request", "GET", ok(b"one") + ok(b"JUNK!")),
]  # fmt: skip


@pytest.mark.parametrize("case", _NO_BODY, ids=[c[0] for c in _NO_BODY])
def test_no_body_is_relayed_after_a_response_that_has_none(h, case):
    """The next pipelined request gets its own response, never the junk bytes; the
    connection that sent junk is not reused."""
    _, method, first = case
    gw, b = raw(h, lambda req: (first, False) if req["url"] == "/first" else (ok(b"next"), False))
    data = f"{method} /first HTTP/1.1\r\nHost: a\r\n\r\n".encode() + request("/next", extra=CLOSE)
    out = send(gw.port, data)
    assert b"JUNK" not in out
    r, nxt = responses(out, heads={0} if method == "HEAD" else set())
    assert r.status == int(first.split(b" ")[1])  # the status is relayed, without the junk
    assert nxt.status == 200 and nxt.body == b"next"
    assert [x["conn"] for x in b.requests] == [1, 2]


def test_interim_responses_are_relayed_without_a_body(h):
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
    gw, _ = raw(h, lambda req: (early + ok(b"final"), False))
    out = send(gw.port, request("/x", extra=CLOSE))
    assert out.startswith(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK")
    assert out.endswith(b"\r\n\r\nfinal")


def test_an_interim_response_with_a_body_is_a_bad_response(h):
    gw, _ = raw(h, lambda req: (b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nJUNK!"
                                + ok(b"final"), False))  # fmt: skip
    out = send(gw.port, request("/x", extra=CLOSE))
    assert b"JUNK" not in out and responses(out)[0].status == 502


# -- close-delimited bodies ------------------------------------------------------------------

RAW_BODY = b"5\r\nhello\r\n0\r\n\r\nnot chunked, just bytes"


@pytest.mark.parametrize("te", [b"identity", b"gzip", b"Identity"])
def test_transfer_encoding_identity_is_relayed_intact_until_close(h, te):
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: %s\r\n\r\n%s" % (te, RAW_BODY)
    gw, _ = raw(h, lambda req: (reply, True))
    out = send(gw.port, request("/x"))
    head, _, body = out.partition(b"\r\n\r\n")
    assert body == RAW_BODY
    assert b"Transfer-Encoding: " + te in head and b"connection: close" in head.lower()


def test_close_delimited_body_to_an_http10_client_drops_transfer_encoding(h):
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n" + RAW_BODY
    gw, _ = raw(h, lambda req: (reply, True))
    out = send(gw.port, b"GET /x HTTP/1.0\r\nHost: a\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert body == RAW_BODY and b"transfer-encoding" not in head.lower()


def test_ambiguous_upstream_framing_is_a_bad_response(h):
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabcdef"
    gw, _ = raw(h, lambda req: (reply, False))
    assert responses(send(gw.port, request("/x", extra=CLOSE)))[0].status == 502


# -- oversized upstream heads ----------------------------------------------------------------


@pytest.mark.parametrize("split", [False, True], ids=["one read", "many reads"])
def test_oversized_upstream_head_gets_502(h, split):
    big = b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 70_000 + b"\r\nContent-Length: 2\r\n\r\nok"
    reply = [big[i : i + 4096] for i in range(0, len(big), 4096)] if split else big
    gw, _ = raw(h, lambda req: (reply, False))
    (r,) = responses(send(gw.port, request("/x", extra=CLOSE)))
    assert r.status == 502 and b"head too large" in r.body


def test_upstream_head_at_the_limit_is_relayed(h):
    pad = 65536 - len(b"HTTP/1.1 200 OK\r\nX-Big: \r\nContent-Length: 2\r\n\r\n")
    head = b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * pad + b"\r\nContent-Length: 2\r\n\r\n"
    assert len(head) == 65536
    gw, _ = raw(h, lambda req: (head + b"ok", False))
    (r,) = responses(send(gw.port, request("/x", extra=CLOSE)))
    assert r.status == 200 and r.body == b"ok"


def test_an_endpoint_closing_unanswered_sends_idempotent_requests_to_the_next(h):
    """A pod shutting down accepts a connection and closes it without a byte of answer. A GET
    (no body) goes to the next endpoint, as nginx's default does; a POST is never sent twice
    and gets 502; with a single endpoint the GET gets 502 rather than a loop."""
    from .conftest import backend_of, get
    from .docs import make_document
    from .rawbackend import RawBackend

    closing = RawBackend(h, lambda req: None)  # accepts, reads the request, closes
    good = h.backend("good")
    eps = [("127.0.0.1", closing.port, "closing"), ("127.0.0.1", good.port, "good")]
    h.write_table("svc.json", make_document(eps, algorithm=None))
    gw = h.gateway()
    h.wait(lambda: gw.loaded)
    for _ in range(6):  # round robin: about half start on the closing endpoint
        status, _, body, conn = get(gw.port, "/get", headers={"Connection": "close"})
        conn.close()
        assert status == 200 and backend_of(body) == "good"
    gets = [r for r in closing.requests if r["method"] == "GET"]
    assert gets, "round robin sent some GETs to the closing endpoint first"
    posts = []
    for _ in range(6):
        status, _, body, conn = get(gw.port, "/post", method="POST", body=b"x",
                                    headers={"Connection": "close"})  # fmt: skip
        conn.close()
        posts.append(status)
    seen = [r for r in closing.requests if r["method"] == "POST"]
    assert seen and posts.count(502) == len(seen) and posts.count(200) == 6 - len(seen)


def test_a_single_endpoint_closing_unanswered_gets_502_once(h):
    gw, b = raw(h, lambda req: None)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(request("/a", extra=CLOSE))
        out = s.recv(65536)
    (r,) = responses(out)
    assert r.status == 502 and b"closed the connection before responding" in r.body
    assert [x["url"] for x in b.requests] == ["/a"]  # not sent again to the same endpoint
