"""Access-log lines: the native lane's C formatter writes exactly what format_line writes."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.gateway.accesslog import format_line, fragment
from tether.gateway.wire import _wire

_fields = st.tuples(
    st.sampled_from(["2026-11-29T10:00:00.123Z", "1970-01-01T00:00:00.000Z"]),
    st.one_of(st.sampled_from([b"GET", b"HEAD", b"OPTIONS", b"PATCH"]), st.binary(max_size=8)),
    st.one_of(st.sampled_from([b"/", b"/status/418?x=1", b'/q"\\']), st.binary(max_size=40)),
    st.integers(0, 999),
    st.sampled_from(
        [
            fragment("10.0.0.1:8080", "httpbin-0", "default/httpbin:8000", "cookie"),
            fragment("[::1]:80", 'p"\u00e9', "ns/a:1", "roundRobin"),
        ]
    ),
    st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    st.booleans(),
    st.floats(0, 1e5, allow_nan=False),
    st.integers(0, 2**40),
    st.one_of(st.sampled_from(["127.0.0.1", "::1", ""]), st.text(max_size=6)),
    st.integers(0, 5),
    st.one_of(st.just(""), st.text(max_size=10)),
)


@settings(max_examples=1500, deadline=None)
@given(_fields)
def test_native_line_equals_format_line(fields):
    native = _wire.access_line(*fields)
    python = format_line(*fields)
    if native is not None:
        assert native == python
    assert json.loads(python)["status"] == fields[3]  # always valid JSON


def test_native_formatter_takes_the_usual_lines():
    where = fragment("10.0.0.1:8080", "httpbin-0", "default/httpbin:8000", "cookie")
    fields = ("2026-11-29T10:00:00.123Z", b"GET", b"/status/418?x=1", 418, where, 2**63 + 5,
              False, 0.0012345, 3, "10.1.2.3", 1, "")  # fmt: skip
    line = _wire.access_line(*fields)
    assert line == format_line(*fields)
    assert json.loads(line)["hash"] == format(2**63 + 5, "016x")
    assert json.loads(line)["duration_ms"] == 1.234
