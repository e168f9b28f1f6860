"""One request/response exchange: what the proxy tracks per request.

It doubles as the ``RequestView`` the hashing layer reads (``path``, ``remote_ip``,
``header_values``) and carries Envoy's ``add_cookie`` callback. Invariant: only the client
connection that parsed it and the upstream connection relaying it ever mutate it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .proxy import ClientProtocol


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

    def __init__(self, client: ClientProtocol, path: bytes) -> None:
        self.client = client
        self.path = path
        self.headers: list[tuple[bytes, bytes, bytes]] = []
        self.cookies: list[bytes] = []
        self.pending: list[bytes] = []
        self.remote_ip = client.peer_ip

    # RequestView (tether.hashing.keys.RequestView)
    def header_values(self, lname: bytes) -> list[bytes]:
        """All values of a request header by lower-case name, in arrival order."""
        if lname == b"cookie":
            return self.cookies
        if lname == b"x-forwarded-for":
            return [self.xff] if self.xff is not None else []
        return [v for ln, _, v in self.headers if ln == lname]

    def add_cookie(self, key) -> str:
        """Envoy's router callback: generate this connection's cookie value, queue Set-Cookie."""
        value = self.client.cookie_value()
        self.generated = value
        self.set_cookie = key.set_cookie(value).encode("latin-1")
        return value
