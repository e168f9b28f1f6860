"""Cookie and query-string value extraction with Envoy's exact semantics (``http/utility.cc``).

Both functions accept ``str`` or ``bytes`` and return the same type (bytes keep the raw octets
that Envoy hashes; nothing is decoded).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import AnyStr


@lru_cache(maxsize=256)
def cookie_pattern(name: str, as_bytes: bool) -> re.Pattern | None:
    """Regex finding the first cookie piece whose key is exactly ``name``; None if none can.

    Envoy splits each ``cookie`` value on ';', takes the key from the first non-space (' ' only)
    character up to the first '=', and compares it exactly. A key therefore never starts with a
    space and never contains ';' or '=', so such names match nothing.
    """
    if name.startswith(" ") or ";" in name or "=" in name:
        return None
    if as_bytes:
        return re.compile(rb"(?:^|;) *" + re.escape(name.encode()) + rb"=([^;]*)")
    return re.compile(r"(?:^|;) *" + re.escape(name) + r"=([^;]*)")


def strip_quotes(value: AnyStr) -> AnyStr:
    """Remove one pair of surrounding double quotes (RFC 6265 quoted value), if length ≥ 2."""
    if len(value) >= 2 and value[:1] in ('"', b'"') and value[-1:] == value[:1]:
        return value[1:-1]
    return value


def find_cookie(values: Sequence[AnyStr], pattern: re.Pattern | None) -> AnyStr | None:
    """First match of a cookie_pattern over header values in order, quotes stripped."""
    if pattern is None:
        return None
    for value in values:
        match = pattern.search(value)
        if match is not None:
            return strip_quotes(match.group(1))
    return None


def cookie_value(cookie_header_values: Sequence[AnyStr], name: str) -> AnyStr | None:
    """Envoy ``parseCookieValue``: the first cookie named ``name`` across all ``cookie`` headers.

    Quotes are stripped; an empty value is returned as-is (callers treat it as absent, as Envoy
    does); None when no piece has that key.
    """
    if not cookie_header_values:
        return None
    as_bytes = isinstance(cookie_header_values[0], bytes | bytearray)
    return find_cookie(cookie_header_values, cookie_pattern(name, as_bytes))


def query_value(path: AnyStr, name: str) -> AnyStr | None:
    """Envoy ``QueryParamsMulti::parseQueryString(path).getFirstValue(name)``.

    Everything after the first '?' is split on '&'; each piece's name runs to its first '='
    (no '=' → value ""); no percent-decoding; fragments are not special; the first occurrence
    wins. None when the parameter is absent.
    """
    as_bytes = isinstance(path, bytes | bytearray)
    qmark, amp, eq = (b"?", b"&", b"=") if as_bytes else ("?", "&", "=")
    _, found, query = path.partition(qmark)
    if not found or not query:
        return None
    key = name.encode() if as_bytes else name
    if key not in query:
        return None
    pieces = query.split(amp)
    if not pieces[-1]:
        pieces.pop()  # Envoy stops at the end of the data: a trailing '&' adds no empty piece
    for piece in pieces:
        pname, _, pvalue = piece.partition(eq)
        if pname == key:
            return pvalue
    return None
