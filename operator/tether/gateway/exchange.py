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
NOT_FORWARDED = frozenset(
    name for name, kind in REQUEST_HEADER_CLASS.items() if kind not in (H_HOST, H_COOKIE, H_EXPECT)
)


class Exchange:
    """One request/response; also the ``RequestView`` the hashing layer reads."""

    # Every field is a slot, set in __init__ (the native lane fills the same slots directly).
    __slots__ = (
        "attempt",  # Envoy retry attempt of the chosen host
        "attempts",  # upstreams tried
        "body_done",  # the request (head and body) has been received completely
        "body_size",
        "chunked",  # request body is chunked
        "client",
        "conn_drop",  # header names listed in the request's Connection header
        "cookies",  # Cookie header values
        "error",  # why the gateway answered itself ("" otherwise)
        "extra_lines",  # response header lines the gateway adds besides Set-Cookie (sessions)
        "finished",
        "generated",  # generated affinity cookie value, or None
        "hash",  # the request's affinity hash, or None
        "head",  # the request head as sent upstream
        "head_done",
        "headers",  # slow path: (lname, name, value) of forwarded headers; fast path: None
        "host",
        "http10",
        "index",  # index of target in route.targets while counted in route.active, else -1
        "is_head",
        "keep_alive",
        "key_text",
        "local",  # answered by the gateway itself
        "method",
        "path",
        "pending",  # request bytes not yet sent upstream
        "pending_size",
        "rand",
        "raw",  # fast path: the read buffer holding the head raw[raw_start:raw_end]
        "raw_end",
        "raw_start",
        "remote_ip",
        "resp_bytes",  # response body bytes relayed
        "resp_drop",  # lower-case name of an upstream response header to drop, or None
        "resp_started",
        "route",
        "saw_connection",
        "session",  # the session decision (sessions.Decision), None without sessions
        "session_reading",  # the judged session value it came from
        "set_cookie",
        "stale_retry",
        "status",
        "t0",  # head complete (perf_counter)
        "t_up",  # sent upstream (perf_counter)
        "target",
        "tried",
        "upgrade",  # the Upgrade value to forward (a protocol switch may follow), else None
        "upstream",
        "where",  # the access log's route/target members when they differ from the target's
        "xff",
        "xfp",
    )

    def __init__(self, client: ClientProtocol, path: bytes) -> None:
        self.client = client
        self.path = path
        self.remote_ip = client.peer_ip
        self.host = self.xff = self.xfp = self.conn_drop = None
        self.chunked = self.head_done = self.body_done = self.http10 = False
        self.is_head = self.saw_connection = False
        self.keep_alive = True
        self.method = b""
        self.route = self.target = self.upstream = self.head = self.tried = self.upgrade = None
        self.index = -1
        self.hash = self.rand = self.key_text = self.generated = self.set_cookie = None
        self.session = self.session_reading = self.extra_lines = self.resp_drop = None
        self.where = None
        self.attempt = self.attempts = self.body_size = self.pending_size = 0
        self.status = self.resp_bytes = 0
        self.t0 = self.t_up = 0.0
        self.resp_started = self.finished = self.local = self.stale_retry = False
        self.error = ""
        self.headers: list[tuple[bytes, bytes, bytes]] | None = None
        self.raw: bytes | None = None
        self.raw_start = self.raw_end = 0
        self.cookies: list[bytes] | tuple[bytes, ...] = ()
        self.pending: list[bytes] | tuple[bytes, ...] = ()

    # RequestView (tether.hashing.keys.RequestView)
    def header_values(self, lname: bytes) -> list[bytes]:
        """All values of a request header by lower-case name, in arrival order."""
        if lname == b"cookie":
            return self.cookies
        if lname == b"x-forwarded-for":
            return [self.xff] if self.xff is not None else []
        headers = self.headers
        if headers is None:
            if self.raw is None or lname in NOT_FORWARDED:
                return []
            return raw_header_values(self.raw, self.raw_start, self.raw_end, lname)
        return [v for ln, _, v in headers if ln == lname]

    def add_cookie(self, key) -> str:
        """Envoy's router callback: generate this connection's cookie value, queue Set-Cookie."""
        value = self.client.cookie_value()
        self.generated = value
        text = key.set_cookie(value)
        if self.client.tls and not _has_secure(key):
            text += "; Secure"  # a cookie set over TLS never travels in clear text
        self.set_cookie = text.encode("latin-1")
        return value


def _has_secure(key) -> bool:
    return any(name.lower() == "secure" for name, _ in key.attributes)


class _Nobody:
    peer_ip = ""


def exchange_template() -> Exchange:
    """An exchange with every field at its default (the native lane starts from a copy)."""
    ex = Exchange.__new__(Exchange)
    Exchange.__init__(ex, _Nobody, b"")  # type: ignore[arg-type]
    ex.client = None  # type: ignore[assignment]
    return ex
