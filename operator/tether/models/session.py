"""Persistent-session settings from a Service: Istio's labels and tether's annotations.

Istio (``pilot/pkg/networking/core``, flag ``PILOT_ENABLE_PERSISTENT_SESSION_FILTER``):

``istio.io/persistent-session: <cookie-name>[:<path>]``
    Envoy's cookie state; the name runs to the first ":", the path is the rest ("/" when there
    is no ":"); the ttl is 0 (a session cookie, no expiry in the value). Kubernetes label values
    cannot contain ":" or "/", so on a real cluster the path is always "/".
``istio.io/persistent-session-header: <header-name>``
    Envoy's header state. When both labels are set, the cookie label wins (as in Istio).

tether's annotations on the Service (they also apply to a BackendLBPolicy targeting it):

``tether.dev/session-strict: "true"``
    Envoy's ``strict``: a value naming an endpoint that is gone is answered 503 instead of
    falling back to the soft policy. Default "false".
``tether.dev/session-signing: signed | compat | unsigned``
    ``signed`` (default): only values tether signed are honoured. ``compat``: unsigned Envoy
    values are honoured too and re-issued signed (moving from Istio without losing sessions).
    ``unsigned``: Envoy's value format exactly, readable by Envoy and Istio.
``tether.dev/session-drain: "false"``
    Turn off graceful drain (on by default, as Istio does for persistent sessions: a terminating
    pod that still serves keeps its existing sessions and gets no new ones).

Invariant: the parsers never raise; every unusable value is reported as one message and the
setting is left out (labels) or at its default (annotations).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, NamedTuple

from tether.models.istio_names import go_quote
from tether.models.table import SessionPolicy, SessionSource

COOKIE_LABEL = "istio.io/persistent-session"
HEADER_LABEL = "istio.io/persistent-session-header"
STRICT = "tether.dev/session-strict"
SIGNING = "tether.dev/session-signing"
DRAIN = "tether.dev/session-drain"
SIGNING_MODES = ("signed", "compat", "unsigned")
# Envoy's own messages for an empty name (cookie/config.cc, header/config.cc).
EMPTY_COOKIE = "Cookie key cannot be empty for cookie based stateful sessions"
EMPTY_HEADER = "Header name cannot be empty for header based stateful sessions"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token (= RFC 6265 cookie-name)

SigningMode = Literal["signed", "compat", "unsigned"]


class SessionOptions(NamedTuple):
    """tether's per-Service session options (annotations)."""

    strict: bool = False
    signing: SigningMode = "signed"
    drain: bool = True


def is_token(name: str) -> bool:
    """True if ``name`` is a valid HTTP header name / cookie name (RFC 9110 token)."""
    return _TOKEN.fullmatch(name) is not None


def _flag(annotations: Mapping[str, str], key: str, default: bool, errors: list[str]) -> bool:
    raw = annotations.get(key)
    if raw is None:
        return default
    if raw.strip() in ("true", "false"):
        return raw.strip() == "true"
    errors.append(f'annotation {key} must be "true" or "false", got {go_quote(raw)}')
    return default


def session_options(annotations: Mapping[str, str]) -> tuple[SessionOptions, list[str]]:
    """Read tether's session annotations; unusable values give a message and the default."""
    errors: list[str] = []
    strict = _flag(annotations, STRICT, False, errors)
    drain = _flag(annotations, DRAIN, True, errors)
    signing: SigningMode = "signed"
    raw = annotations.get(SIGNING)
    if raw is not None:
        if raw.strip() in SIGNING_MODES:
            signing = raw.strip()  # type: ignore[assignment]
        else:
            allowed = '"signed", "compat" or "unsigned"'
            errors.append(f"annotation {SIGNING} must be {allowed}, got {go_quote(raw)}")
    return SessionOptions(strict, signing, drain), errors


def session_from_labels(
    namespace: str, name: str, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> tuple[SessionPolicy | None, list[str]]:
    """Istio's persistent-session labels → the session block (None when neither label is set).

    An empty label value means "not set", as in Istio; an empty name is refused with Envoy's
    message (Envoy would refuse the whole listener).
    """
    options, errors = session_options(annotations)
    cookie, header = labels.get(COOKIE_LABEL, ""), labels.get(HEADER_LABEL, "")
    source = SessionSource(kind="Service", namespace=namespace, name=name)
    common = dict(strict=options.strict, signing=options.signing, drain=options.drain)
    if cookie:
        cookie_name, found, path = cookie.partition(":")
        if not cookie_name:
            return None, [*errors, f"label {COOKIE_LABEL}: {EMPTY_COOKIE}"]
        session = SessionPolicy(
            kind="cookie", name=cookie_name, path=path if found else "/", source=source, **common
        )
        return session, errors
    if header:
        return SessionPolicy(kind="header", name=header, source=source, **common), errors
    return None, errors
