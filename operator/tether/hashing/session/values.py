"""Envoy's stateful-session values: cookie and header state, path rules, Set-Cookie.

Transcribed from Envoy's ``envoy.http.stateful_session.cookie`` and ``...header`` extensions:

- cookie state: the value is ``base64(envoy.Cookie{address, expires})``; ``expires`` is set only
  when the ttl is non-zero. Reading: an empty value is absent; a value whose base64 is not
  canonical decodes to b"" (→ absent); a proto with an empty address is absent; a non-zero
  ``expires`` earlier than now (``now > expires``) is absent; bytes that are not a protobuf
  message are the legacy plain ``ip:port`` form.
- header state: the value is ``base64(ip:port)``, read back the same way (no proto).
- the cookie state acts only on requests whose path matches the cookie path; its Set-Cookie is
  ``hashing.keys.format_set_cookie`` (Envoy's ``makeSetCookieValue``, as for the hash cookie).

One deliberate difference: Envoy computes ``expires`` from its per-process monotonic clock;
tether writes and compares wall-clock Unix seconds (``now`` is always passed in), so gateway
replicas and restarts agree. An unsigned value whose ``expires`` is below ``MONOTONIC_LIMIT`` can
only be an Envoy monotonic reading (a machine up for more than 31 years would be needed to pass
it); tether cannot judge such a deadline and keeps the session (compat reading).
"""

from __future__ import annotations

from collections.abc import Sequence

from .wire import CookieFields, b64decode, b64encode, encode_cookie, parse_cookie

MONOTONIC_LIMIT = 1_000_000_000  # 2001-09-09 in Unix seconds


def path_matches(cookie_path: str, request_path: str | bytes) -> bool:
    """Envoy's cookie path rule for ``:path`` (query string included).

    Empty or "/" matches every request; a path ending in "/" matches by prefix; any other path
    matches itself, or itself followed by "/", "?" or "#".
    """
    if not cookie_path or cookie_path == "/":
        return True
    path = request_path.decode("latin-1") if isinstance(request_path, bytes) else request_path
    if not path.startswith(cookie_path):
        return False
    if cookie_path.endswith("/") or len(path) == len(cookie_path):
        return True
    return path[len(cookie_path)] in "/?#"


def encode_envoy_cookie(address: str, expires: int = 0) -> str:
    """The cookie value Envoy writes: base64 of ``envoy.Cookie{address, expires}``."""
    return b64encode(encode_cookie(CookieFields(address, expires)))


def encode_legacy_cookie(address: str) -> str:
    """The pre-proto value (Envoy's runtime flag off): base64 of the plain ``ip:port``."""
    return b64encode(address.encode("utf-8"))


encode_header = encode_legacy_cookie  # header state: base64(ip:port), never a proto


def read_cookie(value: str | bytes | None) -> CookieFields | None:
    """Decode a cookie value as Envoy does, without judging expiry; None = no session value.

    A legacy plain value comes back as ``CookieFields(address=<decoded text>)``.
    """
    if not value:
        return None
    decoded = b64decode(value)
    fields = parse_cookie(decoded)
    if fields is None:
        address = decoded.decode("utf-8", "surrogateescape")
        return CookieFields(address) if address else None
    return fields if fields.address else None


def envoy_cookie_address(value: str | bytes | None, now: int) -> str | None:
    """Envoy's ``parseAddress`` for the cookie state, with ``now`` in wall-clock seconds."""
    fields = read_cookie(value)
    if fields is None:
        return None
    if MONOTONIC_LIMIT <= fields.expires < now:
        return None
    return fields.address


def read_header(values: Sequence[str | bytes]) -> str | None:
    """Envoy's header state: the first value, base64-decoded; None when absent or undecodable."""
    if not values:
        return None
    decoded = b64decode(values[0])
    return decoded.decode("utf-8", "surrogateescape") if decoded else None
