"""One request/response exchange: what the proxy tracks per request.

It doubles as the ``RequestView`` the hashing layer reads (``path``, ``remote_ip``,
``header_values``) and carries Envoy's ``add_cookie`` callback. Invariant: only the client
connection that parsed it and the upstream connection relaying it ever mutate it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .http import H_COOKIE, H_EXPECT, H_HOST, REQUEST_HEADER_CLASS
from .wire import header_values as raw_header_values

if TYPE_CHECKING:
    from .proxy import ClientProtocol

# Request headers that are not forwarded as received (hop-by-hop, X-Forwarded-Proto, framing):
# a hash policy never sees them, whichever path parsed the head.
_NOT_FORWARDED = frozenset(
    name for name, kind in REQUEST_HEADER_CLASS.items() if kind not in (H_HOST, H_COOKIE, H_EXPECT)
)


class Exchange:
    """One request/response; also the ``RequestView`` the hashing layer reads."""

    # Class-level defaults: a new exchange only stores what differs (cheaper than 40 slots).
    host = xff = xfp = conn_drop = None
    chunked = head_done = body_done = http10 = is_head = saw_connection = False
    keep_alive = True
    method = b""
    route = target = upstream = head = tried = None
    index = -1
    hash = rand = key_text = generated = set_cookie = None
    attempt = attempts = body_size = pending_size = status = resp_bytes = 0
    t0 = t_up = 0.0
    resp_started = finished = local = stale_retry = False
    error = ""
    # Parsed by llhttp callbacks: (lname, name, value) of forwarded headers; else None and the
    # fast path's raw head ``raw[raw_start:raw_end]`` answers ``header_values``.
    headers: list[tuple[bytes, bytes, bytes]] | None = None
    raw: bytes | None = None
    raw_start = raw_end = 0
    cookies: list[bytes] | tuple[bytes, ...] = ()
    pending: list[bytes] = ()  # type: ignore[assignment]  # request bytes not yet sent upstream

    def __init__(self, client: ClientProtocol, path: bytes) -> None:
        self.client = client
        self.path = path
        self.remote_ip = client.peer_ip

    # RequestView (tether.hashing.keys.RequestView)
    def header_values(self, lname: bytes) -> list[bytes]:
        """All values of a request header by lower-case name, in arrival order."""
        if lname == b"cookie":
            return self.cookies
        if lname == b"x-forwarded-for":
            return [self.xff] if self.xff is not None else []
        headers = self.headers
        if headers is None:
            if self.raw is None or lname in _NOT_FORWARDED:
                return []
            return raw_header_values(self.raw, self.raw_start, self.raw_end, lname)
        return [v for ln, _, v in headers if ln == lname]

    def add_cookie(self, key) -> str:
        """Envoy's router callback: generate this connection's cookie value, queue Set-Cookie."""
        value = self.client.cookie_value()
        self.generated = value
        self.set_cookie = key.set_cookie(value).encode("latin-1")
        return value
