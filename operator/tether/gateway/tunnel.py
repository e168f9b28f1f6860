"""Tunnels: after ``101 Switching Protocols`` the client and upstream connections relay bytes
both ways, untouched, until one side closes (WebSocket, or any Upgrade the gateway forwards).

Invariants:
- Bytes pass in order and unchanged. The client bytes that followed its upgrade request go
  first to the upstream; the upstream bytes that followed its 101 head follow the head.
- Backpressure both ways: while one side does not take what the gateway holds for it
  (``pause_writing``), the gateway stops reading the other side, so memory per tunnel stays
  within the transports' write-buffer limits.
- A half-close is relayed where the other side can take one (plain TCP): EOF one way keeps
  the other direction open. A TLS side has no half-close: its EOF closes the tunnel.
- Timers (the gateway's sweeper, ``tunnel_idle_timeout``): a side that sent nothing that long
  while the gateway read it closes the tunnel cleanly (buffered bytes flushed, then FIN both
  ways); a side that took none of the bytes held for it that long is cut (reset).
- A tunnel holds one slot of the route's in-flight counts (least-request and bounded load see
  it) until it closes. On SIGTERM, tunnels drain for the grace period and are then closed
  cleanly (server.py).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .flow import HOLD_UPSTREAM

if TYPE_CHECKING:
    from .exchange import Exchange


class Side(asyncio.Protocol):
    """One connection of a tunnel; what it reads goes to its ``peer``."""

    __slots__ = ("eof", "forward", "gw", "held", "last", "lost", "name", "nbytes", "peer",
                 "transport", "tunnel", "wdeadline", "wsize")  # fmt: skip

    def __init__(self, tunnel: Tunnel, name: str, transport, clock: float) -> None:
        self.tunnel = tunnel
        self.gw = tunnel.gw
        self.name = name
        self.transport = transport
        self.peer: Side = self
        self.forward = _drop  # the peer's transport.write once joined (hot path)
        self.last = clock  # the last time a byte was read from this side
        self.held = False  # reading paused: the peer does not take what it is sent
        self.eof = False  # this side will send nothing more
        self.lost = False
        self.wsize = 0  # write buffer size at the last sweep
        self.wdeadline = 0.0
        self.nbytes = 0  # bytes read from this side

    def data_received(self, data: bytes) -> None:
        """Relay the bytes to the other side as they come."""
        self.last = self.gw.clock
        self.nbytes += len(data)
        self.forward(data)

    def eof_received(self) -> bool:
        """This side stops sending: pass the EOF on, and keep the other direction open if the
        other side can take a half-close; close once both directions ended."""
        self.eof = True
        self.tunnel.why = self.tunnel.why or f"{self.name} closed"  # the side that ended first
        peer = self.peer
        if peer.lost:
            return False
        if peer.eof or not peer.transport.can_write_eof():
            peer.transport.close()  # after what is buffered for it
            return False
        peer.transport.write_eof()
        return True

    def pause_writing(self) -> None:
        """This side does not take its bytes: stop reading the other side."""
        peer = self.peer
        if not peer.held and not peer.lost and not peer.eof:
            peer.held = True
            peer.transport.pause_reading()

    def resume_writing(self) -> None:
        """This side caught up: read the other side again (its idle time restarts)."""
        peer = self.peer
        if peer.held:
            peer.held = False
            peer.last = self.gw.clock
            if not peer.lost and not peer.eof:
                peer.transport.resume_reading()

    def connection_lost(self, exc) -> None:
        """This side is gone: close the other one after what is buffered for it."""
        self.lost = True
        self.peer.forward = _drop
        self.tunnel.side_lost(self)


def _drop(data: bytes) -> None:
    """Where bytes for a side that is gone go."""


class Tunnel:
    """A client connection and an upstream connection joined after a 101 (module docstring)."""

    __slots__ = ("client", "closing", "gw", "index", "route", "upstream", "why")

    def __init__(self, gw, ex: Exchange, client_transport, upstream_transport) -> None:
        self.gw = gw
        self.route = ex.route
        self.index = ex.index  # the route slot the exchange took, released on close
        self.client = Side(self, "client", client_transport, gw.clock)
        self.upstream = Side(self, "upstream", upstream_transport, gw.clock)
        self.client.peer = self.upstream
        self.upstream.peer = self.client
        self.client.forward = upstream_transport.write
        self.upstream.forward = client_transport.write
        self.closing = False
        self.why = ""

    def side_lost(self, side: Side) -> None:
        """One connection closed: close the other cleanly; the tunnel ends with both."""
        peer = side.peer
        if not peer.lost:
            self.why = self.why or f"{side.name} closed"
            peer.transport.close()
            return
        gw = self.gw
        gw.tunnels.discard(self)
        if self.index >= 0:
            self.route.active[self.index] -= 1
            self.route.total_active -= 1
            self.index = -1
        metrics = gw.metrics
        metrics.tunnels_closed[self.why or "closed"] += 1
        metrics.tunnel_bytes["client"] += self.client.nbytes
        metrics.tunnel_bytes["upstream"] += self.upstream.nbytes

    def close(self, why: str) -> None:
        """Close both connections cleanly: what is buffered is sent, then FIN."""
        self.closing = True
        self.why = self.why or why
        for side in (self.client, self.upstream):
            if not side.lost:
                side.transport.close()

    def abort(self, why: str) -> None:
        """Reset both connections now, dropping what is buffered."""
        self.why = self.why or why
        for side in (self.client, self.upstream):
            if not side.lost:
                side.transport.abort()

    def sweep(self, now: float, idle: float) -> None:
        """The sweeper's tick: cut a side that takes nothing, close on a side that is idle."""
        for side in (self.client, self.upstream):
            if side.lost:
                continue
            size = side.transport.get_write_buffer_size()
            if size != side.wsize:
                side.wsize = size
                side.wdeadline = now + idle
            elif size and side.wdeadline < now:
                self.abort(f"{side.name} stopped reading")
                return
        if self.closing:
            return
        for side in (self.client, self.upstream):
            if not (side.lost or side.eof or side.held) and side.last + idle < now:
                self.close(f"{side.name} idle")
                return


def open_tunnel(gw, ex: Exchange, conn, head: bytes, rest: bytes) -> None:
    """The upstream ``conn`` answered ``ex`` with 101: send ``head`` (and the upstream's bytes
    after it, ``rest``) to the client and join both connections in a tunnel."""
    client = ex.client
    client_transport, upstream_transport = client.transport, conn.transport
    tunnel = Tunnel(gw, ex, client_transport, upstream_transport)
    ex.resp_started = True
    tunnel.client.held = bool(client.read_paused & HOLD_UPSTREAM)  # the upstream is full
    tunnel.upstream.held = client.wpaused  # the client is full
    early = client.switched(ex)  # the client protocol lets go of the connection
    client_transport.set_protocol(tunnel.client)
    upstream_transport.set_protocol(tunnel.upstream)
    gw.tunnels.add(tunnel)
    gw.metrics.tunnels_opened += 1
    client_transport.write(head)
    if rest:
        tunnel.upstream.nbytes += len(rest)
        client_transport.write(rest)
    if early:
        tunnel.client.nbytes += len(early)
        upstream_transport.write(early)
    if not tunnel.client.held:
        client_transport.resume_reading()
    if tunnel.upstream.held:
        if not conn.rpaused:
            upstream_transport.pause_reading()
    elif conn.rpaused:
        upstream_transport.resume_reading()
