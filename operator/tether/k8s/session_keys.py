"""The session-signing key Secret as the operator reads and writes it.

One Secret, ``tether-session-keys`` in the tables namespace (``models.session_keys``), type
``Opaque``, key ``keyring.json``. The operator watches only that name (a ``metadata.name``
field selector, so RBAC can name it in ``resourceNames``), creates it when it is missing and
replaces it with the live resourceVersion as a precondition (``409 Conflict`` when someone
changed it meanwhile: the watch brings the new state and the operator decides again).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tether.k8s import kopf_io
from tether.models import session_keys as sk
from tether.models import table as t


@dataclass(frozen=True)
class KeySecret:
    """The key Secret as it is now: its resourceVersion and ``keyring.json`` (None: absent or
    not base64)."""

    resource_version: str
    text: str | None


def parse_key_secret(obj: Mapping[str, Any]) -> KeySecret:
    """A Secret dict (list/watch/write response) → KeySecret."""
    meta = obj.get("metadata") or {}
    raw = (obj.get("data") or {}).get(sk.SECRET_KEY)
    text = None
    if isinstance(raw, str):
        try:
            text = base64.b64decode(raw, validate=True).decode()
        except (binascii.Error, ValueError):
            text = None
    return KeySecret(meta.get("resourceVersion") or "", text)


def secret_body(namespace: str, keyring_json: str) -> dict[str, Any]:
    """The exact Secret tether writes for one key ring."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": sk.SECRET_NAME, "namespace": namespace, "labels": dict(t.MANAGED_BY)},
        "data": {sk.SECRET_KEY: base64.b64encode(keyring_json.encode()).decode()},
    }


class KeySecretWriter:
    """Create, or replace conditionally, the key Secret in one namespace."""

    def __init__(self, settings: kopf_io.Settings, namespace: str) -> None:
        self.settings = settings
        self.namespace = namespace

    def _path(self, name: str | None = None) -> str:
        return kopf_io.url(kopf_io.SECRETS, namespace=self.namespace, name=name)

    async def create(self, keyring_json: str) -> dict:
        """Create the Secret; Conflict if it exists (the cache had not seen it yet)."""
        body = secret_body(self.namespace, keyring_json)
        return await kopf_io.request(self.settings, "post", self._path(), body)

    async def replace(self, keyring_json: str, resource_version: str) -> dict:
        """Replace the Secret, only if it is still at ``resource_version`` (else Conflict)."""
        body = secret_body(self.namespace, keyring_json)
        body["metadata"]["resourceVersion"] = resource_version
        return await kopf_io.request(self.settings, "put", self._path(sk.SECRET_NAME), body)
