"""Hard before soft: which endpoint a session value gets, when it is refused, when it is
rewritten; drain, strict, signing modes and wall-clock expiry."""

from __future__ import annotations

import pytest

from tether.hashing.session import (
    DRAINING,
    HONOUR,
    PICK,
    READY,
    REJECT,
    REJECTED,
    CookieFields,
    KeyRing,
    SessionSpec,
    SigningKey,
    b64encode,
    decide,
    encode_cookie,
    encode_envoy_cookie,
    encode_header,
    encode_legacy_cookie,
    endpoint_states,
    issue,
    needs_write,
    read_cookie_value,
    read_header_value,
    response_header,
    session_context,
    spec_from_model,
)
from tether.models.table import Endpoint, SessionPolicy, SessionSource

T0 = 1_750_000_000
A, B, GONE, DRAIN = "10.244.0.1:8080", "10.244.0.2:8080", "10.244.0.9:8080", "10.244.0.3:8080"
STATES = {A: READY, B: READY, DRAIN: DRAINING}
RING = KeyRing([SigningKey("k1", b"s" * 32, T0 - 100)])
CTX = session_context("default", "httpbin", "sid")


def spec(**over) -> SessionSpec:
    base = dict(kind="cookie", name="sid", path="/", context=CTX, window=3600)
    return SessionSpec(**{**base, **over})


def signed_value(address, now=T0, s=None, ring=RING):
    value, _ = issue(s or spec(), address, ring, now)
    return value


def test_endpoint_states_from_the_document():
    eps = [
        Endpoint(address="10.244.0.1", port=8080, hashKey=A),
        Endpoint(address="10.244.0.3", port=8080, ready=False, terminating=True, hashKey=DRAIN),
        Endpoint(
            address="10.244.0.4",
            port=8080,
            ready=False,
            serving=False,
            terminating=True,
            hashKey="x",
        ),
        Endpoint(address="10.244.0.5", port=8080, ready=False, serving=False, hashKey="y"),
        Endpoint(address="fd00::1", port=80, hashKey="[fd00::1]:80"),
    ]
    assert endpoint_states(eps, drain=True) == {A: READY, DRAIN: DRAINING, "[fd00::1]:80": READY}
    assert endpoint_states(eps, drain=False) == {A: READY, "[fd00::1]:80": READY}


def test_signed_value_is_honoured_without_rewrite():
    reading = read_cookie_value(spec(), signed_value(A), RING, T0 + 10)
    decision = decide(reading, STATES, strict=False)
    assert decision == (HONOUR, A, False, "valid")
    assert not needs_write(decision, A)
    assert needs_write(decision, B)  # a retry landed elsewhere: Envoy rewrites


def test_endpoint_gone_falls_back_or_503_in_strict_mode():
    reading = read_cookie_value(spec(), signed_value(GONE), RING, T0)
    assert decide(reading, STATES, strict=False) == (PICK, GONE, True, "unavailable")
    assert decide(reading, STATES, strict=True) == (REJECT, GONE, False, "unavailable")


def test_draining_endpoint_keeps_sessions_only_with_drain():
    reading = read_cookie_value(spec(), signed_value(DRAIN), RING, T0)
    assert decide(reading, STATES, strict=True).action == HONOUR
    no_drain = {A: READY, B: READY}  # endpoint_states(..., drain=False) leaves it out
    assert decide(reading, no_drain, strict=False).action == PICK


@pytest.mark.parametrize("strict", [False, True])
def test_absent_expired_and_forged_values_fall_back_even_when_strict(strict):
    forged = CookieFields(A, 0, T0 + 3600, "k1", b"\x00" * 16)
    values = {
        "absent": None,
        "malformed": "!!!!",
        "unsigned": encode_envoy_cookie(A),
        "bad-signature": b64encode(encode_cookie(forged)),
        "unknown-key": b64encode(encode_cookie(forged._replace(key_id="k9"))),
    }
    for status, value in values.items():
        reading = read_cookie_value(spec(), value, RING, T0)
        assert reading.status == status
        assert (status in REJECTED) == (status != "absent")
        assert decide(reading, STATES, strict) == (PICK, "", True, status)
    expired = read_cookie_value(spec(), signed_value(A), RING, T0 + 3601)
    assert decide(expired, STATES, strict) == (PICK, "", True, "expired")


def test_sliding_window_refresh_and_absolute_deadline():
    s = spec(absolute=5000)
    value = signed_value(A, T0, s)
    assert read_cookie_value(s, value, RING, T0 + 1800).refresh is False
    half = read_cookie_value(s, value, RING, T0 + 1801)
    assert half.status == "valid" and half.refresh is True
    # Re-issued: new window, same absolute deadline; never beyond it.
    again, expires = issue(s, A, RING, T0 + 1801, half.fields)
    assert expires == T0 + 5000
    late = read_cookie_value(s, again, RING, T0 + 4000)
    assert late.status == "valid" and late.fields.valid_until == T0 + 5000
    assert read_cookie_value(s, again, RING, T0 + 5001).status == "expired"
    # A new address starts a new session (new deadline), as Envoy does.
    assert issue(s, B, RING, T0 + 100, half.fields)[1] == T0 + 5100


