"""The session-signing keys, as stored in a Secret (operator → gateways).

Secret ``tether-session-keys`` in the operator's namespace, key ``keyring.json``: one JSON
object ``{"version": 1, "keys": [{"id", "secret", "activatesAt", "retiresAt"}]}`` where
``secret`` is standard base64 of at least 32 random bytes and the times are wall-clock Unix
seconds (``retiresAt`` null = open-ended). Keys never appear in table documents (ConfigMaps).

Invariant: ``loads_keyring`` returns a ring with unique ids and decodable secrets of at least 32
bytes, or raises ``KeyRingError``; ``dumps_keyring(loads_keyring(t))`` is canonical.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SECRET_NAME = "tether-session-keys"
SECRET_KEY = "keyring.json"
MIN_SECRET_BYTES = 32


class KeyRingError(ValueError):
    """A keyring that must not be used (the gateway keeps its previous one)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SessionKey(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,32}$")
    secret: str
    activates_at: int = Field(alias="activatesAt", ge=0)
    retires_at: int | None = Field(default=None, alias="retiresAt", ge=0)

    @property
    def secret_bytes(self) -> bytes:
        """The decoded secret (validated on construction)."""
        return base64.b64decode(self.secret, validate=True)

    @model_validator(mode="after")
    def _secret_ok(self) -> SessionKey:
        try:
            raw = base64.b64decode(self.secret, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"key {self.id}: secret is not base64") from None
        if len(raw) < MIN_SECRET_BYTES:
            raise ValueError(f"key {self.id}: secret must be at least {MIN_SECRET_BYTES} bytes")
        return self


class SessionKeyRing(_Model):
    version: Literal[1] = 1
    keys: tuple[SessionKey, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> SessionKeyRing:
        ids = [k.id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise ValueError("key ids must be unique")
        return self


def loads_keyring(text: str | bytes) -> SessionKeyRing:
    """Parse and check ``keyring.json``; raise KeyRingError if it must not be used."""
    try:
        return SessionKeyRing.model_validate_json(text)
    except ValidationError as exc:
        raise KeyRingError(f"invalid keyring: {exc}") from None


def dumps_keyring(ring: SessionKeyRing) -> str:
    """Canonical JSON (sorted keys, no spaces, by alias)."""
    body = ring.model_dump(mode="json", by_alias=True)
    return json.dumps(body, sort_keys=True, separators=(",", ":"))
