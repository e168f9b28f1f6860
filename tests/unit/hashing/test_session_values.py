"""Envoy's cookie and header session states, held to the vectors of Envoy's own tests
(test/extensions/http/stateful_session/{cookie,header}) and to its path rules."""

from __future__ import annotations

import base64

import pytest

from tether.hashing.keys import cookie_value, format_set_cookie
from tether.hashing.session import (
    CookieFields,
    encode_cookie,
    encode_envoy_cookie,
    encode_header,
    encode_legacy_cookie,
    envoy_cookie_address,
    path_matches,
    read_cookie,
    read_header,
)

NOW = 1_750_000_000  # wall-clock seconds


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_cookie_written_for_a_new_host_ttl_zero():
    # SessionStateTest: no expires for ttl 0; Set-Cookie with empty path, no Max-Age.
    value = encode_envoy_cookie("1.2.3.4:80")
    assert value == b64(b"\x0a\x0a1.2.3.4:80")
    assert format_set_cookie("override_host", value, "", 0) == (
        f'override_host="{value}"; HttpOnly'
    )


def test_cookie_rewritten_with_ttl_path_and_expiry():
    # SessionStateTest: ttl 5 s, path /path, expires = now + ttl.
    value = encode_envoy_cookie("2.3.4.5:80", NOW + 5)
    assert read_cookie(value) == CookieFields("2.3.4.5:80", NOW + 5)
    assert format_set_cookie("override_host", value, "/path", 5) == (
        f'override_host="{value}"; Max-Age=5; Path=/path; HttpOnly'
    )


def test_expiry_is_strictly_after():
    # SessionStateProtoCookie: expires 1005 at 1006 is gone; Envoy compares now > expires.
    value = encode_envoy_cookie("2.3.4.5:80", NOW + 5)
    assert envoy_cookie_address(value, NOW + 5) == "2.3.4.5:80"
    assert envoy_cookie_address(value, NOW + 6) is None
    assert envoy_cookie_address(encode_envoy_cookie("2.3.4.5:80"), NOW + 10**6) == "2.3.4.5:80"


def test_an_envoy_monotonic_expiry_cannot_be_judged_and_is_kept():
    # Envoy's own test writes expires=1005 from a monotonic clock; on the wall clock that would
    # be 1970. tether keeps such a session (compat) instead of dropping every migrated cookie.
    assert envoy_cookie_address(encode_envoy_cookie("2.3.4.5:80", 1005), NOW) == "2.3.4.5:80"


def test_legacy_and_garbage_values():
    assert read_cookie(encode_legacy_cookie("1.2.3.4:80")) == CookieFields("1.2.3.4:80")
    assert read_cookie(b64(b"blahblah")) == CookieFields("blahblah")  # Envoy's vector
    # A legacy value that happens to be a valid protobuf has no address: Envoy ignores it.
    assert read_cookie(encode_legacy_cookie("10.0.0.1:8080")) is None
    assert read_cookie("") is None and read_cookie(None) is None
    assert read_cookie("not base64!") is None  # decodes to "" -> a proto without address
    assert read_cookie(b64(encode_cookie(CookieFields(expires=NOW)))) is None  # no address


def test_cookie_value_from_the_request_uses_envoys_cookie_parser():
    value = encode_envoy_cookie("1.2.3.4:80")
    header = f'a=1; override_host="{value}"; b=2'.encode()
    assert envoy_cookie_address(cookie_value([header], "override_host"), NOW) == "1.2.3.4:80"
    assert cookie_value([b"override_host="], "override_host") == b""  # empty counts as absent
    assert envoy_cookie_address(b"", NOW) is None


def test_header_state():
    # header_test.cc: the value is base64 of "ip:port", no proto.
    assert encode_header("1.2.3.4:80") == "MS4yLjMuNDo4MA=="
    assert read_header(["MS4yLjMuNDo4MA=="]) == "1.2.3.4:80"
    assert read_header(["MS4yLjMuNDo4MA==", "Mi4zLjQuNTo4MA=="]) == "1.2.3.4:80"  # first only
    assert read_header([]) is None and read_header(["%%%="]) is None and read_header([""]) is None


CASES = {
    "": ["/", "/foo", "/bar", "/foo/", "/foo/bar", "/foo#bar", "/foo?bar", "/foobar"],
    "/": ["/", "/foo", "/bar", "/foo/", "/foo/bar", "/foo#bar", "/foo?bar", "/foobar"],
    "/foo/": ["/foo/", "/foo/bar"],
    "/foo": ["/foo", "/foo/", "/foo/bar", "/foo#bar", "/foo?bar"],
}
PATHS = ["/", "/foo", "/bar", "/foo/", "/foo/bar", "/foo#bar", "/foo?bar", "/foobar"]


@pytest.mark.parametrize("cookie_path", list(CASES))
def test_path_rules_are_envoys(cookie_path):
    # SessionStatePathMatchTest, every combination it lists (plus "/foo/" for every path).
    matched = [p for p in PATHS if path_matches(cookie_path, p)]
    assert matched == [p for p in PATHS if p in CASES[cookie_path]]
    assert [path_matches(cookie_path, p.encode()) for p in PATHS] == [
        path_matches(cookie_path, p) for p in PATHS
    ]
