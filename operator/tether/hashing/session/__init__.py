"""Hard affinity (persistent sessions): Envoy's stateful-session values, signed values, drain.

Pure: no network, no Kubernetes. Spec: ``shared/reference/stateful-sessions.md`` and Envoy's
``source/extensions/http/stateful_session/{cookie,header}``.

Envoy's values (``wire``, ``values``)::

    encode_envoy_cookie(address, expires=0) -> str     # base64(envoy.Cookie{address, expires})
    encode_legacy_cookie(address) / encode_header(address) -> str   # base64("ip:port")
    read_cookie(value) -> CookieFields | None           # Envoy's parse, legacy fallback
    envoy_cookie_address(value, now) -> str | None      # + expiry (wall clock)
    read_header(values) -> str | None
    path_matches(cookie_path, request_path) -> bool      # Envoy's cookie path rules
    b64decode(text) -> bytes                             # Envoy Base64::decode (b"" if invalid)
    parse_cookie(bytes) / encode_cookie(CookieFields)    # protobuf wire format, C++ semantics

Signed values (``signing``, ``keyring``)::

    SigningKey(id, secret, activates_at, retires_at) ; KeyRing(keys)
    sign(fields, key, context) ; verify(fields, ring, context, now) -> "valid" | ...
    new_keyring(now, secret) ; rotate(ring, now, secret) ; prune ; due_for_rotation ; to_keyring

Per request (``config``, ``decide``)::

    spec_from_model(models.table.SessionPolicy, namespace, service) -> SessionSpec
    endpoint_states(doc.endpoints, spec.drain) -> {authority: READY | DRAINING}
    read_cookie_value(spec, value, ring, now) / read_header_value(spec, values, ring, now)
        -> Reading(status, address, refresh, fields)
    decide(reading, states, spec.strict) -> Decision(action honour|pick|reject, address, write,
                                                     reason)
    needs_write(decision, used_address) ; issue(spec, address, ring, now, previous)
    response_header(spec, value, expires, now) -> (name, value)

Consistent-hash drain (``drain``)::

    DrainStack.start(TableView(pick, ready)) ; .advance(table, draining) ; .pick(h)
"""

from .config import DEFAULT_WINDOW, SessionSpec, spec_from_model
from .decide import (
    DRAINING,
    HONOUR,
    PICK,
    READY,
    REJECT,
    REJECTED,
    Decision,
    Reading,
    decide,
    endpoint_states,
    issue,
    needs_write,
    read_cookie_value,
    read_header_value,
    response_header,
)
from .drain import DrainStack, TableView
from .keyring import KeyPolicy, due_for_rotation, new_keyring, prune, rotate, to_keyring
from .signing import KeyRing, SigningKey, session_context, sign, verify
from .values import (
    encode_envoy_cookie,
    encode_header,
    encode_legacy_cookie,
    envoy_cookie_address,
    path_matches,
    read_cookie,
    read_header,
)
from .wire import CookieFields, b64decode, b64encode, encode_cookie, parse_cookie

__all__ = [
    "DEFAULT_WINDOW",
    "DRAINING",
    "HONOUR",
    "PICK",
    "READY",
    "REJECT",
    "REJECTED",
    "CookieFields",
    "Decision",
    "DrainStack",
    "KeyPolicy",
    "KeyRing",
    "Reading",
    "SessionSpec",
    "SigningKey",
    "TableView",
    "b64decode",
    "b64encode",
    "decide",
    "due_for_rotation",
    "encode_cookie",
    "encode_envoy_cookie",
    "encode_header",
    "encode_legacy_cookie",
    "endpoint_states",
    "envoy_cookie_address",
    "issue",
    "needs_write",
    "new_keyring",
    "parse_cookie",
    "path_matches",
    "prune",
    "read_cookie",
    "read_cookie_value",
    "read_header",
    "read_header_value",
    "response_header",
    "rotate",
    "session_context",
    "sign",
    "spec_from_model",
    "to_keyring",
    "verify",
]
