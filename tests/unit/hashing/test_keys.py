"""Request hash keys and their combination: Envoy's hash_policy_test.cc and utility semantics."""

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.hashing import (
    CookieKey,
    HeaderKey,
    QueryKey,
    SourceIpKey,
    compute_hash,
    cookie_value,
    query_value,
)
from tether.hashing.keys.parse import NATIVE_COOKIE, scan_cookie, scan_cookie_bytes


def xx(s):
    return xxhash.xxh64_intdigest(s.encode() if isinstance(s, str) else s)


class Request:
    """A RequestView over a list of (name, value) headers."""

    def __init__(self, headers=(), path=b"/", remote_ip=""):
        self.headers = [(n.lower().encode(), v.encode()) for n, v in headers]
        self.path = path
        self.remote_ip = remote_ip

    def header_values(self, lname):
        return [v for n, v in self.headers if n == lname]


def test_header_single_value():
    req = Request([("x-test-header", "test-value")])
    assert HeaderKey("x-test-header").evaluate(req) == xx("test-value")
    assert HeaderKey("X-Test-Header").evaluate(req) == xx("test-value")  # names are lowercased
    assert HeaderKey("x-other").evaluate(req) is None
    assert HeaderKey("x-empty").evaluate(Request([("x-empty", "")])) == xx("")


def test_header_multiple_values_sorted_and_chained():
    a = Request([("x-multi", "value2"), ("x-multi", "value1")])
    b = Request([("x-multi", "value1"), ("x-multi", "value2")])
    assert HeaderKey("x-multi").evaluate(a) == 9193721384592083371
    assert HeaderKey("x-multi").evaluate(b) == 9193721384592083371
    comma = Request([("x-multi", "value1,value2")])  # one entry: commas are not split
    assert HeaderKey("x-multi").evaluate(comma) == xx("value1,value2")


@pytest.mark.parametrize(
    ("headers", "value"),
    [
        (["test-cookie=cookie-value"], "cookie-value"),
        (['a=1; test-cookie="quoted"; b=2'], "quoted"),
        (["a=1", "test-cookie=second-header"], "second-header"),
        (["test-cookie=first; test-cookie=second"], "first"),
        (["   test-cookie=spaces"], "spaces"),
        (["test-cookie=a=b"], "a=b"),  # the value runs to the end of the piece
        (['test-cookie="'], '"'),  # a single quote is not a quoted value
        (["test-cookie="], ""),  # present but empty
        (["test-cookie=; test-cookie=later"], ""),  # the first match wins even if empty
        (["\ttest-cookie=tab"], None),  # only spaces are skipped before the name
        (["test-cookie =x"], None),  # the name runs to the first '=' exactly
        (["Test-Cookie=x"], None),  # case-sensitive
        (["test-cookie; other=1"], None),  # a piece without '=' is skipped
        ([], None),
    ],
)
def test_cookie_value_parsing(headers, value):
    assert cookie_value(headers, "test-cookie") == value
    encoded = cookie_value([h.encode() for h in headers], "test-cookie")
    assert encoded == (None if value is None else value.encode())


def test_cookie_names_that_can_never_match():
    assert cookie_value([" a=1"], " a") is None
    assert cookie_value(["a;b=1"], "a;b") is None
    assert cookie_value(["=1"], "") == "1"  # an empty name matches an empty key


def test_cookie_key_hashes_value_and_generates_only_with_ttl():
    with_cookie = Request([("cookie", "test-cookie=cookie-value")])
    without = Request([("cookie", "other=1")])
    calls = []

    def add_cookie(key):
        calls.append(key)
        return "new-cookie-value"

    plain = CookieKey("test-cookie")
    assert plain.evaluate(with_cookie, add_cookie) == xx("cookie-value")
    assert plain.evaluate(without, add_cookie) is None  # ttl unset: never generate
    assert calls == []
    generating = CookieKey("test-cookie", path="/", ttl_seconds=0)
    assert generating.evaluate(without, add_cookie) == xx("new-cookie-value")
    assert calls == [generating]
    empty = Request([("cookie", "test-cookie=")])
    assert generating.evaluate(empty, add_cookie) == xx("new-cookie-value")  # empty = absent
    assert generating.evaluate(without, None) is None
    assert generating.evaluate(without, lambda key: None) is None


