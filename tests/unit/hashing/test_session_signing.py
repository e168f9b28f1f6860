"""Signed session values: a forged or altered value never verifies; rotation keeps the previous
key valid for the overlap window; the key ring round-trips through its Secret document."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.hashing.session import (
    CookieFields,
    KeyPolicy,
    KeyRing,
    SigningKey,
    due_for_rotation,
    new_keyring,
    prune,
    rotate,
    session_context,
    sign,
    to_keyring,
    verify,
)
from tether.models.session_keys import KeyRingError, dumps_keyring, loads_keyring

T0 = 1_750_000_000
SECRET_A, SECRET_B = b"a" * 32, b"b" * 32
CTX = session_context("default", "httpbin", "sid")
KEY = SigningKey("k1", SECRET_A, T0)
RING = KeyRing([KEY])
VALUE = CookieFields("10.244.0.5:8080", T0 + 3600, T0 + 600)


def test_the_tag_is_truncated_hmac_sha256_over_the_documented_message():
    signed = sign(VALUE, KEY, CTX)

    def lp(b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + b

    message = (
        b"tether-session-v1"
        + lp(b"default/httpbin/sid")
        + lp(b"k1")
        + lp(b"10.244.0.5:8080")
        + struct.pack(">QQ", T0 + 3600, T0 + 600)
    )
    assert signed.key_id == "k1"
    assert signed.mac == hmac.new(SECRET_A, message, hashlib.sha256).digest()[:16]
    assert verify(signed, RING, CTX, T0) == "valid"


@pytest.mark.parametrize(
    "change",
    [
        {"address": "10.244.0.6:8080"},
        {"expires": T0 + 3601},
        {"expires": 0},
        {"valid_until": T0 + 601},
        {"mac": b"\x00" * 16},
    ],
)
def test_any_altered_field_is_a_bad_signature(change):
    forged = sign(VALUE, KEY, CTX)._replace(**change)
    assert verify(forged, RING, CTX, T0) == "bad-signature"


def test_other_context_unknown_key_and_unsigned():
    signed = sign(VALUE, KEY, CTX)
    assert verify(signed, RING, session_context("default", "other", "sid"), T0) == "bad-signature"
    assert verify(signed._replace(key_id="k2"), RING, CTX, T0) == "unknown-key"
    assert verify(VALUE, RING, CTX, T0) == "unsigned"
    stranger = sign(VALUE, SigningKey("k1", SECRET_B, T0), CTX)  # right id, wrong secret
    assert verify(stranger, RING, CTX, T0) == "bad-signature"


@given(st.binary(min_size=1, max_size=32))
def test_random_tags_never_verify(tag):
    forged = VALUE._replace(key_id="k1", mac=tag)
    assert verify(forged, RING, CTX, T0) != "valid" or tag == sign(VALUE, KEY, CTX).mac


def test_weak_keys_and_bad_ids_are_refused():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        SigningKey("k", b"short", T0)
    with pytest.raises(ValueError, match="key id"):
        SigningKey("no spaces", SECRET_A, T0)
    with pytest.raises(ValueError, match="unique"):
        KeyRing([KEY, SigningKey("k1", SECRET_B, T0 + 1)])


def test_rotation_overlap_window():
    policy = KeyPolicy(every=30 * 86400, propagation=300, overlap=2 * 86400)
    first = new_keyring(T0, SECRET_A)
    ring0 = to_keyring(first)
    old_value = sign(VALUE, ring0.signing_key(T0), CTX)

    rotated = rotate(first, T0 + 10, SECRET_B, policy)
    ring1 = to_keyring(rotated)
    new_id = rotated.keys[-1].id
    # Published first, signs only after the propagation delay.
    assert ring1.signing_key(T0 + 309).id == first.keys[0].id
    assert ring1.signing_key(T0 + 310).id == new_id
    # A value minted by a replica that already signs with the new key verifies everywhere.
    assert verify(sign(VALUE, ring1.signing_key(T0 + 310), CTX), ring1, CTX, T0 + 310) == "valid"
    # The old key keeps verifying for the overlap after the new key starts signing.
    retire = T0 + 310 + 2 * 86400
    assert verify(old_value, ring1, CTX, retire - 1) == "valid"
    assert verify(old_value, ring1, CTX, retire) == "unknown-key"
    assert [k.id for k in prune(rotated, retire).keys] == [new_id]
    assert prune(rotated, retire - 1) is rotated


def test_rotation_is_due_after_the_period():
    ring = new_keyring(T0, SECRET_A)
    assert not due_for_rotation(ring, T0 + 30 * 86400 - 1)
    assert due_for_rotation(ring, T0 + 30 * 86400)
    twice = rotate(rotate(ring, T0, SECRET_B), T0, b"c" * 32)
    assert len({k.id for k in twice.keys}) == 3  # same second, still unique ids


def test_keyring_document_round_trip_and_refusals():
    ring = rotate(new_keyring(T0, SECRET_A), T0 + 5, SECRET_B)
    text = dumps_keyring(ring)
    assert loads_keyring(text) == ring and dumps_keyring(loads_keyring(text)) == text
    assert '"activatesAt":' in text and "secret" in text
    for bad in (
        '{"version":1,"keys":[]}',
        '{"version":2,"keys":[{"id":"k","secret":"' + "QUFB" * 11 + '","activatesAt":1}]}',
        '{"version":1,"keys":[{"id":"k","secret":"c2hvcnQ=","activatesAt":1}]}',
        '{"version":1,"keys":[{"id":"k","secret":"not base64!","activatesAt":1}]}',
        "not json",
    ):
        with pytest.raises(KeyRingError):
            loads_keyring(bad)
