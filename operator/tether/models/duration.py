"""Durations exactly as Istio reads them: Go's ``time.ParseDuration``.

Istio decodes ``google.protobuf.Duration`` fields of a DestinationRule with golang/protobuf's
jsonpb, which calls ``time.ParseDuration``. So ``300ms``, ``1.5h``, ``1m30s``, ``0``, ``0s`` and
``-5s`` are all accepted, ``5`` (no unit) and ``1d`` are not. The value becomes a proto Duration
(``seconds``, ``nanos``) by truncating toward zero, and Envoy reads cookie TTLs as
``ttl.seconds()`` (nanos ignored).

The pydantic field type is ``tether.models.jsonpb.Duration`` (Istio's ``bad Duration: `` errors).

Invariants: ``parse_go_duration`` accepts exactly the strings Go accepts and returns the same
int64 nanoseconds; ``GoDuration.seconds`` equals proto ``Duration.seconds``.
"""

from __future__ import annotations

from typing import NamedTuple

_NS = 1
_US = 1_000
_MS = 1_000_000
_S = 1_000_000_000
# Go scans the unit byte-wise, so the table is keyed by UTF-8 bytes (µ U+00B5 and μ U+03BC).
_UNITS: dict[bytes, int] = {
    b"ns": _NS,
    b"us": _US,
    "µs".encode(): _US,
    "μs".encode(): _US,
    b"ms": _MS,
    b"s": _S,
    b"m": 60 * _S,
    b"h": 3600 * _S,
}
_MAX = 1 << 63
_DIGITS = b"0123456789"


class DurationError(ValueError):
    """A string Go's time.ParseDuration rejects; the message is Go's."""


def _quote(raw: bytes) -> str:
    return '"' + raw.decode("utf-8", "replace") + '"'


def _leading_int(s: bytes) -> tuple[int, bytes] | None:
    x, i = 0, 0
    while i < len(s) and s[i] in _DIGITS:
        if x > _MAX // 10:
            return None
        x = x * 10 + s[i] - 48
        if x > _MAX:
            return None
        i += 1
    return x, s[i:]


def _leading_fraction(s: bytes) -> tuple[int, float, bytes]:
    x, scale, i, overflow = 0, 1.0, 0, False
    while i < len(s) and s[i] in _DIGITS:
        if not overflow:
            if x > (_MAX - 1) // 10:
                overflow = True
            else:
                y = x * 10 + s[i] - 48
                if y > _MAX:
                    overflow = True
                else:
                    x, scale = y, scale * 10
        i += 1
    return x, scale, s[i:]


def parse_go_duration(text: str) -> int:
    """Return nanoseconds for ``text`` exactly as Go's ``time.ParseDuration`` does, or raise."""
    orig = text.encode("utf-8")
    s = orig
    invalid = DurationError("time: invalid duration " + _quote(orig))
    neg = False
    if s and s[0] in b"-+":
        neg = s[0] == 45
        s = s[1:]
    if s == b"0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not (s[0] == 46 or s[0] in _DIGITS):
            raise invalid
        before = len(s)
        lead = _leading_int(s)
        if lead is None:
            raise invalid
        v, s = lead
        pre = before != len(s)
        f, scale, post = 0, 1.0, False
        if s and s[0] == 46:
            s = s[1:]
            before = len(s)
            f, scale, s = _leading_fraction(s)
            post = before != len(s)
        if not pre and not post:
            raise invalid
        i = 0
        while i < len(s) and not (s[i] == 46 or s[i] in _DIGITS):
            i += 1
        if i == 0:
            raise DurationError("time: missing unit in duration " + _quote(orig))
        unit_raw, s = s[:i], s[i:]
        unit = _UNITS.get(unit_raw)
        if unit is None:
            raise DurationError(f"time: unknown unit {_quote(unit_raw)} in duration {_quote(orig)}")
        if v > _MAX // unit:
            raise invalid
        v *= unit
        if f > 0:
            v += int(float(f) * (float(unit) / scale))
            if v > _MAX:
                raise invalid
        total += v
        if total > _MAX:
            raise invalid
    if neg:
        return -total
    if total > _MAX - 1:
        raise invalid
    return total


class GoDuration(NamedTuple):
    """A parsed duration: the text as written and its int64 nanoseconds."""

    text: str
    nanoseconds: int

    @property
    def seconds(self) -> int:
        """Proto ``Duration.seconds``: whole seconds truncated toward zero (what Envoy reads)."""
        whole = abs(self.nanoseconds) // _S
        return whole if self.nanoseconds >= 0 else -whole

    @property
    def nanos(self) -> int:
        """Proto ``Duration.nanos``: the remainder, with the sign of the duration."""
        return self.nanoseconds - self.seconds * _S
