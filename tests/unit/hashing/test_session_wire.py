"""The session value's bytes: envoy.Cookie wire format and Envoy's base64, held to hand-worked
bytes, to Envoy's own test vectors, and to Google's protobuf (upb) as an independent oracle."""

from __future__ import annotations

import base64

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tether.hashing.session import CookieFields, b64decode, b64encode, encode_cookie, parse_cookie


def _oracle_class():
    """envoy.Cookie built from a descriptor (what protoc would generate from cookie.proto)."""
    fd = descriptor_pb2.FileDescriptorProto(name="cookie.proto", package="envoy", syntax="proto3")
    msg = fd.message_type.add(name="Cookie")
    f = descriptor_pb2.FieldDescriptorProto
    msg.field.add(name="address", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    msg.field.add(name="expires", number=2, type=f.TYPE_UINT64, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("envoy.Cookie"))


Cookie = _oracle_class()


def oracle_parse(raw: bytes) -> tuple[str, int] | None:
    msg = Cookie()
    try:
        msg.ParseFromString(raw)
    except Exception:
        return None
    return msg.address, msg.expires


# -- hand-worked bytes -------------------------------------------------------------------------


def test_address_only_is_tag_0a_length_then_the_text():
    # field 1, wire type 2 -> tag (1 << 3) | 2 = 0x0a; "10.244.0.5:8080" is 15 bytes -> 0x0f.
    raw = encode_cookie(CookieFields("10.244.0.5:8080"))
    assert raw == b"\x0a\x0f10.244.0.5:8080"
    assert b64encode(raw) == "Cg8xMC4yNDQuMC41OjgwODA="


def test_expires_is_tag_10_and_a_base128_varint():
    # field 2, wire type 0 -> tag 0x10. 1700000000 = 0 + 98·128 + 79·128² + 42·128³ + 6·128⁴,
    # little-endian groups with the continuation bit: 80 e2 cf aa 06.
    raw = encode_cookie(CookieFields("10.0.0.1:80", 1700000000))
    assert raw == b"\x0a\x0b10.0.0.1:80" + b"\x10\x80\xe2\xcf\xaa\x06"
    assert parse_cookie(raw) == CookieFields("10.0.0.1:80", 1700000000)


def test_envoy_test_vector_1005_and_ttl_zero():
    # cookie_test.cc: address "1.2.3.4:80", expires 1005 (= 0x6d + 7·128 -> ed 07).
    assert encode_cookie(CookieFields("1.2.3.4:80", 1005)) == b"\x0a\x0a1.2.3.4:80\x10\xed\x07"
    # ttl 0 -> expires unset -> proto3 omits the field.
    assert encode_cookie(CookieFields("1.2.3.4:80")) == b"\x0a\x0a1.2.3.4:80"


def test_tether_fields_use_two_byte_tags_far_from_envoys():
    # 1001 << 3 = 8008 -> varint c8 3e; 1002 wt2 -> 8018 -> d2 3e; 1003 wt2 -> 8026 -> da 3e.
    raw = encode_cookie(CookieFields("a", 0, 5, "k1", b"\x00\xff"))
    assert raw == b"\x0a\x01a" + b"\xc8\x3e\x05" + b"\xd2\x3e\x02k1" + b"\xda\x3e\x02\x00\xff"
    assert oracle_parse(raw) == ("a", 0)  # Envoy keeps the address, ignores tether's fields


# -- parse semantics (C++ protobuf) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", CookieFields()),
        (b"\x0a\x01a\x0a\x01b", CookieFields("b")),  # last occurrence wins
        (b"\x08\x05", CookieFields()),  # field 1 with the wrong wire type is unknown
        (b"\x12\x01a", CookieFields()),  # field 2 as length-delimited is unknown
        (b"\x0b\x1b\x08\x01\x1c\x0c", CookieFields()),  # nested unknown groups are skipped
        (b"\x88\x80\x80\x80\x01\x01", CookieFields()),  # 5-byte tag: field 1<<25, varint
        (b"\x10" + b"\xff" * 9 + b"\x7f", CookieFields(expires=2**64 - 1)),  # bits past 64 drop
    ],
)
def test_well_formed_inputs(raw, expected):
    assert parse_cookie(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"\x0c",  # end-group outside a group
        b"\x0b\x14",  # group closed by another field's end tag
        b"\x0e",  # wire type 6
        b"\x01" + b"\x00" * 8,  # field number 0
        b"\x10" + b"\xff" * 10 + b"\x01",  # 11-byte varint
        b"\x0a\x05abc",  # length past the end
        b"\x0a\x02\xff\xfe",  # proto3 string with invalid UTF-8
        b"\x0a\x03\xed\xa0\x80",  # an encoded surrogate is not UTF-8 either
        b"\x0b" * 101 + b"\x0c" * 101,  # deeper than protobuf's recursion limit (100)
    ],
)
def test_malformed_inputs_fail_like_protobuf(raw):
    assert parse_cookie(raw) is None
    assert oracle_parse(raw) is None


