"""The head fast path: native == pure-Python twin, and every accepted head reads as llhttp does."""

from __future__ import annotations

import httptools
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tether.gateway import wire
from tether.gateway.http import valid_host
from tether.gateway.wire import reference

PEER = b"10.1.2.3"

# -- random heads: mostly well-formed pieces, with the malformations llhttp cares about ------


def _mostly(good: list, bad: list, odds: int = 20):
    """Pick from ``good`` ~``odds`` times as often as from ``bad`` (valid heads must be common)."""
    return st.tuples(st.integers(0, odds), st.sampled_from(good), st.sampled_from(bad)).map(
        lambda t: t[2] if t[0] == 1 else t[1]
    )


_names = _mostly(
    [b"Host", b"host", b"HOST", b"Cookie", b"cookie", b"X-Forwarded-For", b"x-forwarded-proto",
     b"Connection", b"Keep-Alive", b"TE", b"Trailer", b"Proxy-Authorization", b"Content-Length",
     b"Expect", b"X-User", b"Accept", b"Set-Cookie", b"Proxy-Connection", b"Proxy-Authenticate",
     b"User-Agent", b"X-Forwarded-Forx"],
    [b"Upgrade", b"Transfer-Encoding", b"X Bad", b"", b"X\x00", b"Tr\xe4iler", b"X\r"],
)  # fmt: skip
_values = st.one_of(
    _mostly(
        [b"close", b"keep-alive", b"Keep-Alive ", b" close", b"0", b"00", b"sid=1; b=2", b"a",
         b"", b"  padded  ", b"\t tab", b"1.2.3.4", b"https", b"caf\xc3\xa9", b"sid=\"q\"",
         b"text/html, */*;q=0.8"],
        [b"x, close", b"5", b"+5", b"chunked", b"h2c", b"x\r", b"x\ny", b"\x7f", b"12"],
    ),
    st.binary(max_size=12),
)  # fmt: skip
_separators = _mostly([b": ", b":", b":\t"], [b" : ", b"\r\n :"])
_valid_headers = st.sampled_from(
    [(b"Cookie", b"sid=1; b=2"), (b"cookie", b'sid="q" '), (b"X-Forwarded-For", b"1.2.3.4"),
     (b"X-Forwarded-Proto", b"https"), (b"x-forwarded-proto", b""), (b"Connection", b"close"),
     (b"connection", b"Keep-Alive "), (b"Keep-Alive", b"timeout=5"), (b"TE", b"trailers"),
     (b"Trailer", b"x"), (b"Proxy-Authorization", b"Basic eA=="), (b"Content-Length", b"0"),
     (b"Content-Length", b"7"), (b"content-length", b"00012"),
     (b"Accept", b"text/html, */*;q=0.8"), (b"User-Agent", b"caf\xc3\xa9\t"),
     (b"X-Empty", b""), (b"Set-Cookie", b"a=1; Path=/"), (b"Proxy-Connection", b"keep-alive"),
     (b"Proxy-Authenticate", b"Basic"), (b"Expect", b"100-continue"), (b"X-User", b"  alice")]
)  # fmt: skip
_header = st.one_of(
    st.tuples(_valid_headers, _separators).map(lambda t: (t[0][0], t[1], t[0][1])),
    st.tuples(_valid_headers, _separators).map(lambda t: (t[0][0], t[1], t[0][1])),
    st.tuples(_names, _separators, _values),
)
_eol = _mostly([b"\r\n"], [b"\n", b"\r", b"\r\r\n"], odds=40)
_request_line = st.tuples(
    _mostly(
        [b"GET", b"HEAD", b"POST", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"PUT"],
        [b"CONNECT", b"get", b"QUERY", b"GETX"],
    ),
    st.one_of(
        _mostly(
            [b"/", b"/a?b=c&d", b"/x#f", b"//", b"/status/418?x=1"],
            [b"*", b"http://h/p", b"/sp ace"],
        ),
        st.binary(max_size=10).map(lambda b: b"/" + b),
    ),
    _mostly([b"HTTP/1.1", b"HTTP/1.0"], [b"HTTP/1.2", b"HTTP/2.0", b"http/1.1", b""]),
)
_status_line = st.tuples(
    _mostly([b"HTTP/1.1", b"HTTP/1.0"], [b"HTTP/2", b"HTTP/1.1 "]),
    _mostly([b"200", b"204", b"304", b"404", b"999", b"500"], [b"101", b"100", b"2000", b"20x"]),
    _mostly([b" OK", b" ", b" I'm a teapot", b" \xe4"], [b"", b" a\x00b", b" a\rb"]),
)


@st.composite
def requests(draw):
    method, target, version = draw(_request_line)
    head = method + b" " + target + (b" " + version if version else b"") + draw(_eol)
    headers = draw(st.lists(_header, max_size=7))
    if draw(st.integers(0, 3)):
        headers.insert(draw(st.integers(0, len(headers))), (b"Host", b": ", b"svc"))
    for name, sep, value in headers:
        head += name + sep + value + draw(_eol)
    head += b"\r\n"
    prefix = draw(st.sampled_from([b"", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"junk"]))
    rest = draw(st.sampled_from([b"", b"GET / HTTP/1.1\r\n", b"\r\n"]))
    return prefix + head + rest, len(prefix)


