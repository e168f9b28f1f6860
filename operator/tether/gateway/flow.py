"""How a client connection's exchanges end, and what bounds it: order, memory and time.

``ClientFlow`` is the half of ``ClientProtocol`` (proxy.py) that does not parse. Invariants:
- Responses go out strictly in request order. A request refused while others are ahead of it
  (malformed, too large, too many queued) is answered in its turn, then the connection closes;
  no request accepted before it is dropped.
- Memory per connection is bounded: at most ``max_pipelined`` requests wait behind the one
  being answered (reading pauses, and the rest of the read waits unparsed in ``stash``);
  request bodies buffered while no upstream takes them are capped by ``BODY_BUDGET`` (reading
  pauses); while the client does not take its responses (``pause_writing``) the gateway stops
  reading it and the upstream feeding it, and starts no queued request.
- Timers measure inactivity, each direction on its own (see ``sweep``): a request head must
  arrive within ``header_timeout``; a client owing body bytes, or idle between requests, may
  be silent ``idle_timeout``; a client not taking buffered response bytes is cut off after
  ``idle_timeout`` without progress. No read timer runs while the gateway itself does not
  read the client. Upstream timers live in upstream.py.
- Every exchange ends exactly once (``_end``): one access-log line, one metrics update, its
  in-flight count restored, and an upstream still bound to it dropped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from time import perf_counter
from typing import TYPE_CHECKING

from .exchange import Exchange
from .http import local_response

if TYPE_CHECKING:
    from .upstream import UpstreamConnection

# Why reading from the client is paused (bits of ``read_paused``); it resumes when none is left.
HOLD_BODY = 1  # request body bytes buffered beyond BODY_BUDGET while no upstream takes them
HOLD_UPSTREAM = 2  # the upstream does not take the request body as fast as it arrives
HOLD_QUEUE = 4  # max_pipelined requests are queued
HOLD_WRITE = 8  # the client does not take its responses
HOLD_UPGRADE = 16  # an upgrade request waits for its answer (upgrade.py)

BODY_BUDGET = 256 << 10  # request body bytes a connection may hold for requests not sent yet
# After a refusal the gateway half-closes and reads on (discarding), as nginx's lingering
# close: closing with unread bytes would send a reset, and the client could lose the answer.
LINGER_QUIET = 5.0  # seconds without a byte from the client (at most idle_timeout), then close
LINGER_MAX = 30.0  # seconds in all


class ClientFlow(asyncio.Protocol):
    """Ending exchanges, pipelining, backpressure and timers of one client connection."""

    __slots__ = ()

    # -- reading: pause for any reason, resume when no reason is left ----------------------

    def _hold(self, why: int) -> None:
        if not self.read_paused and not self.closed:
            self.transport.pause_reading()
        self.read_paused |= why

    def _release(self, why: int) -> None:
        if self.read_paused & why:
            self.read_paused &= ~why
            if not self.read_paused and not self.closed:
                self.transport.resume_reading()
                # the client could not send while the gateway did not read: its time restarts
                gw = self.gw
                self.deadline = max(self.deadline, gw.clock + gw.config.idle_timeout)

    def _buffered(self) -> int:
        """Request body bytes held for requests no upstream has taken yet."""
        total = 0
        for ex in self.queue or ():
            total += ex.pending_size
        ex = self.active
        if ex is not None and ex.upstream is None:
            total += ex.pending_size
        return total

    def buffering(self, ex: Exchange) -> None:
        """``ex`` keeps a body piece because nothing takes it yet: hold reading past the budget."""
        if ex.pending_size > BODY_BUDGET or self._buffered() > BODY_BUDGET:
            self._hold(HOLD_BODY)

    def flushed(self) -> None:
        """Buffered body bytes went upstream: resume reading if the budget allows it again."""
        if self.read_paused & HOLD_BODY and self._buffered() <= BODY_BUDGET:
            self._release(HOLD_BODY)

    # -- pipelining ------------------------------------------------------------------------

    def _enqueue(self, ex: Exchange) -> None:
        """A pipelined request waits until the ones before it are answered; at
        ``max_pipelined`` waiting requests reading pauses (the parser stops: ``stalled``)."""
        queue = self.queue
        if queue is None:
            queue = self.queue = deque()
        queue.append(ex)
        if len(queue) >= self.gw.config.max_pipelined:
            self.stalled = True
            self._hold(HOLD_QUEUE)

    def _stash_rest(self, rest: bytes) -> None:
        """The queue is full: keep the unparsed rest of the read (starts at a request)."""
        self.stash = rest

    def _next(self) -> None:
        nxt = self.queue.popleft()
        self.active = nxt
        if self.stalled and len(self.queue) < self.gw.config.max_pipelined:
            self.stalled = False
            if self.stash is None or self.upgrading is not None:  # upgrade: the answer decides
                self._release(HOLD_QUEUE)
            else:
                self.gw.loop.call_soon(self._unstash)
        self._dispatch(nxt)

    def _unstash(self) -> None:
        rest = self.stash
        self.stash = None
        if self.closed:
            return
        if not self.ignore:
            self.data_received(rest)  # the native lane or the Python method, as for any read
        if not self.stalled:
            self._release(HOLD_QUEUE)

    # -- the client taking its responses -----------------------------------------------------

    def pause_writing(self) -> None:
        """The client reads slowly: stop reading it and the upstream that feeds it."""
        self.wpaused = True
        self._hold(HOLD_WRITE)
        ex = self.active
        up = ex.upstream if ex is not None else None
        if up is not None and up.transport is not None:
            up.pause()

    def resume_writing(self) -> None:
        """The client caught up: resume the upstream, reading, and the next queued request."""
        self.wpaused = False
        ex = self.active
        up = ex.upstream if ex is not None else None
        if up is not None and up.transport is not None and up.rpaused:
            up.resume()
        self._release(HOLD_WRITE)
        if ex is None and self.queue and not self.closed and not self.transport.is_closing():
            self._next()

    # -- timers ----------------------------------------------------------------------------

    def owed_body(self) -> Exchange | None:
        """The exchange whose request body the client still owes, if any."""
        if self.body_left:
            return self.body_ex
        cur = self.cur
        return cur if cur is not None and cur.head_done else None

    def sweep(self, now: float) -> None:
        """Called by the gateway's sweeper every tick: enforce this connection's timers."""
        size = self.transport.get_write_buffer_size()
        if size != self.wsize:  # the client took bytes (or more were queued for it)
            self.wsize = size
            self.wdeadline = now + self.gw.config.idle_timeout
        elif size and self.wdeadline < now:
            self._cut("the client stopped reading its response")
            return
        if self.lingering:
            if self.deadline < now or self.linger_end < now:
                self.transport.abort() if size else self.transport.close()
            return
        if (
            self.deadline < now
            and not self.read_paused  # the gateway is not reading: the client is not late
            and ((self.active is None and not self.queue) or self.owed_body() is not None)
        ):
            self.timeout(now)

    def timeout(self, now: float) -> None:
        """``deadline`` passed while the client owed bytes: a request head (408), a request
        body (408 if nothing was answered yet, else the connection closes), or the next
        request on an idle keep-alive connection (closes)."""
        owed = self.owed_body()
        if owed is not None:
            owed.keep_alive = False
            if owed is self.active and not owed.resp_started:
                self.local_response(owed, 408, "timed out waiting for the request body")
            else:
                self._cut("timed out waiting for the request body")
            return
        if self.cur is not None:
            ex = self.cur
            self.cur = None
            self.active = ex
            ex.t0 = perf_counter()
            ex.keep_alive = False
            self.local_response(ex, 408, "timed out waiting for the request head")
        elif self.transport.get_write_buffer_size():
            self.transport.abort()
        else:
            self.transport.close()

    def _linger(self) -> None:
        """Half-close after a refusal and discard what the client still sends (sweep closes)."""
        self.lingering = True
        clock = self.gw.clock
        self.deadline = clock + self.linger_quiet()
        self.linger_end = clock + LINGER_MAX
        try:
            self.transport.write_eof()  # after the refusal's bytes
        except (OSError, RuntimeError):
            self.transport.close()
            return
        if self.read_paused:
            self.read_paused = 0
            self.transport.resume_reading()

    def linger_quiet(self) -> float:
        """Seconds a lingering close waits for the client's next byte."""
        return min(LINGER_QUIET, self.gw.config.idle_timeout)

    def _cut(self, why: str) -> None:
        """Drop the connection now, buffered bytes included (close() would wait for them)."""
        ex = self.active
        if ex is not None:
            ex.error = ex.error or why
        self.ignore = True
        self.transport.abort()

    # -- ending exchanges ------------------------------------------------------------------

    def local_response(self, ex: Exchange, status: int, text: str) -> None:
        """Answer ``ex`` from the gateway itself, with the reason in the body."""
        if ex.finished:
            return
        ex.local = True
        ex.error = text
        if ex.resp_started or self.closed:
            self.response_aborted(ex, text)
            return
        ex.status = status
        close = not ex.keep_alive or not ex.body_done or self.gw.draining
        self.transport.write(local_response(status, text, close=close, head_only=ex.is_head))
        self._end(ex, close=close)

    def response_complete(self, ex: Exchange, keep: bool) -> None:
        """The upstream response was relayed completely."""
        self._end(ex, close=not keep)

    def response_aborted(self, ex: Exchange, why: str) -> None:
        """The response cannot be completed: the client sees the connection close."""
        ex.error = ex.error or why
        if not self.closed:
            self.transport.close()
        self._end(ex, close=True)

    def _reject(self, status: int, text: str) -> None:
        """Refuse the request being parsed (or a connection-level error): nothing after it is
        read; it is answered after the requests ahead of it, then the connection closes."""
        self.ignore = True
        ex = self.cur
        self.cur = None
        if ex is None:
            ex = Exchange(self, b"")
        ex.keep_alive = False
        if not ex.t0:
            ex.t0 = perf_counter()
        if self.active is ex or (self.active is None and not self.queue):
            self.active = ex
            self.local_response(ex, status, text)
            return
        ex.status = status  # _dispatch answers an exchange with a status set in its turn
        ex.error = text
        if self.queue is None:
            self.queue = deque()
        if ex not in self.queue:
            self.queue.append(ex)

    def _end(self, ex: Exchange, close: bool) -> None:
        if ex.finished:
            return
        ex.finished = True
        if ex.index >= 0:
            route = ex.route
            route.active[ex.index] -= 1
            route.total_active -= 1
            ex.index = -1
        up: UpstreamConnection | None = ex.upstream
        if up is not None:
            ex.upstream = None
            if up.ex is ex:  # ended before its response did: that connection is unusable
                up.ex = None
                if up.transport is not None:
                    up.transport.abort()
        gw = self.gw
        gw.record(ex)
        if self.active is ex:
            self.active = None
        if self.closed:
            return
        if self.upgrading is not None:
            self.upgrade_answered(ex)
        if close or not ex.keep_alive or not ex.body_done or gw.draining:
            self.ignore = True
            if ex.local and not self.transport.is_closing():
                self._linger()
            else:
                self.transport.close()
            return
        if self.read_paused:
            self._release(HOLD_UPSTREAM)
            self.flushed()
        if self.queue:
            if not self.wpaused:  # else resume_writing starts it
                self._next()
        else:
            timeout = gw.config.header_timeout if self.cur is not None else gw.config.idle_timeout
            self.deadline = gw.clock + timeout
