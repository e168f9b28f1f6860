"""HTTP/1.1 Upgrade (WebSocket): which requests may switch protocols, and the client side of it.

Invariants:
- Only a request that llhttp reads as an upgrade (``Upgrade`` plus ``Connection: upgrade``)
  keeps its Upgrade: HTTP/1.1, no body, and every protocol it offers listed in
  ``--upgrade-protocols`` (``websocket`` by default; ``h2c`` never). It passes the same head
  checks, limits, Connection rules and route/affinity pick as any request. Any other Upgrade is
  dropped and the request is proxied as a plain one, on a connection that stays HTTP.
- Nothing the client sends after an upgrade request is parsed before its answer is known: the
  bytes wait in ``stash`` with reading paused (``HOLD_UPGRADE``). After a ``101`` they go to the
  upstream as the first tunnel bytes (tunnel.py); after any other answer they are parsed as
  the next requests of the same HTTP connection.
- A chunked request with an upgrade is refused (400): llhttp stops at its head, so nobody
  could frame its body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from httptools import HttpRequestParser

from .flow import HOLD_UPGRADE, ClientFlow
from .http import connection_tokens
from .request import Refuse, declared_length

if TYPE_CHECKING:
    from .exchange import Exchange


def offers_only(value: bytes | None, allowed: frozenset[bytes]) -> bool:
    """True when the Upgrade ``value`` lists protocols and each one's name (before any
    ``/version``) is in ``allowed`` (lower-case)."""
    if not value:
        return False
    names = [token.split(b"/", 1)[0] for token in connection_tokens(value)]
    return bool(names) and all(name in allowed for name in names)


class UpgradeFlow(ClientFlow):
    """The Upgrade half of ``ClientProtocol`` (see module docstring)."""

    __slots__ = ()

    def offer_upgrade(self, ex: Exchange) -> None:
        """llhttp reads ``ex`` as an upgrade request: keep its Upgrade only if it may switch."""
        if ex.chunked:
            raise Refuse(400, "chunked request with Upgrade")
        length = declared_length(ex.headers)
        gw = self.gw
        if length or ex.http10 or not offers_only(ex.upgrade, gw.config.upgrade_protocols):
            ex.upgrade = None  # proxied as a plain request; the gateway frames its body
        elif gw.draining:
            raise Refuse(503, "the gateway is shutting down: no new tunnels")
        self.upgrading = ex
        self.upgrade_body = length

    def upgrade_paused(self, data: bytes, offset: int) -> None:
        """llhttp stopped after the head of ``self.upgrading``; ``data[offset:]`` is not HTTP
        yet. A request that may switch waits for its answer; any other continues as HTTP."""
        ex = self.upgrading
        if ex is None:  # llhttp saw an upgrade that on_headers_complete did not
            self._reject(400, "unexpected protocol upgrade")
            return
        self.parser = HttpRequestParser(self)  # llhttp cannot resume after an upgrade
        self.in_msg = False
        self.stash = data[offset:]
        self._hold(HOLD_UPGRADE)
        if ex.upgrade is not None and not ex.finished:
            return  # switched() or, after any other answer, _end -> resume_http
        self.upgrading = None
        if self.upgrade_body and not ex.finished:
            ex.body_done = False  # llhttp left its body to us: framed by its Content-Length
            self.body_left = self.upgrade_body
            self.body_ex = ex
            self.deadline = self.gw.clock + self.gw.config.idle_timeout
        elif not ex.keep_alive:
            self.ignore = True
        self.gw.loop.call_soon(self.resume_http)

    def upgrade_answered(self, ex: Exchange) -> None:
        """``ex`` (an upgrade request) ended without switching protocols: HTTP goes on."""
        if ex is self.upgrading and self.read_paused & HOLD_UPGRADE:
            self.upgrading = None
            self.gw.loop.call_soon(self.resume_http)

    def resume_http(self) -> None:
        """Parse what the client sent after an upgrade request that did not switch."""
        rest = self.stash
        self.stash = None
        if self.closed:
            return
        if rest and not self.ignore:
            self.data_received(rest)  # the native lane or the Python method, as for any read
        if self.upgrading is None:  # no other upgrade request was read from rest
            self._release(HOLD_UPGRADE)

    def switched(self, ex: Exchange) -> bytes:
        """The upstream answered ``ex`` with 101: the tunnel takes this connection over. The
        exchange is recorded (status 101); its slot in the route's in-flight counts stays
        taken until the tunnel closes. Returns the client bytes that followed the request."""
        rest = self.stash or b""
        self.stash = None
        self.upgrading = None
        ex.finished = True
        ex.upstream = None
        self.gw.record(ex)
        self.active = None
        self.closed = True  # this protocol no longer reads or writes the connection
        self.gw.clients.discard(self)
        return rest