@st.composite
def responses(draw):
    version, status, reason = draw(_status_line)
    head = version + b" " + status + reason + draw(_eol)
    headers = draw(st.lists(_header, max_size=6))
    if draw(st.booleans()):
        headers.append((b"Content-Length", b": ", b"%d" % draw(st.integers(0, 6))))
    for name, sep, value in headers:
        head += name + sep + value + draw(_eol)
    return head + b"\r\n" + draw(st.binary(max_size=8))


# -- llhttp's reading ---------------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.keep = []
        self.complete = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_headers_complete(self) -> None:
        self.keep.append(self.parser.should_keep_alive())

    def on_message_complete(self) -> None:
        self.complete += 1
        self.keep.append(self.parser.should_keep_alive())


def _llhttp(data: bytes, cls=httptools.HttpRequestParser) -> _Recorder:
    rec = _Recorder()
    rec.parser = cls(rec)
    rec.parser.feed_data(data)
    return rec


def _values(headers, name: bytes) -> list[bytes]:
    return [v for n, v in headers if n == name]


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(requests(), st.integers(0, 3), st.sampled_from([40, 4096]))
@example((b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", 0), 1, 4096)
def test_request_native_equals_reference_and_llhttp(case, trusted, limit):  # trusted: the mode
    buf, start = case
    native = wire.scan_request(buf, start, PEER, trusted, limit)
    assert native == reference.scan_request(buf, start, PEER, trusted, limit)
    if not isinstance(native, tuple):
        return
    end, head, method, path, host, cookies, xff, flags, clen = native
    assert all(wire.scan_request(buf[:cut], start, PEER, trusted, limit) is None
               for cut in range(start, end))  # fmt: skip  # a head not complete yet is left alone
    body = b"b" * clen
    rec = _llhttp(buf[start:end] + body)  # accepted: llhttp must agree on every fact we use
    assert rec.complete == 1 and rec.body == body
    assert rec.parser.get_method() == method and rec.url == path
    assert _values(rec.headers, b"host") == [host]
    assert tuple(_values(rec.headers, b"cookie")) == cookies
    xffs = _values(rec.headers, b"x-forwarded-for")
    assert xff == (b", ".join(xffs) if xffs else None)
    assert rec.keep == [bool(flags & wire.F_KEEP_ALIVE)] * 2
    assert bool(flags & wire.F_HTTP10) == (rec.parser.get_http_version() == "1.0")
    assert end - start <= limit
    # What goes upstream: one HTTP/1.1 body-less message, hop-by-hop and client X-Forwarded-*
    # lines gone, XFF appended with the peer, XFP set, everything else kept in order.
    up = _llhttp(head + body)
    assert up.complete == 1 and up.parser.get_http_version() == "1.1" and up.body == body
    assert up.parser.get_method() == method and up.url == path
    gone = {b"connection", b"keep-alive", b"te", b"trailer", b"proxy-authorization",
            b"proxy-authenticate", b"x-forwarded-for", b"x-forwarded-proto"}  # fmt: skip
    kept = [(n, v) for n, v in rec.headers if n not in gone]
    proto = _values(rec.headers, b"x-forwarded-proto")
    https = b"https" if trusted & 2 else b"http"  # mode 2: the TLS listener
    want_proto = proto[-1] if trusted & 1 and proto and proto[-1] else https
    fwd = PEER if xff is None else xff + b", " + PEER
    assert up.headers == [*kept, (b"x-forwarded-for", fwd), (b"x-forwarded-proto", want_proto)]
    assert wire.header_values(buf, start, end, b"cookie") == list(cookies)
    assert reference.header_values(buf, start, end, b"accept") == wire.header_values(
        buf, start, end, b"accept"
    )


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(responses(), st.sampled_from([b"", b"set-cookie: s=1\r\n"]), st.booleans())
def test_response_native_equals_reference_and_llhttp(buf, extra, head_request):
    native = wire.scan_response(buf, extra, head_request)
    assert native == reference.scan_response(buf, extra, head_request)
    if not isinstance(native, tuple):
        return
    out, status, body, left, keep = native
    assert all(wire.scan_response(buf[:cut], extra, head_request) is None
               for cut in range(buf.index(b"\r\n\r\n") + 4))  # fmt: skip
    hend = buf.index(b"\r\n\r\n") + 4
    rec = _Recorder()
    rec.parser = httptools.HttpResponseParser(rec)
    rec.parser.feed_data(buf[:hend])
    assert rec.parser.get_status_code() == status and body == len(buf) - hend
    assert rec.keep[0] == keep or head_request  # llhttp expects a HEAD body unless told
    if not head_request:  # llhttp: the message ends exactly after the body we expect
        rest = buf[hend:] + b"x" * left
        if rest:
            rec.parser.feed_data(rest)
        assert rec.complete == 1 and rec.keep[-1] == keep and rec.body == rest
    gone = {b"connection", b"keep-alive", b"proxy-authenticate", b"trailer"}
    relayed = _llhttp(out + b"x" * left, httptools.HttpResponseParser) if not head_request else None
    if relayed is not None:
        want = [(n, v) for n, v in rec.headers if n not in gone]
        if extra:
            want.append((b"set-cookie", b"s=1"))
        assert relayed.headers == want and relayed.complete == 1


def test_the_native_module_is_built():
    assert wire.NATIVE  # setup.py builds it on `pip install -e .`; the twin is only a fallback


def test_common_heads_take_the_fast_path():
    wrk = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8083\r\nCookie: sid=42\r\n\r\n"
    r = wire.scan_request(wrk, 0, PEER, False, 65536)
    assert r == (
        len(wrk),
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8083\r\nCookie: sid=42\r\n"
        b"x-forwarded-for: 10.1.2.3\r\nx-forwarded-proto: http\r\n\r\n",
        b"GET", b"/", b"127.0.0.1:8083", (b"sid=42",), None, wire.F_KEEP_ALIVE, 0,
    )  # fmt: skip
    browser = (
        b"GET /status/333?x=1 HTTP/1.1\r\nHost: httpbin\r\nUser-Agent: Mozilla/5.0\r\n"
        b'Accept: */*\r\nConnection: keep-alive\r\nCookie: a=1\r\nCookie: sticky="v"\r\n'
        b"X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\nX-Forwarded-Proto: https\r\n\r\n"
    )
    _, head, _, path, host, cookies, xff, _, _ = wire.scan_request(browser, 0, PEER, True, 8192)
    assert (path, host, cookies, xff) == (
        b"/status/333?x=1",
        b"httpbin",
        (b"a=1", b'sticky="v"'),
        b"1.1.1.1, 2.2.2.2",
    )
    assert b"Connection" not in head and head.endswith(
        b"x-forwarded-for: 1.1.1.1, 2.2.2.2, 10.1.2.3\r\nx-forwarded-proto: https\r\n\r\n"
    )
    nginx = (
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 3\r\nConnection: keep-alive\r\nX-Backend: b1\r\n\r\nb1\n"
    )
    out, status, body, left, keep = wire.scan_response(nginx, b"", False)
    assert (status, body, left, keep) == (200, 3, 0, True)
    assert out == nginx.replace(b"Connection: keep-alive\r\n", b"")
    out, _, body, left, _ = wire.scan_response(nginx[:-2], b"connection: close\r\n", False)
    assert (body, left) == (1, 2) and out.endswith(b"X-Backend: b1\r\nconnection: close\r\n\r\nb")


def test_content_length_bodies_are_framed_not_parsed():
    post = b"POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    r = wire.scan_request(post, 0, PEER, False, 65536)
    assert r[0] == post.index(b"hello") and r[8] == 5  # the body follows the head
    assert r[1].endswith(b"x-forwarded-proto: http\r\n\r\n") and b"Content-Length: 5" in r[1]
    assert wire.scan_request(post[: r[0]], 0, PEER, False, 65536)[8] == 5  # head alone is enough


def test_what_is_left_to_llhttp():
    def req(text: bytes):
        return wire.scan_request(text, 0, PEER, False, 65536)

    assert req(b"GET / HTTP/1.1\r\nHost: a\r\n") is None  # not complete yet
    for slow in (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: ws\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Foo\r\nX-Foo: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host: llhttp's path answers 400
        b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n",  # Host outside name[:port]: 400 there
        b"GET / HTTP/1.1\r\nHost: a \r\n\r\n",  # trailing whitespace: stripped there
        b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",  # IPv6 literal: checked there
        b"GARBAGE / NOT-HTTP\r\n\r\n",
        b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
    ):
        assert req(slow) is None, slow
    assert wire.scan_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, PEER, False, 20) is None
    for slow in (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab",  # bytes after the response
        b"HTTP/1.1 200 OK\r\nX: " + b"x" * wire.MAX_RESPONSE_HEAD + b"\r\n\r\n",  # 502 there
    ):
        assert wire.scan_response(slow, b"", False) is None, slow
        assert wire.reference.scan_response(slow, b"", False) is None, slow


@given(st.binary(max_size=12) | st.sampled_from([b"a:80", b"a:", b"a.b-c_d~e%41", b"[::1]"]))
@settings(max_examples=300)
def test_a_host_the_fast_path_accepts_is_a_valid_host(value):
    """The fast path never routes a Host the slow path would refuse (RFC 9112 §3.2)."""
    head = b"GET / HTTP/1.1\r\nHost: " + value + b"\r\n\r\n"
    r = wire.scan_request(head, 0, PEER, False, 65536)
    assert r == reference.scan_request(head, 0, PEER, False, 65536)
    if r is not None:
        assert valid_host(r[4])
