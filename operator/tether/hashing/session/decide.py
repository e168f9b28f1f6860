"""Hard before soft: read a session value, decide where the request goes, write the next value.

``read_cookie_value`` / ``read_header_value`` judge a value under a ``SessionSpec`` and a key
ring at wall-clock ``now`` and return a ``Reading``:

- ``unsigned`` mode is Envoy's reader (absent, expired or an address), wall-clock expiry;
- ``signed`` mode honours only values whose tag verifies with a key that still verifies;
  anything else is ``malformed`` / ``unsigned`` / ``unknown-key`` / ``bad-signature``
  (``REJECTED``: counted by the gateway, then treated as absent), or ``no-keys`` when the
  gateway has no key ring yet; a signed value expires at ``expires`` (absolute) or
  ``valid_until`` (sliding window) and asks to be re-issued once half its window is used or
  when it was signed by a key that no longer signs;
- ``compat`` judges a value carrying a tag as ``signed`` does and any other value as Envoy does,
  asking to re-issue it signed.

``decide`` maps a reading and the endpoint states to ``honour`` (the named endpoint: ready, or
terminating-but-serving with drain on), ``pick`` (the soft policy chooses among ready
endpoints, and a new value is written) or ``reject`` (strict: 503). As in Envoy, ``strict``
applies only to a valid value that names an unavailable endpoint; an absent, expired or
rejected value always falls back to the soft policy. ``issue`` encodes the value to send.

Invariants: ``honour`` never names an address outside ``states``; a rejected value is never
honoured; ``issue`` output read back at the same ``now`` is ``valid`` for the same address.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ..keys.cookies import format_set_cookie
from .config import SessionSpec
from .signing import BAD_SIGNATURE, UNKNOWN_KEY, UNSIGNED, VALID, KeyRing, sign, verify
from .values import MONOTONIC_LIMIT, encode_envoy_cookie, encode_header, read_cookie
from .wire import CookieFields, b64decode, b64encode, encode_cookie, parse_cookie

ABSENT, EXPIRED, MALFORMED, NO_KEYS = "absent", "expired", "malformed", "no-keys"
REJECTED = frozenset({MALFORMED, UNSIGNED, UNKNOWN_KEY, BAD_SIGNATURE})
READY, DRAINING = 1, 2  # endpoint states; anything else is unavailable
HONOUR, PICK, REJECT = "honour", "pick", "reject"


class Reading(NamedTuple):
    status: str  # VALID, ABSENT, EXPIRED, NO_KEYS or one of REJECTED
    address: str = ""
    refresh: bool = False  # honour, but send a re-issued value
    fields: CookieFields | None = None  # the decoded value (to keep its absolute deadline)


class Decision(NamedTuple):
    action: str  # HONOUR, PICK or REJECT
    address: str  # the honoured (or refused) address; "" for an absent value
    write: bool  # send a value after the response (PICK always; HONOUR when refreshing)
    reason: str  # the reading's status, or why a valid value was not honoured


_ABSENT = Reading(ABSENT)


def endpoint_states(endpoints, drain: bool) -> dict[str, int]:
    """authority → READY or DRAINING, from table-document endpoints (models.table.Endpoint).

    Ready endpoints are READY; terminating endpoints that still serve are DRAINING when drain
    is on; every other endpoint is left out (unavailable).
    """
    states: dict[str, int] = {}
    for ep in endpoints:
        if ep.ready:
            states[ep.authority] = READY
        elif drain and ep.terminating and ep.serving:
            states[ep.authority] = DRAINING
    return states


def _judge_signed(spec: SessionSpec, fields: CookieFields, ring: KeyRing | None, now: int):
    if ring is None:
        return Reading(NO_KEYS)
    verdict = verify(fields, ring, spec.context, now)
    if verdict != VALID:
        return Reading(verdict)
    if not fields.address:
        return Reading(MALFORMED)
    if (fields.expires and now > fields.expires) or (
        fields.valid_until and now > fields.valid_until
    ):
        return Reading(EXPIRED)
    signer = ring.signing_key(now)
    stale = signer is not None and signer.id != fields.key_id
    half_used = fields.valid_until - now < spec.window // 2
    return Reading(VALID, fields.address, stale or half_used, fields)


def _judge_unsigned(spec: SessionSpec, fields: CookieFields | None, now: int) -> Reading:
    if fields is None:
        return _ABSENT
    if MONOTONIC_LIMIT <= fields.expires < now:
        return Reading(EXPIRED)
    return Reading(VALID, fields.address, spec.signing == "compat", fields)


def read_cookie_value(
    spec: SessionSpec, value: str | bytes | None, ring: KeyRing | None, now: int
) -> Reading:
    """Judge the session cookie's value (quotes already stripped, None when absent)."""
    if not value:
        return _ABSENT
    if spec.signing == "unsigned":
        return _judge_unsigned(spec, read_cookie(value), now)
    decoded = b64decode(value)
    fields = parse_cookie(decoded) if decoded else None
    if fields is not None and fields.mac:
        return _judge_signed(spec, fields, ring, now)
    if spec.signing == "compat":
        return _judge_unsigned(spec, read_cookie(value), now)
    return Reading(MALFORMED if fields is None and not decoded else UNSIGNED)


