"""Key lifecycle for signed session values: create, rotate with overlap, prune (pure).

Defaults (``KeyPolicy``), chosen for a security review:

- 256-bit secrets from the OS CSPRNG (the caller passes ``secrets.token_bytes(32)``);
- a new key is published ``propagation`` (5 min) before it starts signing, so every gateway
  replica can verify it before any replica signs with it;
- the previous key keeps verifying for ``overlap`` (48 h) after the new one starts signing: at
  least twice the default validity window of a value (24 h, ``decide.DEFAULT_WINDOW``), and
  active sessions are re-signed with the new key on their next request anyway;
- rotation every ``every`` (30 days); retired keys are pruned.

The very first key signs at once (nothing can have been signed before it exists).

Invariant: after ``rotate``, every value signed before the rotation still verifies until
``now + propagation + overlap``, and exactly one key signs at any time from the first key on.
"""

from __future__ import annotations

import base64
from typing import NamedTuple

from tether.models.session_keys import SessionKey, SessionKeyRing

from .signing import KeyRing, SigningKey

DAY = 86_400


class KeyPolicy(NamedTuple):
    every: int = 30 * DAY
    propagation: int = 300
    overlap: int = 2 * DAY


DEFAULT_POLICY = KeyPolicy()


def key_id_for(now: int, taken: frozenset[str] = frozenset()) -> str:
    """A readable key id from the creation time (``k`` + Unix seconds), unique among ``taken``."""
    key_id, n = f"k{now}", 1
    while key_id in taken:
        key_id, n = f"k{now}-{n}", n + 1
    return key_id


def new_keyring(now: int, secret: bytes) -> SessionKeyRing:
    """A ring with one key that signs from ``now``."""
    return SessionKeyRing(keys=(_key(key_id_for(now), secret, now),))


def _key(key_id: str, secret: bytes, activates_at: int, retires_at: int | None = None):
    return SessionKey(
        id=key_id,
        secret=base64.b64encode(secret).decode(),
        activatesAt=activates_at,
        retiresAt=retires_at,
    )


def rotate(
    ring: SessionKeyRing, now: int, secret: bytes, policy: KeyPolicy = DEFAULT_POLICY
) -> SessionKeyRing:
    """Add a key signing from ``now + propagation``; open keys retire ``overlap`` after that."""
    start = now + policy.propagation
    retire = start + policy.overlap
    kept = tuple(
        k.model_copy(update={"retires_at": retire}) if k.retires_at is None else k
        for k in ring.keys
    )
    key_id = key_id_for(now, frozenset(k.id for k in ring.keys))
    return SessionKeyRing(keys=(*kept, _key(key_id, secret, start)))


def prune(ring: SessionKeyRing, now: int) -> SessionKeyRing:
    """Drop keys retired at ``now``; the ring is returned unchanged if nothing is retired."""
    kept = tuple(k for k in ring.keys if k.retires_at is None or now < k.retires_at)
    return ring if len(kept) == len(ring.keys) else SessionKeyRing(keys=kept)


def due_for_rotation(ring: SessionKeyRing, now: int, policy: KeyPolicy = DEFAULT_POLICY) -> bool:
    """True when the newest key started signing at least ``every`` seconds ago."""
    newest = max(k.activates_at for k in ring.keys)
    return now - newest >= policy.every


def to_keyring(ring: SessionKeyRing) -> KeyRing:
    """The gateway's in-memory ring (decoded secrets)."""
    return KeyRing(
        SigningKey(k.id, k.secret_bytes, k.activates_at, k.retires_at) for k in ring.keys
    )