def test_source_ip():
    assert SourceIpKey().evaluate(Request(remote_ip="192.168.1.1")) == 4727775843391247014
    assert SourceIpKey().evaluate(Request(remote_ip="2001:db8::1")) == 2793145402038030385
    assert SourceIpKey().evaluate(Request(remote_ip="")) is None


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("/test?test-param=param-value", "param-value"),
        ("/test?a=1&test-param=first&test-param=second", "first"),
        ("/test?test-param=a%20b", "a%20b"),  # not decoded
        ("/test?test-param", ""),  # no '=' → empty value, still present
        ("/test?test-param=x#frag", "x#frag"),  # fragments are not special
        ("/test?x=1?test-param=2", None),  # only the first '?' starts the query
        ("/test?a=1&&test-param=v&", "v"),
        ("/test-param=v", None),
        ("/test?", None),
    ],
)
def test_query_value(path, value):
    assert query_value(path, "test-param") == value
    assert query_value(path.encode(), "test-param") == (None if value is None else value.encode())
    hashed = QueryKey("test-param").evaluate(Request(path=path.encode()))
    assert hashed == (None if value is None else xx(value))


def test_query_empty_name_matches_empty_piece_but_not_a_trailing_ampersand():
    assert query_value("/p?a=1&&b=2", "") == ""
    assert query_value("/p?a=1&", "") is None


def test_policies_combine_with_rotate_xor():
    req = Request([("x-user", "user-a")], remote_ip="192.168.1.1")
    assert xx("user-a") == 15635514398923352527
    assert compute_hash([HeaderKey("x-user"), SourceIpKey()], req) == 17322370383825584441
    # duplicate policies do not cancel out: rotl(x) ^ x != 0
    assert compute_hash([SourceIpKey(), SourceIpKey()], req) not in (None, 0)
    assert compute_hash([HeaderKey("absent"), SourceIpKey()], req) == 4727775843391247014
    assert compute_hash([HeaderKey("absent")], req) is None
    assert compute_hash([], req) is None


def test_terminal_stops_only_once_a_hash_exists():
    req = Request([("x-user", "user-a")], remote_ip="192.168.1.1")
    keys = [HeaderKey("x-user"), SourceIpKey()]
    assert compute_hash(keys, req, terminal=[True, False]) == xx("user-a")
    keys = [HeaderKey("absent"), SourceIpKey()]
    assert compute_hash(keys, req, terminal=[True, False]) == 4727775843391247014
    # a terminal policy that produced nothing still stops after an earlier hash
    keys = [HeaderKey("x-user"), HeaderKey("absent"), SourceIpKey()]
    assert compute_hash(keys, req, terminal=[False, True, False]) == xx("user-a")


def _envoy_parse_cookie(header_values, key):
    """Envoy's forEachCookie + parseCookie written out step by step (the oracle)."""
    for header in header_values:
        for piece in header.split(";"):
            if not piece:
                continue  # splitToken drops empty tokens
            equals = piece.find("=")
            if equals == -1:
                continue
            first_non_space = len(piece) - len(piece.lstrip(" "))
            k, v = piece[first_non_space:equals], piece[equals + 1 :]
            if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                v = v[1:-1]
            if k == key:
                return v
    return ""


COOKIE_TEXT = st.text(alphabet='ab =;"\t', max_size=24)


@settings(max_examples=500)
@given(st.lists(COOKIE_TEXT, max_size=3), st.text(alphabet='ab =;"', max_size=3))
def test_cookie_parsing_equals_envoys_algorithm(headers, name):
    found = cookie_value(headers, name)
    assert (found or "") == _envoy_parse_cookie(headers, name)
    assert cookie_value([h.encode() for h in headers], name) == (
        None if found is None else found.encode()
    )


def _envoy_first_query_value(url, name):
    """Envoy's parseQueryString + parseParameters + getFirstValue, step by step (the oracle)."""
    start = url.find("?")
    if start == -1:
        return None
    start += 1
    params = {}
    while start < len(url):
        end = url.find("&", start)
        if end == -1:
            end = len(url)
        param = url[start:end]
        equal = param.find("=")
        if equal != -1:
            params.setdefault(param[:equal], param[equal + 1 :])
        else:
            params.setdefault(param, "")
        start = end + 1
    return params.get(name)


@settings(max_examples=500)
@given(st.text(alphabet="ab=&?#%", max_size=24), st.text(alphabet="ab=&?", max_size=3))
def test_query_parsing_equals_envoys_algorithm(url, name):
    assert query_value(url, name) == _envoy_first_query_value(url, name)


def test_native_cookie_scan_is_compiled():
    assert NATIVE_COOKIE  # built by `pip install -e .`; the Python twin is ~6x slower


@settings(max_examples=500)
@given(
    st.lists(st.binary(max_size=24).map(lambda b: bytes(b'ab =;"\x00\xff'[x % 8] for x in b))),
    st.sampled_from([b"a=", b"ab=", b"b a=", b"\xff=", b"="]),
)
def test_native_cookie_scan_equals_python_twin(headers, needle):
    assert scan_cookie(headers, needle) == scan_cookie_bytes(headers, needle)