def read_header_value(
    spec: SessionSpec, values: Sequence[str | bytes], ring: KeyRing | None, now: int
) -> Reading:
    """Judge the session header (its first value, as Envoy reads it)."""
    if not values or not values[0]:
        return _ABSENT
    decoded = b64decode(values[0])
    if not decoded:
        return Reading(MALFORMED) if spec.signing == "signed" else _ABSENT
    if spec.signing != "unsigned":
        fields = parse_cookie(decoded)
        if fields is not None and fields.mac:
            return _judge_signed(spec, fields, ring, now)
        if spec.signing == "signed":
            return Reading(UNSIGNED)
    address = decoded.decode("utf-8", "surrogateescape")
    return Reading(VALID, address, spec.signing == "compat")


def decide(reading: Reading, states: Mapping[str, int], strict: bool) -> Decision:
    """Honour the named endpoint, fall back to the soft policy, or refuse (strict)."""
    if reading.status != VALID:
        return Decision(PICK, "", True, reading.status)
    state = states.get(reading.address)
    if state in (READY, DRAINING):
        return Decision(HONOUR, reading.address, reading.refresh, VALID)
    if strict:
        return Decision(REJECT, reading.address, False, "unavailable")
    return Decision(PICK, reading.address, True, "unavailable")


def needs_write(decision: Decision, used: str) -> bool:
    """Envoy's ``onUpdate`` rule: write when asked to, or when another endpoint served."""
    return decision.write or used != decision.address


def issue(
    spec: SessionSpec,
    address: str,
    ring: KeyRing | None,
    now: int,
    previous: CookieFields | None = None,
) -> tuple[str, int] | None:
    """(value, absolute deadline) to send for ``address``; None if it cannot be signed yet.

    A value re-issued for the same address keeps the previous absolute deadline; a new
    address starts a new session (Envoy does the same).
    """
    keep = (
        previous is not None
        and previous.address == address
        and previous.expires >= MONOTONIC_LIMIT  # never carry an Envoy monotonic reading over
    )
    expires = previous.expires if keep else (now + spec.absolute if spec.absolute else 0)
    if spec.signing == "unsigned":
        if spec.kind == "header":
            return encode_header(address), 0
        return encode_envoy_cookie(address, expires), expires
    key = ring.signing_key(now) if ring is not None else None
    if key is None:
        return None
    valid_until = now + spec.window
    if expires:
        valid_until = min(valid_until, expires)
    fields = sign(CookieFields(address, expires, valid_until), key, spec.context)
    return b64encode(encode_cookie(fields)), expires


def response_header(spec: SessionSpec, value: str, expires: int, now: int) -> tuple[str, str]:
    """The response header carrying ``value``: Set-Cookie (Envoy's format) or the header."""
    if spec.kind == "header":
        return spec.name, value
    max_age = spec.max_age
    if max_age and expires:
        max_age = max(1, min(max_age, expires - now))
    return "Set-Cookie", format_set_cookie(spec.name, value, spec.path, max_age, spec.attributes)
