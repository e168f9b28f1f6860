"""The native signed-cookie check (wire/session.c) against the Python reference (hypothesis),
including its cache of verified values (a value judged again at another instant).

Reference: ``hashing.session.read_cookie_value`` in signed mode. The native check answers an
address exactly when the reference honours the value as it is (valid, not expired, no
re-issue due); for every value tether issues the two agree on every clock reading, and for
any other input (tampered, forged, truncated, random) a native address is always the
reference's. ``TETHER_FUZZ_EXAMPLES`` raises the example count (default 300).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.gateway.wire import _wire
from tether.hashing.session import (
    KeyRing,
    SessionSpec,
    SigningKey,
    b64decode,
    b64encode,
    issue,
    read_cookie_value,
    session_context,
)
from tether.hashing.session.signing import VALID

EXAMPLES = int(os.environ.get("TETHER_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T0 = 1_800_000_000
ADDRESSES = st.from_regex(r"10\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]{2,5}", fullmatch=True)
KEY_IDS = st.from_regex(r"[A-Za-z0-9._-]{1,32}", fullmatch=True)


def native(spec: SessionSpec, ring: KeyRing):
    keys = [(k.id, k.secret, k.activates_at, k.retires_at) for k in ring.keys]
    return _wire.SessionCheck(spec.context, keys, spec.window)


def reference(spec: SessionSpec, value: bytes, ring: KeyRing, now: int) -> bytes | None:
    r = read_cookie_value(spec, value, ring, now)
    return r.address.encode() if r.status == VALID and not r.refresh else None


@st.composite
def rings(draw):
    """1-3 keys around T0, some retired, secrets of 32-100 bytes (HMAC hashes long keys)."""
    n = draw(st.integers(1, 3))
    ids = draw(st.lists(KEY_IDS, min_size=n, max_size=n, unique=True))
    keys = []
    for key_id in ids:
        start = T0 + draw(st.integers(-10_000, 2_000))
        retire = draw(st.one_of(st.none(), st.integers(start, T0 + 20_000)))
        keys.append(SigningKey(key_id, draw(st.binary(min_size=32, max_size=100)), start, retire))
    return KeyRing(keys)


@st.composite
def specs(draw):
    context = session_context(
        draw(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)), "svc",
        draw(st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True)),
    )  # fmt: skip
    absolute = draw(st.sampled_from([0, 0, 600, 86_400]))
    window = draw(st.sampled_from([60, 3600, 86_400]))
    return SessionSpec("cookie", "sid", context=context, window=window, absolute=absolute)


def test_sha256_is_fips_180_4():
    for data in (b"", b"abc", b"a" * 55, b"a" * 56, b"a" * 64, os.urandom(1000)):
        assert _wire.sha256(data) == hashlib.sha256(data).digest()
    assert _wire.sha256(b"abc").hex().startswith("ba7816bf8f01cfea")  # FIPS 180-2 example


@FUZZ
@given(specs(), rings(), ADDRESSES, st.integers(-20_000, 200_000), st.integers(-1000, 200_000))
def test_issued_values_agree_at_every_clock_reading(spec, ring, address, at, later):
    issued_at = T0 + at
    made = issue(spec, address, ring, issued_at)
    if made is None:  # no key signs at that instant
        return
    value = made[0].encode()
    now = issued_at + later
    check = native(spec, ring)
    first = check.verify(value, issued_at)  # verified once: the value is cached from here
    assert first == reference(spec, value, ring, issued_at) or ring.signing_key(issued_at) is None
    got = check.verify(value, now)  # the cached value, judged again at another instant
    want = reference(spec, value, ring, now)
    if ring.signing_key(now) is None:  # no signer now: the native side leaves it to Python
        assert got is None or got == want
    else:
        assert got == want


@FUZZ
@given(specs(), rings(), ADDRESSES, st.data())
def test_tampered_values_are_never_honoured_natively(spec, ring, address, data):
    made = issue(spec, address, ring, T0)
    if made is None:
        return
    raw = bytearray(b64decode(made[0]))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    value = b64encode(bytes(raw)).encode()
    got = native(spec, ring).verify(value, T0)
    assert got is None or got == reference(spec, value, ring, T0)
    if i >= 2:  # any byte past the address's tag and length is covered by the tag
        assert got is None


@FUZZ
@given(specs(), rings(), st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode)))
def test_any_other_input_gives_the_reference_answer_or_none(spec, ring, value):
    got = native(spec, ring).verify(value, T0)
    assert got is None or got == reference(spec, value, ring, T0)


def test_a_value_signed_for_another_service_is_not_honoured():
    ring = KeyRing([SigningKey("k1", b"k" * 32, T0 - 10)])
    shop = SessionSpec("cookie", "sid", context=session_context("a", "shop", "sid"))
    cart = SessionSpec("cookie", "sid", context=session_context("a", "cart", "sid"))
    value = issue(shop, "10.0.0.1:80", ring, T0)[0].encode()
    assert native(shop, ring).verify(value, T0) == b"10.0.0.1:80"
    assert native(cart, ring).verify(value, T0) is None


def test_hand_made_value_matches_the_documented_message():
    """The tag is HMAC-SHA-256 over the message of signing.py's docstring, truncated."""
    secret, ctx, key_id, addr = b"x" * 32, b"ns/svc/sid", "k1", b"10.1.2.3:8080"
    lp = lambda b: len(b).to_bytes(4, "big") + b  # noqa: E731
    message = (b"tether-session-v1" + lp(ctx) + lp(key_id.encode()) + lp(addr)
               + (0).to_bytes(8, "big") + (T0 + 3600).to_bytes(8, "big"))  # fmt: skip
    tag = hmac.new(secret, message, hashlib.sha256).digest()[:16]
    body = (b"\x0a" + bytes([len(addr)]) + addr + b"\xc8\x3e" + _varint(T0 + 3600)
            + b"\xd2\x3e\x02k1" + b"\xda\x3e\x10" + tag)  # fmt: skip
    check = _wire.SessionCheck(ctx, [(key_id, secret, T0 - 1, None)], 3600)
    assert check.verify(base64.b64encode(body), T0) == addr
    assert check.verify(base64.b64encode(body[:-1] + bytes([body[-1] ^ 1])), T0) is None


def _varint(v: int) -> bytes:
    out = bytearray()
    while v > 0x7F:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)
