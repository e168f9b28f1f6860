"""Upstream side: one keep-alive HTTP/1.1 connection per in-flight request, pooled per endpoint.

Invariants:
- A connection carries at most one exchange at a time (no upstream pipelining) and returns to
  its pool only after a complete response that allows keep-alive, with the request fully sent.
- Response bodies are re-framed from the parser's body callbacks (content-length bodies pass
  through unchanged, chunked bodies are re-chunked without trailers, bodies delimited by the
  close pass through raw), so bytes an upstream sends after the end of a response can never
  reach the client: not after a complete response, nor a body after a response that has none
  (HEAD, 1xx, 204, 304); the connection that sent them is dropped.
- The response head is forwarded as received, minus hop-by-hop lines, plus the gateway's lines
  (Set-Cookie, a session value, Connection; a session header replaces the upstream's copy);
  a head over ``MAX_UPSTREAM_HEAD`` bytes is a bad response (502).
- Timers (the sweeper): ``upstream_timeout`` of inactivity from the last request byte written
  to the response head, then between response reads; it does not run while the gateway itself
  paused reading because the client is slow (the client's own timer runs then, flow.py).
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from .flow import HOLD_UPSTREAM
from .http import F_CHUNKED, F_LENGTH, F_TE, response_head, strip_response_hop_headers
from .tunnel import open_tunnel
from .wire import MAX_RESPONSE_HEAD, scan_response

if TYPE_CHECKING:
    from .exchange import Exchange

# Body modes of the response being relayed.
M_LENGTH = 0  # content-length (or no body): bytes pass through
M_CHUNK = 1  # chunked to an HTTP/1.1 client: re-chunk
M_RAW_CLOSE = 2  # chunked to an HTTP/1.0 client, or read-until-close: raw bytes, then close

MAX_UPSTREAM_HEAD = MAX_RESPONSE_HEAD  # bytes of a response head (the fast path's limit too)


class _Abort(Exception):
    """Raised inside parser callbacks to stop relaying a broken response."""


class UpstreamConnection(asyncio.Protocol):
    """A connection to one endpoint; see module docstring."""

    __slots__ = (
        "deadline",
        "done",
        "ex",
        "gw",
        "hbuf",
        "head_wait",
        "hpos",
        "info",
        "junk",
        "keep",
        "left",
        "mode",
        "out",
        "parser",
        "reset_parser",
        "reused",
        "rpaused",
        "switch",
        "target",
        "transport",
    )

    def __init__(self, gw, target) -> None:
        self.gw = gw
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.parser: HttpResponseParser | None = None  # from connection_made to _lost
        self.ex: Exchange | None = None
        self.hbuf = b""
        self.hpos = 0
        self.head_wait = False
        self.info = False
        self.junk = False  # body bytes where the response has none: not relayed
        self.done = False
        self.keep = False
        self.left = 0  # fast path: body bytes of the current response still to relay
        self.reset_parser = False
        self.mode = M_LENGTH
        self.out: list[bytes] = []
        self.deadline = 0.0
        self.reused = False
        self.rpaused = False  # reading paused because the client could not keep up
        self.switch: bytes | None = None  # a 101 head for the client: the tunnel follows

    # -- transport callbacks -------------------------------------------------------------

    def connection_made(self, transport) -> None:
        """Connected to the endpoint: the connection is tracked for shutdown."""
        self.transport = transport
        self.parser = HttpResponseParser(self)  # it calls back: a cycle until let_go
        self.gw.upstreams.add(self)

    def connection_lost(self, exc) -> None:
        """Closed: retry, complete or abort the exchange it served; it leaves the pool."""
        self.gw.upstreams.discard(self)
        self.gw.pools.discard(self)
        ex = self.ex
        self.transport = None
        self.let_go()
        if ex is None:
            return
        if self.head_wait:
            why = "upstream closed the connection before responding"
            ex.client.upstream_failed(ex, self, why, bool(self.hbuf))
        elif self.mode == M_RAW_CLOSE and not self.done:
            self.done = True
            ex.client.response_complete(ex, keep=False)
        else:
            ex.client.response_aborted(ex, "upstream closed mid-response")

    def let_go(self) -> None:
        """This protocol no longer serves its connection: drop the parser (it calls back) and
        the exchange, so the object is freed by reference counting alone."""
        self.parser = None
        self.ex = None
        self.out = []

    def pause_writing(self) -> None:
        """The upstream reads slowly: stop reading the client whose body feeds it."""
        ex = self.ex
        if ex is not None:
            ex.client._hold(HOLD_UPSTREAM)

    def resume_writing(self) -> None:
        """The upstream caught up: resume reading the client."""
        ex = self.ex
        if ex is not None:
            ex.client._release(HOLD_UPSTREAM)

    def pause(self) -> None:
        """Stop reading: the client does not take the response (its timer runs, not ours)."""
        self.rpaused = True
        self.transport.pause_reading()

    def resume(self) -> None:
        """Read again; the inactivity timer restarts now."""
        self.rpaused = False
        self.transport.resume_reading()
        self.deadline = self.gw.clock + self.gw.config.upstream_timeout

    # -- exchange ------------------------------------------------------------------------

    def attach(self, ex: Exchange) -> None:
        """Start relaying ``ex`` on this connection: send what is buffered of the request."""
        self.ex = ex
        ex.upstream = self
        client = ex.client
        if client.wpaused:  # this client does not take its responses yet
            if not self.rpaused:
                self.pause()
        elif self.rpaused:  # the previous client was slow when its response completed
            self.resume()
        self.head_wait = True
        self.done = False
        self.junk = False
        self.hbuf = b""
        self.hpos = 0
        self.deadline = self.gw.clock + self.gw.config.upstream_timeout
        ex.t_up = perf_counter()
        pending = ex.pending
        if pending:
            self.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
            ex.pending = []
            ex.pending_size = 0
            if client.read_paused:  # its body was held while connecting: resume if it may
                client.flushed()

    def data_received(self, data: bytes) -> None:
        """Relay response bytes; bytes on an idle pooled connection close it."""
        ex = self.ex
        if ex is None:  # nothing may arrive on an idle connection
            self.transport.close()
            return
        if self.left:
            self._relay_body(ex, data)
            return
        if self.head_wait and not self.hbuf:
            # Fast path: a whole head at data[0] with a Content-Length body (wire); llhttp
            # is not fed, so it stays at a message boundary for the next response.
            gw = self.gw
            if (
                ex.set_cookie is None
                and ex.extra_lines is None
                and ex.keep_alive
                and ex.body_done
                and not ex.http10
                and not gw.draining
            ):
                extra = b""
            else:
                extra = _extra(ex, gw.draining)
            # a header the gateway replaces (header sessions) is dropped by the llhttp path
            r = scan_response(data, extra, ex.is_head) if ex.resp_drop is None else None
            if r is not None:
                out, status, body, left, keep = r
                self.head_wait = False
                ex.status = status
                ex.resp_bytes = body
                client = ex.client
                if not client.closed:
                    client.transport.write(out)
                    ex.resp_started = True
                self.keep = keep
                if left:
                    self.left = left
                    self.deadline = gw.clock + gw.config.upstream_timeout
                else:
                    self._finish(ex)
                return
        self._slow_data(ex, data)

    def _slow_data(self, ex: Exchange, data: bytes) -> None:
        """Feed llhttp: responses the fast path left (chunked, 1xx, read-until-close, ...)."""
        if self.head_wait:
            self.hbuf = self.hbuf + data if self.hbuf else data
        out = self.out = []
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as exc:  # llhttp stops after the 101 head on_headers_complete took
            out.append(self.switch)
            self.switch = None
            self.gw.upstreams.discard(self)
            self.let_go()  # the tunnel takes the connection over
            open_tunnel(self.gw, ex, self, b"".join(out), data[exc.args[0] :])
            return
        except (HttpParserError, _Abort) as exc:
            if not self.done:
                cause = exc.__context__ if isinstance(exc.__context__, _Abort) else exc
                self._broken(ex, str(cause) or cause.__class__.__name__)
                return
            self.junk = True  # a complete response, then bytes that are not one: relay it
        if out and not ex.client.closed:
            ex.client.transport.write(out[0] if len(out) == 1 else b"".join(out))
            ex.resp_started = True
        if self.done:
            self._finish(ex)
        elif self.head_wait:
            if len(self.hbuf) - self.hpos > MAX_UPSTREAM_HEAD:
                self._broken(ex, "upstream response head too large")
                return
            if self.hpos:
                self.hbuf = self.hbuf[self.hpos :]
                self.hpos = 0
        else:
            self.deadline = self.gw.clock + self.gw.config.upstream_timeout

    def _relay_body(self, ex: Exchange, data: bytes) -> None:
        """Fast path: relay Content-Length body bytes as they are; finish at the last one."""
        left = self.left
        n = len(data)
        if n > left:  # bytes after the end of the response: relay it, then drop the connection
            data = data[:left]
            n = left
            self.keep = False
        self.left = left = left - n
        ex.resp_bytes += n
        client = ex.client
        if not client.closed:
            client.transport.write(data)
        if left:
            self.deadline = self.gw.clock + self.gw.config.upstream_timeout
        else:
            self._finish(ex)

    def _broken(self, ex: Exchange, why: str) -> None:
        self.ex = None
        self.transport.close()
        if ex.resp_started:
            ex.client.response_aborted(ex, f"invalid upstream response: {why}")
        else:
            ex.client.local_response(ex, 502, f"invalid response from upstream: {why}")

    def _finish(self, ex: Exchange) -> None:
        keep = self.keep and ex.body_done and not self.junk
        if self.reset_parser:  # HEAD: the parser still expects a body; start a fresh one
            self.parser = HttpResponseParser(self)
            self.reset_parser = False
        self.ex = None
        self.done = False
        raw_close = self.mode == M_RAW_CLOSE
        if keep and not raw_close:  # Pools.release, inlined (hot path)
            gw = self.gw
            self.deadline = gw.clock + gw.config.upstream_idle_timeout
            self.reused = True
            idle = gw.pools.idle
            stack = idle.get(self.target.authority)
            if stack is None:
                stack = idle[self.target.authority] = []
            stack.append(self)
        else:
            self.transport.close()
        ex.client._end(ex, raw_close)

    # -- parser callbacks ----------------------------------------------------------------

    def on_headers_complete(self) -> None:
        """llhttp: the response head is complete; relay it with the affinity cookie if due."""
        if not self.head_wait:  # a second response where one was expected
            raise _Abort("data after the end of the response")
        raw = self.hbuf
        end = raw.find(b"\r\n\r\n", self.hpos)
        if end < 0:
            raise _Abort("response head not terminated by CRLFCRLF")
        if end + 4 - self.hpos > MAX_UPSTREAM_HEAD:
            raise _Abort("upstream response head too large")
        head = raw[self.hpos : end + 4]
        self.hpos = end + 4
        status = self.parser.get_status_code()
        ex = self.ex
        if status < 200:
            if status == 101:
                self.switch = _switching(self.parser, ex, head)
                self.head_wait = False
                self.hbuf = b""
                self.mode = M_LENGTH
                ex.status = 101
                return
            self.info = True
            if not ex.http10:
                self.out.append(strip_response_hop_headers(head)[0])
            return
        self.head_wait = False
        self.hbuf = b""
        ex.status = status
        head, flags = response_head(head)
        extra = b"" if ex.set_cookie is None else b"set-cookie: " + ex.set_cookie + b"\r\n"
        if ex.extra_lines is not None:
            extra += ex.extra_lines
            if ex.resp_drop is not None:
                head = _drop_line(head, head.lower(), b"\r\n" + ex.resp_drop + b":")
        mode = M_LENGTH
        close = not ex.keep_alive or not ex.body_done or self.gw.draining
        if ex.http10 and flags & (F_CHUNKED | F_TE):  # never sent to an HTTP/1.0 client
            head = _drop_line(head, head.lower(), b"\r\ntransfer-encoding:")
        if not (ex.is_head or status == 204 or status == 304):
            if flags & F_CHUNKED:
                mode = M_RAW_CLOSE if ex.http10 else M_CHUNK
            elif flags & F_TE or not flags & F_LENGTH:  # the body runs until the close
                mode = M_RAW_CLOSE
        if mode == M_RAW_CLOSE:
            close = True
        if close:
            extra += b"connection: close\r\n"
        elif ex.http10:
            extra += b"connection: keep-alive\r\n"
        self.mode = mode
        self.out.append(head[:-2] + extra + b"\r\n" if extra else head)
        if ex.is_head:
            self.keep = self.parser.should_keep_alive()
            self.done = True
            self.reset_parser = True

    def on_body(self, body: bytes) -> None:
        """llhttp: response body bytes, re-chunked when relaying chunked; none after a HEAD
        response (llhttp reads its Content-Length as a body)."""
        if self.done:
            self.junk = True
            return
        ex = self.ex
        ex.resp_bytes += len(body)
        if self.mode == M_CHUNK:
            self.out.append(b"%x\r\n%b\r\n" % (len(body), body))
        else:
            self.out.append(body)

    def on_message_complete(self) -> None:
        """llhttp: the response is complete (1xx responses are skipped)."""
        if self.info:
            self.info = False
            return
        if self.mode == M_CHUNK:
            self.out.append(b"0\r\n\r\n")
        self.keep = self.parser.should_keep_alive()  # only valid inside the callback
        self.done = True


def _switching(parser, ex: Exchange, head: bytes) -> bytes:
    """The client's copy of a 101 head that may switch protocols; _Abort if it may not: the
    request offered no Upgrade the gateway forwards, or the head lacks Upgrade and
    ``Connection: upgrade`` (RFC 9110 §7.8)."""
    if ex.upgrade is None:
        raise _Abort("101 Switching Protocols without an upgrade request")
    if not parser.should_upgrade():
        raise _Abort("101 Switching Protocols without Upgrade and Connection: upgrade")
    low = head.lower()
    i = low.find(b"\r\nupgrade:")
    value = head[i + 10 : head.index(b"\r\n", i + 2)].strip()
    extra = b"connection: upgrade\r\nupgrade: " + value + b"\r\n"
    if ex.set_cookie is not None:
        extra += b"set-cookie: " + ex.set_cookie + b"\r\n"
    out = strip_response_hop_headers(head)[0]
    if ex.extra_lines is not None:
        extra += ex.extra_lines
        if ex.resp_drop is not None:
            out = _drop_line(out, out.lower(), b"\r\n" + ex.resp_drop + b":")
    return out[:-2] + extra + b"\r\n"


def _extra(ex: Exchange, draining: bool) -> bytes:
    """Lines the gateway adds to a Content-Length response head: Set-Cookie, the session
    value, Connection."""
    extra = b"" if ex.set_cookie is None else b"set-cookie: " + ex.set_cookie + b"\r\n"
    if ex.extra_lines is not None:
        extra += ex.extra_lines
    if not ex.keep_alive or not ex.body_done or draining:
        extra += b"connection: close\r\n"
    elif ex.http10:
        extra += b"connection: keep-alive\r\n"
    return extra


def _drop_line(head: bytes, low: bytes, marker: bytes) -> bytes:
    """``head`` without every line starting with ``marker`` (``low`` is its lower-case copy)."""
    i = low.find(marker)
    while i >= 0:
        j = low.find(b"\r\n", i + 2)
        head, low = head[:i] + head[j:], low[:i] + low[j:]
        i = low.find(marker)
    return head


class Pools:
    """Idle keep-alive connections per endpoint authority (LIFO: warmest first)."""

    __slots__ = ("gw", "idle")

    def __init__(self, gw) -> None:
        self.gw = gw
        self.idle: dict[str, list[UpstreamConnection]] = {}

    def release(self, conn: UpstreamConnection) -> None:
        """Park a connection whose last response completed cleanly."""
        conn.deadline = self.gw.clock + self.gw.config.upstream_idle_timeout
        conn.reused = True
        stack = self.idle.get(conn.target.authority)
        if stack is None:
            stack = self.idle[conn.target.authority] = []
        stack.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        """Forget a connection (closed, or handed out)."""
        stack = self.idle.get(conn.target.authority)
        if stack and conn in stack:
            stack.remove(conn)

    def expire(self, now: float, keep: set[str] | None = None) -> None:
        """Close idle connections past their deadline or to endpoints no longer routed."""
        for authority, stack in list(self.idle.items()):
            gone = keep is not None and authority not in keep
            for conn in list(stack):
                if gone or conn.deadline < now:
                    stack.remove(conn)
                    if conn.transport is not None:
                        conn.transport.close()
            if not stack:
                del self.idle[authority]

    def count(self) -> int:
        """Number of idle pooled connections."""
        return sum(len(s) for s in self.idle.values())

    def close_all(self) -> None:
        """Close every idle connection (shutdown)."""
        self.expire(float("inf"), keep=set())
