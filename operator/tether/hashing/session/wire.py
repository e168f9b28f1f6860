"""The session value's bytes: Envoy's base64 and the ``envoy.Cookie`` protobuf, read as Envoy does.

Envoy (``source/extensions/http/stateful_session/cookie/cookie.h``) base64-decodes the cookie and
calls ``envoy::Cookie::ParseFromString``; only when that parse *fails* does it fall back to the
legacy plain ``ip:port`` form. So whether a value is "legacy" depends on protobuf's exact notion
of a well-formed message, which ``parse_cookie`` reproduces (C++ protobuf, proto3):

- a tag is a varint of at most 5 bytes, truncated to 32 bits; field number 0, wire types 6 and 7,
  and an end-group tag outside a group fail the parse;
- varints are at most 10 bytes (bits past 64 are dropped); fixed64/fixed32 need 8/4 bytes; a
  length-delimited field needs its whole length;
- unknown fields of every wire type are skipped (groups to their matching end tag, nesting ≤ 100);
- ``address`` (1) is a proto3 ``string``: invalid UTF-8 fails the parse; a field that arrives
  with another wire type than declared is an unknown field; the last occurrence wins.

tether's signed values extend the same message with fields Envoy ignores (unknown to it):
``valid_until`` (1001, uint64), ``key_id`` (1002, string), ``mac`` (1003, bytes). Envoy's field
numbers grow from 1, so these cannot collide with a future Envoy field. Because Envoy skips
them, none of them can fail the parse: a ``key_id`` that is not UTF-8 is kept with surrogate
escapes (it names no key, so such a value never verifies).

Invariant: ``parse_cookie(encode_cookie(c)) == c`` for every ``CookieFields`` with a valid UTF-8
address and key id; ``parse_cookie`` returns None exactly where C++ ``ParseFromString`` fails.
"""

from __future__ import annotations

import binascii
from typing import NamedTuple

ADDRESS, EXPIRES = 1, 2  # envoy.Cookie
VALID_UNTIL, KEY_ID, MAC = 1001, 1002, 1003  # tether's extension
_MAX_DEPTH = 100  # protobuf's default recursion limit
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUES = {c: i for i, c in enumerate(_B64_ALPHABET)}


class CookieFields(NamedTuple):
    """The fields of one ``envoy.Cookie`` message (proto3 defaults: "" / 0 / b"")."""

    address: str = ""
    expires: int = 0
    valid_until: int = 0
    key_id: str = ""
    mac: bytes = b""


def b64encode(data: bytes) -> str:
    """Envoy ``Base64::encode``: standard alphabet, padded."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def b64decode(text: str | bytes) -> bytes:
    """Envoy ``Base64::decode``: b"" for anything but canonical padded standard base64.

    Length must be a multiple of 4, at most two trailing '=', no other character outside the
    alphabet, and the unused low bits of the last character must be zero.
    """
    data = text.encode("latin-1") if isinstance(text, str) else bytes(text)
    if not data or len(data) % 4:
        return b""
    try:
        out = binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        return b""
    pad = len(data) - len(data.rstrip(b"="))
    if pad:
        last = _B64_VALUES.get(data[-pad - 1], 64)
        if last & (0x0F if pad == 2 else 0x03):
            return b""
    return out


def _varint(data: bytes, pos: int, limit: int = 10) -> tuple[int, int]:
    """(value, next position); raises IndexError/ValueError on truncation or > ``limit`` bytes."""
    value = shift = 0
    for _ in range(limit):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("varint too long")


def _skip(data: bytes, pos: int, wire: int, field: int, depth: int) -> int:
    """Position after one unknown field's payload; raises on anything malformed."""
    end = len(data)
    if wire == 0:
        return _varint(data, pos)[1]
    if wire == 1:
        pos += 8
    elif wire == 5:
        pos += 4
    elif wire == 2:
        size, pos = _varint(data, pos, 5)
        if size > 0x7FFFFFFF:
            raise ValueError("length too large")
        pos += size
    elif wire == 3:
        if depth >= _MAX_DEPTH:
            raise ValueError("groups nested too deeply")
        while True:
            tag, pos = _tag(data, pos)
            if tag & 7 == 4:
                if tag >> 3 != field:
                    raise ValueError("mismatched end group")
                return pos
            pos = _skip(data, pos, tag & 7, tag >> 3, depth + 1)
    else:
        raise ValueError(f"wire type {wire}")
    if pos > end:
        raise IndexError("truncated")
    return pos