def test_five_byte_tag_with_high_bits_is_truncated_as_cpp_does():
    # C++ ReadTagFallback adds (byte - 1) << 28 in uint32 arithmetic: bits past 32 vanish, so
    # this parses in Envoy (upb, the Python runtime, rejects it: the one known divergence).
    raw = b"\x88\x80\x80\x80\x70\x01"
    assert parse_cookie(raw) == CookieFields()


def test_legacy_plain_addresses_are_only_legacy_when_they_are_not_a_protobuf():
    # "10.244.0.5:8080": '1' = field 6 fixed64 (8 bytes), '5' = fixed32, '0' = varint at EOF.
    assert parse_cookie(b"10.244.0.5:8080") is None
    # "10.0.0.1:8080" is a well-formed message of unknown fields (fixed64, then two varints).
    assert parse_cookie(b"10.0.0.1:8080") == CookieFields()
    assert oracle_parse(b"10.0.0.1:8080") == ("", 0)
    assert parse_cookie(b"blahblah") is None  # Envoy's own vector: 'b' = field 12, len 108


# -- base64 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        ("QQ==", b"A"),
        ("QUI=", b"AB"),
        ("QUJD", b"ABC"),
        ("MS4yLjMuNDo4MA==", b"1.2.3.4:80"),
        ("QR==", b""),  # unused low bits set
        ("QUJ=", b""),
        ("QQ", b""),  # not a multiple of 4
        ("QQ=", b""),
        ("Q===", b""),  # three '='
        ("QQ==QQ==", b""),  # '=' inside
        ("QUJD\n", b""),
        ("QU-D", b""),  # URL-safe alphabet is not Envoy's
        ("", b""),
    ],
)
def test_envoy_base64_decode(text, raw):
    assert b64decode(text) == raw


@given(st.binary(max_size=64))
def test_base64_round_trip_matches_the_standard_library(data):
    text = b64encode(data)
    assert text == base64.b64encode(data).decode()
    assert b64decode(text) == data


# -- protobuf as an oracle ---------------------------------------------------------------------

addresses = st.text(max_size=40)
uint64 = st.integers(0, 2**64 - 1)


@given(addresses, uint64)
def test_encoding_equals_protobufs_serialisation(address, expires):
    assert encode_cookie(CookieFields(address, expires)) == Cookie(
        address=address, expires=expires
    ).SerializeToString(deterministic=True)


pieces = st.one_of(
    st.builds(lambda a: b"\x0a" + bytes([len(a)]) + a, st.binary(max_size=20)),
    st.builds(lambda a: b"\xd2\x3e" + bytes([len(a)]) + a, st.binary(max_size=20)),  # key_id
    st.builds(lambda v: encode_cookie(CookieFields(expires=v)), uint64.filter(bool)),
    st.sampled_from([b"\x0b", b"\x0c", b"\x13", b"\x14", b"\x0e", b"\x00", b"\x80", b"\xff"]),
    st.binary(min_size=1, max_size=6),
)


