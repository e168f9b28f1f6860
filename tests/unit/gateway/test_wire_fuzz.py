"""Adversarial bytes at every native entry point: no crash, and the same answer as the twins.

``test_wire.py`` draws mostly well-formed heads to hold the fast path to llhttp; this file
draws hostile ones (truncated heads, many header lines, missing colons, obs-fold, NUL, bare
CR/LF, long lines, odd Content-Length and Transfer-Encoding, odd cookies) and calls
``_wire.scan_request`` / ``scan_response`` / ``header_values`` / ``access_line`` and
``_cookie.find`` with them, comparing with ``wire/reference.py``, ``accesslog.format_line``
and ``keys/parse.scan_cookie_bytes``. Built with AddressSanitizer, it is a memory-safety
fuzzer: ``TETHER_FUZZ_EXAMPLES`` raises the example count (default 300 per property).
"""

from __future__ import annotations

import contextlib
import math
import os

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tether.gateway.accesslog import format_line, fragment
from tether.gateway.wire import _wire, reference
from tether.hashing.keys import _cookie
from tether.hashing.keys.parse import scan_cookie_bytes

_FUZZ = settings(
    max_examples=int(os.environ.get("TETHER_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- pieces of hostile heads ------------------------------------------------------------------

_methods = st.sampled_from(
    [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT",
     b"get", b"G", b"", b"GETGET", b"GET\x00"]
)  # fmt: skip
_targets = st.one_of(
    st.sampled_from([b"/", b"/a?b=c", b"*", b"http://h/", b"/\x00", b"/\x7f", b"/\xff", b""]),
    st.binary(max_size=12).map(lambda b: b"/" + b),
    st.integers(0, 9000).map(lambda n: b"/" + b"a" * n),
)
_versions = st.sampled_from(
    [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/1.", b"HTTP/1", b"http/1.1", b"HTTP/2.0", b""]
)
_eols = st.sampled_from([b"\r\n"] * 8 + [b"\n", b"\r", b"\r\r\n", b"\n\r", b"", b"\r\n "])
_names = st.one_of(
    st.sampled_from(
        [b"Host", b"host", b"Cookie", b"cookie", b"X-Forwarded-For", b"X-Forwarded-Proto",
         b"Connection", b"Keep-Alive", b"TE", b"Trailer", b"Proxy-Authorization",
         b"Proxy-Authenticate", b"Proxy-Connection", b"Upgrade", b"Content-Length",
         b"content-length", b"CONTENT-LENGTH", b"Transfer-Encoding", b"transfer-encoding",
         b"X-User", b"Accept", b"", b"X Bad", b"X\x00", b"X\r", b"\xe4", b" Host", b"Host "]
    ),
    st.binary(max_size=8),
)  # fmt: skip
_clens = st.one_of(
    st.sampled_from(
        [b"0", b"00", b"5", b"-1", b"+5", b" 5", b"5 ", b"5\t", b"0x10", b"1e3", b"5, 5", b"5,6",
         b"", b"99999999999999999", b"999999999999999999", b"1000000000000000000",
         b"9223372036854775807", b"9223372036854775808", b"18446744073709551616",
         b"99999999999999999999999999999999", b"\xd9\xa5", b"5\x00"]
    ),
    st.integers(0, 10**25).map(lambda n: b"%d" % n),
)  # fmt: skip
_te = st.sampled_from(
    [b"chunked", b"Chunked", b" chunked", b"chunked ", b"gzip, chunked", b"chunked, gzip",
     b"identity", b"", b"chunked\x00", b"xchunked"]
)  # fmt: skip
_cookie_values = st.one_of(
    st.sampled_from(
        [b"", b";", b";;", b" ; ; ", b"sid=", b"sid=;", b'sid=""', b'sid="', b'sid="a"', b'sid="a',
         b'sid=a"', b"sid=1; sid=2", b" sid=1", b"xsid=1; sid=2", b"a=1;sid=2", b"a=1 ;  sid=3",
         b'sid=" x "; y', b"=", b"sid", b"sid==1", b"sid=a;b", b"sid=\x00"]
    ),
    st.lists(st.sampled_from([b"sid", b"=", b";", b" ", b'"', b"a", b"s", b"\t"]), max_size=12).map(
        b"".join
    ),
)  # fmt: skip
_values = st.one_of(
    st.sampled_from(
        [b"", b"a", b"close", b"keep-alive", b"Keep-Alive ", b"close, keep-alive", b"upgrade",
         b"svc", b"1.2.3.4", b"https", b"x\x00y", b"x\ry", b"x\ny", b"\x7f", b"caf\xc3\xa9",
         b"  padded  ", b"\t"]
    ),
    st.binary(max_size=16),
    st.integers(0, 70000).map(lambda n: b"v" * n),
)  # fmt: skip
_seps = st.sampled_from([b": ", b":", b":\t", b" :", b"", b": \r\n ", b":\r\n\t"])


@st.composite
def _header_line(draw) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return b"Content-Length" + draw(_seps) + draw(_clens)
    if kind == 1:
        return b"Transfer-Encoding: " + draw(_te)
    if kind == 2:
        return draw(st.sampled_from([b"Cookie", b"cookie"])) + b": " + draw(_cookie_values)
    if kind == 3:
        return b"X-Obs: a\r\n folded"  # obs-fold
    if kind == 4:
        return draw(st.sampled_from([b"no colon here", b"", b":novalue", b" : x", b"\x00"]))
    return draw(_names) + draw(_seps) + draw(_values)


@st.composite
def hostile_requests(draw) -> bytes:
    line = draw(_methods) + b" " + draw(_targets) + b" " + draw(_versions) + draw(_eols)
    lines = draw(st.lists(_header_line(), max_size=10))
    if draw(st.integers(0, 3)):
        lines.insert(draw(st.integers(0, len(lines))), b"Host: svc")
    if draw(st.integers(0, 5)) == 0:  # many lines: past the native span arrays (64)
        name = draw(st.sampled_from([b"Cookie", b"X-Forwarded-For", b"Keep-Alive", b"X-A", b"TE"]))
        lines += [name + b": v"] * draw(st.integers(1, 200))
    head = line + b"".join(h + draw(_eols) for h in lines) + b"\r\n"
    head += draw(
        st.sampled_from([b"", b"hello", b"0\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"])
    )
    if draw(st.integers(0, 3)) == 0:  # truncated anywhere
        head = head[: draw(st.integers(0, len(head)))]
    return head


@st.composite
def hostile_responses(draw) -> bytes:
    line = draw(
        st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2", b"HTTP/1.1 ", b""])
    )
    code = draw(st.sampled_from([b"200", b"204", b"304", b"101", b"199", b"999", b"20x", b"2000"]))
    reason = draw(st.sampled_from([b" OK", b" ", b"", b" a\x00b", b" a\rb", b" \xe4", b" x\ny"]))
    lines = draw(st.lists(_header_line(), max_size=8))
    if draw(st.integers(0, 5)) == 0:
        name = draw(st.sampled_from([b"Connection: close", b"Keep-Alive: x", b"Trailer: x"]))
        lines += [name] * draw(st.integers(1, 200))
    head = line + b" " + code + reason + draw(_eols)
    head += b"".join(h + draw(_eols) for h in lines) + b"\r\n" + draw(st.binary(max_size=12))
    if draw(st.integers(0, 3)) == 0:
        head = head[: draw(st.integers(0, len(head)))]
    return head


_any_bytes = st.one_of(st.binary(max_size=300), hostile_requests())
_starts = st.one_of(st.integers(0, 40), st.sampled_from([-1, -(2**62), 2**62]))
_limits = st.one_of(
    st.sampled_from([0, 1, 16, 40, 64, 4096, 65536, 2**62, -1, -(2**62)]), st.integers(-5, 70000)
)
_peers = st.sampled_from([b"10.1.2.3", b"", b"::1", b"x" * 300])

# -- properties ---------------------------------------------------------------------------


@_FUZZ
@given(_any_bytes, _starts, _peers, st.integers(0, 3), _limits)
@example(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
         0, b"p", False, 4096)  # fmt: skip
@example(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
         0, b"p", False, 4096)  # fmt: skip
@example(b"GET / HTTP/1.1\r\nHost: a\r\n" + b"Keep-Alive: 1\r\n" * 65 + b"\r\n", 0, b"p", False,
         65536)  # fmt: skip
@example(b"GET / HTTP/1.1\r\nHost: a\r\n" + b"Cookie: a=1\r\n" * 65 + b"\r\n", 0, b"p", False,
         65536)  # fmt: skip
def test_scan_request_equals_reference(buf, start, peer, trusted, limit):
    native = _wire.scan_request(buf, start, peer, trusted, limit)
    if 0 <= start <= len(buf):  # the twin reads a negative start as Python indexing does
        assert native == reference.scan_request(buf, start, peer, trusted, limit)
    if native is None:
        return
    end, cookies, clen = native[0], native[5], native[8]
    assert start < end <= len(buf) and end - start <= limit and 0 <= clen < 10**18
    lowered = buf[start:end].lower()
    assert b"transfer-encoding" not in lowered and lowered.count(b"\ncontent-length:") <= 1
    assert _wire.header_values(buf, start, end, b"cookie") == list(cookies)
    for name in (b"host", b"x-user", b"content-length", b"x-a", b""):
        assert _wire.header_values(buf, start, end, name) == reference.header_values(
            buf, start, end, name
        )


@_FUZZ
@given(_any_bytes, st.integers(-3, 320), st.integers(-3, 320), _names)
def test_header_values_any_range(buf, start, end, lname):
    """Any (start, end) is either rejected or scanned inside buf (under ASan: no over-read)."""
    try:
        out = _wire.header_values(buf, start, end, lname)
    except ValueError:
        assert start < 0 or end > len(buf) or end - start < 4
        return
    assert all(isinstance(v, bytes) and v in buf for v in out)


@_FUZZ
@given(st.one_of(st.binary(max_size=300), hostile_responses()), st.binary(max_size=40),
       st.booleans())  # fmt: skip
@example(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", b"", False)
@example(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", b"", False)
@example(b"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n", b"", False)
@example(b"HTTP/1.1 200 OK\r\n" + b"Keep-Alive: 1\r\n" * 65 + b"Content-Length: 0\r\n\r\n", b"",
         False)  # fmt: skip
def test_scan_response_equals_reference(buf, extra, head_request):
    native = _wire.scan_response(buf, extra, head_request)
    assert native == reference.scan_response(buf, extra, head_request)
    if native is not None:
        _, status, body, left, _ = native
        assert 200 <= status <= 999 and 0 <= body <= len(buf) and 0 <= left < 10**18


_texts = st.one_of(st.sampled_from(["", "127.0.0.1", 'q"\\', "\x00\x1f\x7f"]), st.text(max_size=8))
_ints = st.one_of(st.integers(-5, 1000), st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63)]))


@_FUZZ
@given(
    st.tuples(
        st.sampled_from(["2026-11-29T10:00:00.123Z", "", "\xe9"]),
        st.one_of(st.sampled_from([b"GET", b"", b"\x00\xff"]), st.binary(max_size=10)),
        st.one_of(st.binary(max_size=60), st.integers(3000, 5000).map(lambda n: b"\x01" * n)),
        _ints,
        st.sampled_from([fragment("10.0.0.1:80", "p", "ns/a:1", "cookie"), "", "\xe9", "x" * 5000]),
        st.one_of(st.none(), _ints),
        st.booleans(),
        st.one_of(st.floats(allow_nan=True), st.sampled_from([0.0, 1e12, 1e12 + 1, 1e300])),
        _ints,
        _texts,
        _ints,
        _texts,
    )
)
def test_access_line_equals_format_line(fields):
    native = _wire.access_line(*fields)
    if native is None:
        return
    assert native.isascii() and native == format_line(*fields)


@_FUZZ
@given(
    st.lists(_cookie_values, max_size=4), st.sampled_from([b"sid=", b"a=", b"=", b'"', b" ", b";"])
)
@example([b'sid="'], b"sid=")
@example([b"  sid=1"], b"sid=")
@example([b';sid=""'], b"sid=")
def test_cookie_find_equals_twin(values, needle):
    assert _cookie.find(values, needle) == scan_cookie_bytes(values, needle)
    assert _cookie.find(tuple(values), needle) == scan_cookie_bytes(values, needle)


# -- wrong types: an exception, never a crash ---------------------------------------------------


class _Bad:
    def __bool__(self):
        raise RuntimeError("bool")

    def __index__(self):
        raise RuntimeError("index")


_REJECTED = (TypeError, ValueError, OverflowError, RuntimeError)  # never SystemError
_junk = [None, 1, -1, 2**70, "s", b"b", bytearray(b"b"), memoryview(b"b"), 1.5, _Bad(), (), []]


@pytest.mark.parametrize("arg", range(5))
@pytest.mark.parametrize("junk", _junk, ids=repr)
def test_scan_request_rejects_junk_arguments(arg, junk):
    args = [b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, b"p", False, 4096]
    args[arg] = junk
    with contextlib.suppress(*_REJECTED):
        _wire.scan_request(*args)


@pytest.mark.parametrize("junk", _junk, ids=repr)
def test_other_entry_points_reject_junk_arguments(junk):
    calls = [
        lambda: _wire.scan_response(junk, b"", False),
        lambda: _wire.scan_response(b"HTTP/1.1 200 OK\r\n\r\n", junk, False),
        lambda: _wire.scan_response(b"HTTP/1.1 204 OK\r\n\r\n", b"", junk),
        lambda: _wire.header_values(junk, 0, 4, b"a"),
        lambda: _wire.header_values(b"GET / HTTP/1.1\r\n\r\n", junk, 4, b"a"),
        lambda: _wire.header_values(b"GET / HTTP/1.1\r\n\r\n", 0, junk, b"a"),
        lambda: _wire.header_values(b"GET / HTTP/1.1\r\n\r\n", 0, 4, junk),
        lambda: _cookie.find(junk, b"a="),
        lambda: _cookie.find([junk], b"a="),
        lambda: _cookie.find([b"a=1"], junk),
        lambda: _wire.access_line(*[junk] * 12),
        lambda: _wire.lane_bind(junk, junk, junk, junk, junk, junk),
        lambda: _wire.lane_bind({}, junk, junk, junk, junk, junk),
    ]
    for call in calls:
        with contextlib.suppress(*_REJECTED):
            call()


def test_access_line_rejects_what_it_cannot_format():
    fields = ["s", b"GET", b"/", 200, "", None, False, 0.0, 0, "c", 1, ""]
    for i, bad in [(7, math.nan), (7, -1.0), (7, math.inf), (5, -1), (5, 2**64), (3, 2**64)]:
        args = list(fields)
        args[i] = bad
        assert _wire.access_line(*args) is None


def test_a_failed_conversion_is_reported_before_the_next_runs():
    """Each argument conversion may run Python code (``__index__``, ``__bool__``, ``__float__``);
    none may run while an earlier one's exception is pending (that surfaced as SystemError)."""
    head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    calls = [
        lambda: _wire.scan_request(head, _Bad(), b"p", _Bad(), 4096),
        lambda: _wire.scan_request(head, 0, b"p", _Bad(), _Bad()),
        lambda: _wire.header_values(head, _Bad(), _Bad(), b"host"),
        lambda: _wire.access_line("s", b"GET", b"/", 200, "", None, _Bad(), _Bad(), 0, "c", 1, ""),
    ]
    for call in calls:
        with pytest.raises((TypeError, RuntimeError)):  # not SystemError
            call()