def _tag(data: bytes, pos: int) -> tuple[int, int]:
    tag, pos = _varint(data, pos, 5)
    tag &= 0xFFFFFFFF
    if tag >> 3 == 0 or tag & 7 in (6, 7):
        raise ValueError("bad tag")
    return tag, pos


def _parse_canonical(data: bytes) -> CookieFields | None:
    """Envoy's layout or tether's signed one (``encode_cookie``, short fields), or None.

    ``0a L address [10 expires]``, optionally followed by
    ``c8 3e valid_until d2 3e L key_id da 3e 10 mac``, and nothing else. When it matches, every
    byte is accounted for by well-formed known fields, so the general parser would return the
    same values.
    """
    if data[0] != 0x0A or data[1] > 0x7F:
        return None
    pos = 2 + data[1]
    address = data[2:pos]
    expires = 0
    if pos < len(data) and data[pos] == 0x10:
        expires, pos = _varint(data, pos + 1, 9)
    if pos == len(data):
        return CookieFields(address.decode("utf-8"), expires)
    if data[pos : pos + 2] != b"\xc8\x3e":
        return None
    valid_until, pos = _varint(data, pos + 2, 9)
    if data[pos : pos + 2] != b"\xd2\x3e" or data[pos + 2] > 0x7F:
        return None
    start = pos + 3
    pos = start + data[pos + 2]
    key_id = data[start:pos]
    if data[pos : pos + 3] != b"\xda\x3e\x10" or len(data) != pos + 19:
        return None
    return CookieFields(
        address.decode("utf-8"), expires, valid_until, key_id.decode("utf-8"), data[pos + 3 :]
    )


def parse_cookie(data: bytes) -> CookieFields | None:
    """``envoy::Cookie::ParseFromString`` (plus tether's fields); None where C++ would fail.

    Envoy's and tether's own values take a fast path (``_parse_canonical``); any other input goes
    through ``parse_cookie_general``, the reference (a test holds the two equal).
    """
    try:
        fields = _parse_canonical(data)
    except (IndexError, ValueError):  # UnicodeDecodeError is a ValueError
        fields = None
    return fields if fields is not None else parse_cookie_general(data)


def parse_cookie_general(data: bytes) -> CookieFields | None:
    """The full wire-format reader (module docstring); the reference for ``parse_cookie``."""
    address, expires, valid_until, key_id, mac = "", 0, 0, "", b""
    pos, end = 0, len(data)
    try:
        while pos < end:
            tag = data[pos]
            if tag < 0x80 and tag >= 8 and tag & 7 < 6:
                pos += 1
            else:
                tag, pos = _tag(data, pos)
            field, wire = tag >> 3, tag & 7
            if wire == 2 and field in (ADDRESS, KEY_ID, MAC):
                size = data[pos]
                if size < 0x80:
                    pos += 1
                else:
                    size, pos = _varint(data, pos, 5)
                    if size > 0x7FFFFFFF:
                        return None
                if pos + size > end:
                    return None
                raw = data[pos : pos + size]
                pos += size
                if field == ADDRESS:
                    address = raw.decode("utf-8")
                elif field == MAC:
                    mac = raw
                else:  # Envoy's message has no field 1002: its bytes never fail the parse
                    key_id = raw.decode("utf-8", "surrogateescape")
            elif wire == 0 and field in (EXPIRES, VALID_UNTIL):
                value, pos = _varint(data, pos)
                value &= 0xFFFFFFFFFFFFFFFF
                if field == EXPIRES:
                    expires = value
                else:
                    valid_until = value
            elif wire == 4:
                return None  # an end-group tag outside any group
            else:
                pos = _skip(data, pos, wire, field, 0)
    except (IndexError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    return CookieFields(address, expires, valid_until, key_id, mac)


def _put_varint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _put_bytes(out: bytearray, field: int, raw: bytes) -> None:
    _put_varint(out, field << 3 | 2)
    _put_varint(out, len(raw))
    out += raw


def encode_cookie(fields: CookieFields) -> bytes:
    """Serialise as C++ ``SerializeToString`` does: field order, proto3 defaults omitted."""
    out = bytearray()
    if fields.address:
        _put_bytes(out, ADDRESS, fields.address.encode("utf-8"))
    for number, value in ((EXPIRES, fields.expires), (VALID_UNTIL, fields.valid_until)):
        if value:
            _put_varint(out, number << 3)
            _put_varint(out, value)
    if fields.key_id:
        _put_bytes(out, KEY_ID, fields.key_id.encode("utf-8"))
    if fields.mac:
        _put_bytes(out, MAC, fields.mac)
    return bytes(out)