def test_rotation_re_signs_on_the_next_request():
    rotated = KeyRing([*RING.keys, SigningKey("k2", b"t" * 32, T0 + 50)])
    reading = read_cookie_value(spec(), signed_value(A), rotated, T0 + 60)
    assert reading.status == "valid" and reading.refresh is True
    assert read_cookie_value(spec(), signed_value(A, ring=rotated, now=T0 + 60), rotated, T0 + 60)[
        :3
    ] == ("valid", A, False)


def test_compat_honours_envoy_values_and_re_issues_them_signed():
    s = spec(signing="compat")
    for value in (encode_envoy_cookie(A), encode_legacy_cookie(A), encode_envoy_cookie(A, 1005)):
        reading = read_cookie_value(s, value, RING, T0)
        assert reading[:3] == ("valid", A, True)
        assert decide(reading, STATES, False) == (HONOUR, A, True, "valid")
    assert read_cookie_value(s, encode_envoy_cookie(A, T0 - 1), RING, T0).status == "expired"
    # Re-issued signed: Envoy's monotonic deadline (1005) is not carried over.
    migrated = read_cookie_value(s, encode_envoy_cookie(A, 1005), RING, T0)
    value, expires = issue(s, A, RING, T0, migrated.fields)
    assert expires == 0 and read_cookie_value(s, value, RING, T0 + 60)[:3] == ("valid", A, False)
    assert read_cookie_value(s, signed_value(A), RING, T0)[:3] == ("valid", A, False)
    forged = CookieFields(A, 0, T0 + 3600, "k1", b"\x01" * 16)
    assert read_cookie_value(s, b64encode(encode_cookie(forged)), RING, T0).status == (
        "bad-signature"
    )


def test_unsigned_mode_is_envoys_reader_and_writer():
    s = spec(signing="unsigned", absolute=5, max_age=5, path="/path", name="override_host")
    value, expires = issue(s, B, None, T0)
    assert value == encode_envoy_cookie(B, T0 + 5)
    assert response_header(s, value, expires, T0) == (
        "Set-Cookie",
        f'override_host="{value}"; Max-Age=5; Path=/path; HttpOnly',
    )
    assert read_cookie_value(s, value, None, T0 + 5)[:2] == ("valid", B)
    assert read_cookie_value(s, value, None, T0 + 6).status == "expired"
    assert read_cookie_value(s, "!!!!", None, T0).status == "absent"  # Envoy: no value


def test_header_sessions():
    s = spec(kind="header", name="x-session", path="")
    unsigned = spec(kind="header", name="x-session", path="", signing="unsigned")
    assert issue(unsigned, A, None, T0) == (encode_header(A), 0)
    assert read_header_value(unsigned, [encode_header(A)], None, T0)[:2] == ("valid", A)
    assert read_header_value(s, [encode_header(A)], RING, T0).status == "unsigned"
    value, expires = issue(s, A, RING, T0)
    assert response_header(s, value, expires, T0) == ("x-session", value)
    assert read_header_value(s, [value], RING, T0)[:3] == ("valid", A, False)
    assert read_header_value(s, [], RING, T0).status == "absent"
    assert read_header_value(s, ["%%%="], RING, T0).status == "malformed"
    compat = spec(kind="header", name="x-session", path="", signing="compat")
    assert read_header_value(compat, [encode_header(A)], RING, T0)[:3] == ("valid", A, True)


def test_no_key_ring_yet():
    assert read_cookie_value(spec(), signed_value(A), None, T0).status == "no-keys"
    assert issue(spec(), A, None, T0) is None
    assert issue(spec(), A, KeyRing([SigningKey("k9", b"s" * 32, T0 + 1)]), T0) is None


def test_permanent_cookie_max_age_counts_down_to_the_deadline():
    s = spec(max_age=5000, absolute=5000)
    value, expires = issue(s, A, RING, T0)
    assert response_header(s, value, expires, T0)[1].endswith("; Max-Age=5000; Path=/; HttpOnly")
    assert "; Max-Age=3000;" in response_header(s, value, expires, T0 + 2000)[1]


def test_spec_from_the_table_documents_session_block():
    block = SessionPolicy(
        kind="cookie",
        name="sid",
        path="/",
        cookieMaxAgeSeconds=60,
        absoluteTimeoutSeconds=60,
        idleTimeoutSeconds=30,
        strict=True,
        source=SessionSource(kind="BackendLBPolicy", namespace="default", name="p"),
    )
    s = spec_from_model(block, "default", "httpbin")
    assert (s.max_age, s.absolute, s.window, s.strict, s.signing, s.drain) == (
        60,
        60,
        30,
        True,
        "signed",
        True,
    )
    assert s.context == CTX


def test_only_endpoints_in_the_set_are_ever_honoured():
    from hypothesis import given
    from hypothesis import strategies as st

    from tether.hashing.session import Reading

    addresses = st.sampled_from([A, B, GONE, DRAIN, "", "x"])
    readings = st.builds(
        Reading, st.sampled_from(["valid", *sorted(REJECTED), "absent", "expired"]), addresses
    )
    states = st.dictionaries(addresses, st.sampled_from([READY, DRAINING, 0]))

    @given(readings, states, st.booleans())
    def check(reading, endpoint_states, strict):
        decision = decide(reading, endpoint_states, strict)
        if decision.action == HONOUR:
            assert reading.status == "valid"
            assert endpoint_states.get(decision.address) in (READY, DRAINING)
        if reading.status != "valid":
            assert decision.action == PICK and decision.write

    check()
