"""Table documents with a session block and key ring files, for the gateway's session tests."""

from __future__ import annotations

import json
import os
import time

from tether.hashing.session import (
    KeyRing,
    SessionSpec,
    b64decode,
    issue,
    parse_cookie,
    spec_from_model,
    to_keyring,
)
from tether.models import session_keys as sk
from tether.models import table as t

from .docs import make_document

NOW = int(time.time())


def session_policy(kind="cookie", name="shop", **over) -> t.SessionPolicy:
    """A session block as the operator writes it from an Istio label (or a policy)."""
    base = dict(
        kind=kind,
        name=name,
        path="/" if kind == "cookie" else "",
        source=t.SessionSource(kind="Service", namespace="default", name="httpbin"),
    )
    return t.SessionPolicy(**{**base, **over})  # fmt: skip


def session_document(backends, session: t.SessionPolicy, draining=(), algorithm=None, **kw):
    """A v2 document over ``backends`` (``draining`` ones terminating but serving)."""
    eps = [("127.0.0.1", b.port, b.name, b.name not in draining) for b in backends]
    doc = make_document(eps, algorithm=algorithm, **kw)
    endpoints = tuple(
        e.model_copy(update={"serving": True}) if e.pod in draining else e for e in doc.endpoints
    )
    return doc.model_copy(
        update={"schema_version": 2, "session": session, "endpoints": endpoints, "checksum": None}
    ).sealed()


def keyring_json(*keys: tuple[str, bytes, int, int | None]) -> str:
    """``keyring.json`` holding (id, secret, activatesAt, retiresAt) keys."""
    import base64

    ring = {
        "version": 1,
        "keys": [
            {"id": i, "secret": base64.b64encode(s).decode(), "activatesAt": a, "retiresAt": r}
            for i, s, a, r in keys
        ],
    }
    return json.dumps(ring)


def write_keys(path: str, text: str) -> None:
    """Replace the key file atomically (the gateway polls it)."""
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)


def ring_of(text: str) -> KeyRing:
    return to_keyring(sk.loads_keyring(text))


def spec_of(doc: t.TableDocument) -> SessionSpec:
    return spec_from_model(doc.session, doc.service.namespace, doc.service.name)


def signed(doc, address: str, ring_text: str, now: int = NOW, previous=None) -> str:
    """A value tether would issue for ``address`` (as the Cookie header's value)."""
    value, _ = issue(spec_of(doc), address, ring_of(ring_text), now, previous)
    return value


def fields_of(set_cookie: str):
    """The decoded fields of a Set-Cookie's session value."""
    value = set_cookie.split(";", 1)[0].split("=", 1)[1].strip('"')
    return parse_cookie(b64decode(value))