def _cpp_only(raw: bytes) -> bool:
    """Inputs where a 5-byte tag carries bits past 32 (C++ truncates, upb rejects)."""
    return any(
        all(b & 0x80 for b in raw[i : i + 4]) and len(raw) > i + 4 and raw[i + 4] > 0x0F
        for i in range(len(raw))
    )


def _varint_at(raw: bytes, pos: int) -> tuple[int, int] | None:
    value = shift = 0
    while pos < len(raw) and shift < 70:
        b = raw[pos]
        value |= (b & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not b & 0x80:
            return value, pos
    return None


def _field_zero_in_group(raw: bytes) -> bool:
    """Inputs with a tag of field number 0 inside a group. C++ fails the parse: a zero tag ends
    the group on a tag that is not its end tag (``ParseContext::ParseGroup`` →
    ``ConsumeEndGroup``), any other field-0 tag fails ``FieldParser``'s ``number != 0``; upb
    accepts some of them (``0b 00 10 05 0a 00 0a 00 0c``). A walk of the tags that stops where
    it cannot go on says False."""
    pos, depth = 0, 0
    while pos < len(raw):
        read = _varint_at(raw, pos)
        if read is None:
            return False
        tag, pos = read
        wire = tag & 7
        if tag >> 3 == 0:
            return depth > 0
        if wire == 3:
            depth += 1
        elif wire == 4:
            if depth == 0:
                return False
            depth -= 1
        elif wire in (0, 2):
            read = _varint_at(raw, pos)
            if read is None:
                return False
            pos = read[1] + (read[0] if wire == 2 else 0)
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            return False
    return False


def test_a_key_id_that_is_not_utf8_does_not_fail_the_parse():
    # Envoy's message has no field 1002, so its bytes are skipped there and cannot fail it.
    raw = b"\xd2\x3e\x02\xff\xfe\x10\x05"
    assert oracle_parse(raw) == ("", 5)
    got = parse_cookie(raw)
    assert (got.address, got.expires) == ("", 5) and got.key_id != ""


def test_field_zero_inside_a_group_fails_the_parse_as_in_cpp():
    raw = b"\x0b\x00\x10\x05\x0a\x00\x0a\x00\x0c"
    assert _field_zero_in_group(raw) and parse_cookie(raw) is None
    assert parse_cookie(b"\x0b\x00\x0c") is None
    assert _field_zero_in_group(b"\x13\x05\x00\x00\x00\x00\x14")  # field 0, fixed32
    assert parse_cookie(b"\x13\x05\x00\x00\x00\x00\x14") is None
    assert parse_cookie(b"\x0b\x10\x05\x0c") == CookieFields("", 0)  # a group, skipped


@settings(max_examples=800)
@given(st.lists(pieces, max_size=8).map(b"".join))
def test_parse_agrees_with_protobuf_on_messy_input(raw):
    assume(not _cpp_only(raw) and not _field_zero_in_group(raw))
    got = parse_cookie(raw)
    assert (None if got is None else (got.address, got.expires)) == oracle_parse(raw)


# -- the fast path for tether's own values equals the general reader ---------------------------

signed_fields = st.builds(
    CookieFields,
    st.text(max_size=130),
    uint64,
    uint64,
    st.text(min_size=1, max_size=130),
    st.binary(min_size=1, max_size=20),
)


@settings(max_examples=500)
@given(signed_fields, st.integers(0, 200), st.integers(0, 255))
def test_fast_path_equals_the_general_reader(fields, at, byte):
    from tether.hashing.session.wire import parse_cookie_general

    raw = encode_cookie(fields)
    assert parse_cookie(raw) == parse_cookie_general(raw)
    if raw:
        mutated = bytearray(raw)
        mutated[at % len(raw)] = byte
        assert parse_cookie(bytes(mutated)) == parse_cookie_general(bytes(mutated))
        assert parse_cookie(raw[: at % len(raw)]) == parse_cookie_general(raw[: at % len(raw)])
