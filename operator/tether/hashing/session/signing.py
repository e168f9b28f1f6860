"""Signed session values: HMAC-SHA-256 over the address and wall-clock deadlines.

A signed value is an ``envoy.Cookie`` carrying tether's extra fields (``wire``): ``valid_until``,
``key_id`` and ``mac``. The tag is HMAC-SHA-256, truncated to its first 128 bits (RFC 2104 §5
allows truncation to half the output; 128 bits is the usual floor, as for AES-GCM tags), over::

    "tether-session-v1" ‖ lp(context) ‖ lp(key_id) ‖ lp(address)
                        ‖ u64be(expires) ‖ u64be(valid_until)

with ``lp(x) = u32be(len(x)) ‖ x``. ``context`` names the Service and the session name
(``session_context``), so a value minted for one Service is worthless for another even when both
select the same pods. Tags are compared with ``hmac.compare_digest`` (constant time).

Keys: a ``KeyRing`` holds ``SigningKey``s (id, ≥ 32-byte secret, ``activates_at``,
``retires_at``, wall-clock seconds). The signing key is the newest key already active and not
retired; a value verifies with any key that is not retired yet, so after a rotation the previous
key keeps verifying for the overlap window (``keyring.rotate``).

Invariants: ``verify(sign(f, k, c), ring, c, now) == "valid"`` whenever ``k`` is in ``ring`` and
not retired at ``now``; changing any signed field, the key id, the context or the tag gives
another answer than "valid" (except with probability 2^-128).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from .wire import CookieFields

MAC_BYTES = 16
MIN_SECRET_BYTES = 32
_DOMAIN = b"tether-session-v1"
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")
_U32 = struct.Struct(">I")
_TAIL = struct.Struct(">QQ")

VALID, UNSIGNED, UNKNOWN_KEY, BAD_SIGNATURE = "valid", "unsigned", "unknown-key", "bad-signature"


def session_context(namespace: str, service: str, session_name: str) -> bytes:
    """The MAC context of one Service's sessions (values are not portable across Services)."""
    return f"{namespace}/{service}/{session_name}".encode()


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One HMAC key: signs from ``activates_at``, verifies until ``retires_at`` (None = open)."""

    id: str
    secret: bytes = field(repr=False)
    activates_at: int
    retires_at: int | None = None
    _keyed: hmac.HMAC = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.id):
            raise ValueError(f"key id {self.id!r} must be 1-32 of [A-Za-z0-9._-]")
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(f"key {self.id}: secret must be at least {MIN_SECRET_BYTES} bytes")
        # The key schedule (padded inner/outer states) is computed once per key, not per value.
        object.__setattr__(self, "_keyed", hmac.new(self.secret, digestmod=hashlib.sha256))

    def mac(self, message: bytes) -> bytes:
        """The truncated HMAC-SHA-256 tag of ``message`` under this key."""
        keyed = self._keyed.copy()
        keyed.update(message)
        return keyed.digest()[:MAC_BYTES]

    def verifies_at(self, now: int) -> bool:
        """True while the key is not retired (it also verifies before it starts signing)."""
        return self.retires_at is None or now < self.retires_at


class KeyRing:
    """The keys a gateway signs and verifies with; immutable once built."""

    __slots__ = ("_by_id", "keys")

    def __init__(self, keys: Iterable[SigningKey]) -> None:
        self.keys = tuple(sorted(keys, key=lambda k: (k.activates_at, k.id)))
        self._by_id = {k.id: k for k in self.keys}
        if len(self._by_id) != len(self.keys):
            raise ValueError("key ids must be unique")

    def signing_key(self, now: int) -> SigningKey | None:
        """The newest key with ``activates_at <= now`` that is not retired, or None."""
        for key in reversed(self.keys):
            if key.activates_at <= now and key.verifies_at(now):
                return key
        return None

    def verifying_key(self, key_id: str, now: int) -> SigningKey | None:
        """The key named ``key_id`` if it still verifies at ``now``."""
        key = self._by_id.get(key_id)
        return key if key is not None and key.verifies_at(now) else None


def _lp(raw: bytes) -> bytes:
    return _U32.pack(len(raw)) + raw


@functools.lru_cache(maxsize=1024)
def _prefix(context: bytes, key_id: str) -> bytes:
    return _DOMAIN + _lp(context) + _lp(key_id.encode())


def mac_message(context: bytes, key_id: str, address: str, expires: int, valid_until: int) -> bytes:
    """The canonical message a tag covers (module docstring)."""
    return (
        _prefix(context, key_id)
        + _lp(address.encode("utf-8", "surrogateescape"))
        + _TAIL.pack(expires, valid_until)
    )


def sign(fields: CookieFields, key: SigningKey, context: bytes) -> CookieFields:
    """``fields`` with ``key_id`` and ``mac`` set for ``key`` (any previous tag replaced)."""
    message = mac_message(context, key.id, fields.address, fields.expires, fields.valid_until)
    return fields._replace(key_id=key.id, mac=key.mac(message))


def verify(fields: CookieFields, ring: KeyRing, context: bytes, now: int) -> str:
    """ "valid", "unsigned" (no tag), "unknown-key" (absent or retired) or "bad-signature"."""
    if not fields.mac:
        return UNSIGNED
    key = ring.verifying_key(fields.key_id, now)
    if key is None:
        return UNKNOWN_KEY
    message = mac_message(context, key.id, fields.address, fields.expires, fields.valid_until)
    return VALID if hmac.compare_digest(key.mac(message), fields.mac) else BAD_SIGNATURE
