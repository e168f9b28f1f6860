"""Hostile requests over real sockets (native lane and pure Python): Connection-header abuse,
trailers, Host validation, HTTP versions. Each case checks what the client received *and* what
the upstream saw, since a smuggled request is one the upstream reads differently."""

from __future__ import annotations

import json

import pytest

from tether.hashing import xxh64
from tether.models.table import HashKey

from .hostile import CLOSE, one, request, responses, send, sticky, two_services

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

# -- Connection-header abuse ---------------------------------------------------------------

# (Connection value, request) where the token names a field the gateway framed or routed by.
_CONNECTION_ABUSE = [
    ("content-length", b"POST /echo HTTP/1.1\r\nHost: a\r\nConnection: %s\r\n"
     b"Content-Length: %d\r\n\r\n" % (b"content-length", len(SMUGGLED)) + SMUGGLED),
    ("Content-Length, keep-alive", b"POST /echo HTTP/1.1\r\nHost: a\r\n"
     b"Connection: Content-Length, keep-alive\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)
     + SMUGGLED),
    ("close, content-length (two headers)", b"POST /echo HTTP/1.1\r\nHost: a\r\n"
     b"Connection: keep-alive\r\nConnection: content-length\r\nContent-Length: %d\r\n\r\n"
     % len(SMUGGLED) + SMUGGLED),
    ("transfer-encoding", b"POST /echo HTTP/1.1\r\nHost: a\r\nConnection: transfer-encoding\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)),
]  # fmt: skip


@pytest.mark.parametrize("case", _CONNECTION_ABUSE, ids=[c[0] for c in _CONNECTION_ABUSE])
def test_connection_tokens_never_remove_the_body_framing(h, case):
    """A body framed by Content-Length or chunked reaches the upstream as that body, never as
    a second request; the pooled connection then serves the next client its own response."""
    _, data = case
    gw, b = one(h)
    out = send(gw.port, data + request("/status/201", extra=CLOSE))
    first, second = responses(out)
    assert first.status == 200 and first.body == SMUGGLED  # /echo: the body, untouched
    assert second.status == 201
    victim = responses(send(gw.port, request("/status/202", extra=CLOSE)))
    assert [v.status for v in victim] == [202]  # not the answer to /smuggled
    assert [x["url"] for x in b.requests] == ["/echo", "/status/201", "/status/202"]
    assert b.requests[0]["body"] == SMUGGLED


def test_connection_host_keeps_the_route_and_the_host_upstream(h):
    gw, (one_b, two_b) = two_services(h)
    out = send(gw.port, request("/get", host="two", extra="Connection: host, close\r\n"))
    (r,) = responses(out)
    assert r.status == 200 and json.loads(r.body)["backend"] == "b-two"
    assert ("host", "two") in two_b.requests[-1]["headers"] and not one_b.requests


def test_connection_cookie_or_hash_header_keeps_the_affinity_key(h):
    """The cookie (or header) a route hashes on chose the pod: the pod receives it too."""
    gw, backends, maglev = sticky(h)
    sid = "user-7"
    extra = f"Cookie: sid={sid}\r\nConnection: cookie, close\r\n"
    (r,) = responses(send(gw.port, request("/get", extra=extra)))
    chosen = backends[maglev.choose(xxh64(sid))]
    assert json.loads(r.body)["backend"] == chosen.name
    assert ("cookie", f"sid={sid}") in chosen.requests[-1]["headers"]


def test_connection_naming_the_hash_header_keeps_it(h):
    gw, backends, maglev = sticky(h, key=HashKey(kind="header", name="x-user"))
    extra = "X-User: alice\r\nConnection: x-user, x-private, close\r\nX-Private: p\r\n"
    (r,) = responses(send(gw.port, request("/get", extra=extra)))
    chosen = backends[maglev.choose(xxh64("alice"))]
    assert json.loads(r.body)["backend"] == chosen.name
    seen = dict(chosen.requests[-1]["headers"])
    assert seen["x-user"] == "alice" and "x-private" not in seen  # other tokens still honoured


def test_connection_naming_forwarded_headers_keeps_the_gateways_own(h):
    """Apache CVE-2022-31813: a token naming X-Forwarded-For must not remove the proxy's own."""
    gw, b = one(h)
    extra = "X-Forwarded-For: 203.0.113.9\r\nConnection: x-forwarded-for, x-forwarded-proto\r\n"
    send(gw.port, request("/get", extra=extra + CLOSE))
    seen = dict(b.requests[-1]["headers"])
    assert seen["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"


# -- trailers ------------------------------------------------------------------------------


def _chunked(path: str, host: str, extra: str, trailers: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Transfer-Encoding: chunked\r\n\r\n"
        .encode() + b"5\r\nhello\r\n0\r\n" + trailers + b"\r\n"
    )  # fmt: skip


def test_trailers_never_change_a_queued_requests_route(h):
    """The chunked request waits behind a slow one, so it is routed after its trailers were
    parsed: Host and Cookie trailers must neither route it nor reach the upstream."""
    gw, (one_b, two_b) = two_services(h)
    data = (
        request("/slow?s=0.3", host="one")
        + _chunked("/echo", "one", "Cookie: a=1\r\n", b"Host: two\r\nCookie: sid=evil\r\n")
        + request("/get", host="one", extra=CLOSE)
    )
    slow, echo, last = responses(send(gw.port, data))
    assert (slow.status, echo.status, last.status) == (200, 200, 200)
    assert echo.body == b"hello"
    assert [r["url"] for r in one_b.requests] == ["/slow?s=0.3", "/echo", "/get"]
    assert not two_b.requests
    posted = one_b.requests[1]["headers"]
    assert ("host", "one") in posted and ("cookie", "a=1") in posted
    assert ("host", "two") not in posted and ("cookie", "sid=evil") not in posted


def test_trailers_never_change_the_affinity_pick(h):
    """A trailer repeating the hash header would make two values (hashed together, another
    pod); the pod is the one the head's single value picks, and it sees that value only."""
    gw, backends, maglev = sticky(h, key=HashKey(kind="header", name="x-user"))
    data = request("/slow?s=0.2", extra="X-User: alice\r\n") + _chunked(
        "/echo", "a", "X-User: bob\r\n", b"X-User: mallory\r\nHost: b\r\n"
    )
    slow, echo = responses(send(gw.port, data + request("/x", extra=CLOSE)))[:2]
    assert slow.status == 200 and echo.status == 200 and echo.body == b"hello"
    chosen = backends[maglev.choose(xxh64("bob"))]
    posted = [r for r in chosen.requests if r["url"] == "/echo"]
    assert len(posted) == 1 and dict(posted[0]["headers"])["x-user"] == "bob"
    assert [v for k, v in posted[0]["headers"] if k == "x-user"] == ["bob"]


def test_trailer_connection_close_ends_the_connection_after_that_request(h):
    """llhttp reads Connection in the trailers: the gateway closes after answering it."""
    gw, b = one(h)
    data = _chunked("/echo", "a", "", b"Connection: close\r\n") + request("/never")
    (r,) = responses(send(gw.port, data))
    assert r.status == 200 and r.header("connection") == ["close"]
    assert [x["url"] for x in b.requests] == ["/echo"]


# -- Host validation (RFC 9112 §3.2) -----------------------------------------------------------

_BAD_HOSTS = [
    ("missing", b"GET /get HTTP/1.1\r\n\r\n"),
    ("duplicate", b"GET /get HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
    ("duplicate, other case", b"GET /get HTTP/1.1\r\nhost: a\r\nHOST: b\r\n\r\n"),
    ("comma-listed", b"GET /get HTTP/1.1\r\nHost: a, b\r\n\r\n"),
    ("comma, no space", b"GET /get HTTP/1.1\r\nHost: a,b\r\n\r\n"),
    ("space inside", b"GET /get HTTP/1.1\r\nHost: a b\r\n\r\n"),
    ("userinfo", b"GET /get HTTP/1.1\r\nHost: user@a\r\n\r\n"),
    ("path", b"GET /get HTTP/1.1\r\nHost: a/b\r\n\r\n"),
    ("bad port", b"GET /get HTTP/1.1\r\nHost: a:80x\r\n\r\n"),
    ("long port", b"GET /get HTTP/1.1\r\nHost: a:123456\r\n\r\n"),
    ("two colons", b"GET /get HTTP/1.1\r\nHost: a:1:2\r\n\r\n"),
    ("unclosed IPv6", b"GET /get HTTP/1.1\r\nHost: [::1\r\n\r\n"),
    ("IPv6 junk", b"GET /get HTTP/1.1\r\nHost: [zz]\r\n\r\n"),
    ("non-ASCII", b"GET /get HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n"),
    ("absolute-form userinfo", b"GET http://user:pw@a/get HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("absolute-form userinfo only", b"GET http://@a/get HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("absolute-form empty authority", b"GET http:///get HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("absolute-form other scheme", b"GET ftp://a/get HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("relative target", b"GET get HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("asterisk without OPTIONS", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
]


@pytest.mark.parametrize("case", _BAD_HOSTS, ids=[c[0] for c in _BAD_HOSTS])
def test_bad_host_or_target_gets_400_alone_and_pipelined(h, case):
    _, data = case
    gw, b = one(h)
    (r,) = responses(send(gw.port, data))
    assert r.status == 400 and r.header("connection") == ["close"]
    first, second = responses(send(gw.port, request("/status/201") + data + request("/x")))
    assert (first.status, second.status) == (201, 400)
    assert [x["url"] for x in b.requests] == ["/status/201"]


_GOOD_HOSTS = [
    ("name:port", b"GET /get HTTP/1.1\r\nHost: svc.ns:8000\r\n\r\n", "svc.ns:8000"),
    ("IPv6 literal", b"GET /get HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "[::1]:8080"),
    ("trailing whitespace", b"GET /get HTTP/1.1\r\nHost: a \t\r\n\r\n", "a"),
    ("empty (RFC 9112 §3.2)", b"GET /get HTTP/1.1\r\nHost:\r\n\r\n", ""),
    ("HTTP/1.0 without Host", b"GET /get HTTP/1.0\r\n\r\n", "httpbin.default.svc.cluster.local"),
    ("absolute-form wins over Host", b"GET http://b:1/get?q HTTP/1.1\r\nHost: a\r\n\r\n", "b:1"),
]  # fmt: skip


@pytest.mark.parametrize("case", _GOOD_HOSTS, ids=[c[0] for c in _GOOD_HOSTS])
def test_valid_hosts_are_routed_and_forwarded_once(h, case):
    _, data, forwarded = case
    gw, b = one(h)
    data = data.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
    (r,) = responses(send(gw.port, data))
    assert r.status == 200
    hosts = [v for k, v in b.requests[-1]["headers"] if k == "host"]
    assert hosts == [forwarded]


# -- HTTP versions -------------------------------------------------------------------------

_VERSIONS = [
    ("HTTP/2.0", b"GET /get HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("HTTP/0.9 with headers", b"GET /get HTTP/0.9\r\nHost: a\r\n\r\n", 505),
    ("HTTP/1.2", b"GET /get HTTP/1.2\r\nHost: a\r\n\r\n", 400),
    ("HTTP/1.0 chunked", b"POST /echo HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n", 400),
    ("HTTP/1.0 keep-alive chunked", b"POST /echo HTTP/1.0\r\nHost: a\r\nConnection: keep-alive"
     b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    ("HTTP/1.0 Content-Length and chunked", b"POST /echo HTTP/1.0\r\nHost: a\r\n"
     b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello", 400),
]  # fmt: skip


@pytest.mark.parametrize("case", _VERSIONS, ids=[c[0] for c in _VERSIONS])
def test_unsupported_versions_and_http10_chunked_are_refused_and_close(h, case):
    _, data, status = case
    gw, b = one(h)
    (r,) = responses(send(gw.port, data + request("/never")))
    assert r.status == status and r.header("connection") == ["close"]
    assert not b.requests
