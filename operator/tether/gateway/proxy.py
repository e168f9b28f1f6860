"""Client side of the proxy: parse requests (httptools), route, pick, relay, answer errors.

Invariants:
- Requests on one client connection are answered strictly in order; pipelined requests wait
  (their bodies buffered, reading paused past 1 MiB) until the one before them is answered.
- A request body is streamed, never buffered whole: pieces go upstream as they arrive, and
  reading pauses while the upstream cannot take more (and vice versa for responses).
- Every exchange ends exactly once (``_end``): one access-log line, one metrics update, the
  route's in-flight count restored.
- The gateway answers by itself only with a small text body naming the reason: 400 malformed
  request, 404 no route, 408 header timeout, 413/431 size limits, 502 upstream connect failed
  or bad response, 503 no healthy endpoint, 504 upstream timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from time import perf_counter

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserUpgrade,
    HttpRequestParser,
)

from tether.hashing import generate_cookie_value

from .exchange import Exchange
from .http import (
    H_CONNECTION,
    H_COOKIE,
    H_HOST,
    H_TE_FRAMING,
    H_XFF,
    H_XFP,
    REQUEST_HEADER_CLASS,
    connection_tokens,
    local_response,
)
from .wire import F_HTTP10, F_KEEP_ALIVE, scan_request

log = logging.getLogger("tether.gateway")

_PAUSE_BYTES = 1 << 20
_CLASS_GET = REQUEST_HEADER_CLASS.get


class _Reject(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _addr(sockaddr) -> str:
    """Envoy's ``asString()``: ``ip:port``, ``[v6]:port``."""
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ClientProtocol(asyncio.Protocol):
    """One downstream connection; see module docstring."""

    __slots__ = (
        "_cookie",
        "active",
        "body_ex",
        "body_left",
        "boundary",
        "closed",
        "cur",
        "data",
        "deadline",
        "fresh",
        "fwd_tail",
        "gw",
        "head_pending",
        "ignore",
        "in_msg",
        "max_head",
        "parser",
        "peer",
        "peer_ip",
        "peer_ip_b",
        "peer_trusted",
        "queue",
        "read_paused",
        "transport",
    )

    def __init__(self, gw) -> None:
        self.gw = gw
        self.parser = HttpRequestParser(self)
        self.transport = None
        self.cur: Exchange | None = None
        self.active: Exchange | None = None
        self.queue: deque[Exchange] | None = None
        self.deadline = 0.0
        self.closed = False
        self.ignore = False
        self.read_paused = False
        self.boundary = True  # llhttp sits between messages: the next byte starts a request
        self.body_left = 0  # fast path: bytes of body_ex's Content-Length body still to come
        self.body_ex: Exchange | None = None
        self.in_msg = False  # llhttp is inside a message (on_message_begin .. _complete)
        self.head_pending = 0
        self.data = b""
        self.fresh = True
        self.max_head = gw.config.max_header_bytes
        self._cookie: str | None = None
        self.peer = ("", 0)
        self.peer_ip = ""
        self.peer_ip_b = b""
        self.peer_trusted = False
        self.fwd_tail = b"x-forwarded-for: \r\nx-forwarded-proto: http\r\n\r\n"

    # -- transport callbacks -------------------------------------------------------------

    def connection_made(self, transport) -> None:
        """A client connected: note its address and start the header-read deadline."""
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = peer
            self.peer_ip = peer[0]
            self.peer_ip_b = peer[0].encode()
            self.peer_trusted = self.gw.is_trusted(peer[0])
        self.fwd_tail = (
            b"x-forwarded-for: " + self.peer_ip_b + b"\r\nx-forwarded-proto: http\r\n\r\n"
        )
        self.gw.clients.add(self)
        self.deadline = self.gw.now() + self.gw.config.header_timeout

    def connection_lost(self, exc) -> None:
        """The client went away: an unfinished exchange ends as 499 and its upstream is closed."""
        self.closed = True
        self.gw.clients.discard(self)
        ex = self.active
        if ex is not None and not ex.finished:
            up = ex.upstream
            if up is not None:  # the response can no longer be delivered: drop that connection
                up.ex = None
                if up.transport is not None:
                    up.transport.close()
            ex.error = ex.error or "client closed the connection"
            if not ex.resp_started:
                ex.status = 499
            self._end(ex, close=True)
        self.queue = None

    def pause_writing(self) -> None:
        """The client reads slowly: stop reading the upstream that feeds it (backpressure)."""
        ex = self.active
        up = ex.upstream if ex is not None else None
        if up is not None and up.transport is not None:
            up.rpaused = True
            up.transport.pause_reading()

    def resume_writing(self) -> None:
        """The client caught up: resume the upstream paused by pause_writing."""
        ex = self.active
        up = ex.upstream if ex is not None else None
        if up is not None and up.transport is not None and up.rpaused:
            up.rpaused = False
            up.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        """Frame requests from the client's bytes: the native scan first, llhttp for the rest."""
        if self.ignore:
            return
        if self.body_left:
            data = self._body_data(data)
            if not data or self.ignore:
                return
        if self.boundary:
            # Fast path: complete heads in the common subset, one native scan each (wire),
            # Content-Length bodies framed by counting; the first head it declines, and
            # everything after it, goes to llhttp.
            start = 0
            while True:
                r = scan_request(data, start, self.peer_ip_b, self.peer_trusted, self.max_head)
                if r is None:
                    break
                end, head, method, path, host, cookies, xff, flags, clen = r
                if clen:
                    limit = self.gw.config.max_body_bytes
                    if limit and clen > limit:
                        break  # llhttp's path answers 413
                ex = Exchange(self, path)
                ex.method = method
                ex.host = host
                ex.cookies = cookies
                ex.xff = xff
                ex.head = head
                ex.raw = data
                ex.raw_start = start
                ex.raw_end = end
                ex.head_done = True
                if clen:
                    got = min(len(data) - end, clen)
                    ex.pending = [head, data[end : end + got]] if got else [head]
                    ex.pending_size = ex.body_size = got
                    if got < clen:  # the rest of the body comes in later reads
                        self.body_left = clen - got
                        self.body_ex = ex
                    else:
                        ex.body_done = True
                    end += got
                else:
                    ex.pending = [head]
                    ex.body_done = True
                if flags != F_KEEP_ALIVE:
                    ex.keep_alive = bool(flags & F_KEEP_ALIVE)
                    ex.http10 = bool(flags & F_HTTP10)
                if method == b"HEAD":
                    ex.is_head = True
                ex.t0 = perf_counter()
                if self.active is None:
                    self.active = ex
                    self._dispatch(ex)
                else:
                    self._enqueue(ex)
                if not ex.keep_alive and ex.body_done:
                    self.ignore = True  # nothing may follow a request that closes
                if self.ignore or end == len(data):
                    return
                start = end
            if start:
                data = data[start:]
        self._slow_data(data)

    def _body_data(self, data: bytes) -> bytes:
        """Fast path: the next bytes of a Content-Length request body go upstream as they
        arrive (or wait in ``pending`` while connecting); returns the bytes after the body."""
        ex = self.body_ex
        left = self.body_left
        piece = data if len(data) <= left else data[:left]
        n = len(piece)
        self.body_left = left = left - n
        ex.body_size += n
        if not ex.finished:
            up = ex.upstream
            if up is not None and up.transport is not None:
                up.transport.write(piece)
            else:
                ex.pending.append(piece)
                ex.pending_size += n
                if ex.pending_size > _PAUSE_BYTES and not self.read_paused:
                    self.read_paused = True
                    self.transport.pause_reading()
        if not left:
            ex.body_done = True
            self.body_ex = None
            if not ex.keep_alive:
                self.ignore = True
        return data[n:] if n < len(data) else b""

    def _more_body(self, data: bytes) -> None:
        """The native lane's entry while a body is being received: the body, then the rest."""
        rest = self._body_data(data)
        if rest and not self.ignore:
            self.data_received(rest)

    def _slow_data(self, data: bytes) -> None:
        """Feed llhttp (the callbacks below); it is the judge of anything the fast path left."""
        self.boundary = False
        self.data = data
        self.fresh = self.cur is None  # a new message starts at data[0]
        try:
            self.parser.feed_data(data)
        except HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Reject):
                self._reject(cause.status, cause.text)
                return
            log.exception("internal error while handling a request", exc_info=cause)
            self._reject(500, "internal gateway error")
            return
        except HttpParserUpgrade:
            # llhttp stops after a request carrying Upgrade; it was proxied as a plain request
            # (Upgrade is hop-by-hop and not supported), so nothing may follow on this connection.
            self.ignore = True
            ex = self.cur or self.active
            if ex is not None:
                ex.keep_alive = False
                ex.body_done = True
                self.cur = None
        except HttpParserError as exc:
            self._reject(400, f"malformed request: {exc}")
            return
        self.boundary = not self.in_msg
        cur = self.cur
        if cur is not None and not cur.head_done:
            self.head_pending += len(data)
            if self.head_pending > self.gw.config.max_header_bytes:
                self._reject(431, "request head too large")
                return
            if self.head_pending == len(data):
                self.deadline = self.gw.clock + self.gw.config.header_timeout
        ex = self.active
        if ex is not None and ex.pending:
            up = ex.upstream
            if up is not None and up.transport is not None:
                pending = ex.pending
                up.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
                ex.pending = []
                ex.pending_size = 0
                if self.read_paused:
                    self.read_paused = False
                    self.transport.resume_reading()

    # -- parser callbacks (the slow path) ---------------------------------------------------

    def on_message_begin(self) -> None:
        """llhttp: a request starts."""
        self.in_msg = True

    def on_url(self, url: bytes) -> None:
        """llhttp: (part of) the request target; the first part creates the exchange."""
        ex = self.cur
        if ex is None:
            self.cur = ex = Exchange(self, url)
            ex.headers = []
            ex.cookies = []
            ex.pending = []
        else:
            ex.path += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """llhttp: one header, classified (hop-by-hop, cookie, forwarded, kept)."""
        ex = self.cur
        lname = name.lower()
        kind = _CLASS_GET(lname)
        if kind is None:
            ex.headers.append((lname, name, value))
        elif kind == H_HOST:
            ex.host = value
            ex.headers.append((lname, name, value))
        elif kind == H_COOKIE:
            ex.cookies.append(value)
            ex.headers.append((lname, name, value))
        elif kind == H_XFF:
            ex.xff = value if ex.xff is None else ex.xff + b", " + value
        elif kind == H_XFP:
            ex.xfp = value
        elif kind == H_CONNECTION:
            ex.saw_connection = True
            drop = [t for t in connection_tokens(value) if t not in (b"close", b"keep-alive")]
            if drop:
                ex.conn_drop = set(drop) | (ex.conn_drop or set())
        elif kind == H_TE_FRAMING:
            ex.chunked = b"chunked" in value.lower()
        elif kind != 5:  # Expect and friends pass; 5 (H_HOP) is dropped
            ex.headers.append((lname, name, value))

    def on_headers_complete(self) -> None:
        """llhttp: the head is complete; enforce limits, then route and send it."""
        ex = self.cur
        parser = self.parser
        # Head size, without per-header bookkeeping: exact when the message starts this read;
        # a head spanning reads adds what earlier reads held (they were capped already); a
        # pipelined follower is bounded by the read size.
        end = self.data.find(b"\r\n\r\n") + 4
        size = end if self.fresh else self.head_pending + max(end, 4)
        self.fresh = False
        if size > self.max_head:
            raise _Reject(431, "request head too large")
        ex.head_done = True
        self.head_pending = 0
        ex.method = method = parser.get_method()
        ex.keep_alive = keep = parser.should_keep_alive()
        if not keep or ex.saw_connection:  # 1.1 without a Connection header is always keep-alive
            ex.http10 = parser.get_http_version() == "1.0"  # (costly: string formatting)
        ex.is_head = method == b"HEAD"
        ex.t0 = perf_counter()
        if method == b"CONNECT":
            raise _Reject(405, "CONNECT is not supported")
        if ex.path[:1] != b"/" and ex.path != b"*":
            _absolute_form(ex)
        if self.active is None:
            self.active = ex
            self._dispatch(ex)
        else:
            self._enqueue(ex)

    def _enqueue(self, ex: Exchange) -> None:
        """A pipelined request waits until the one before it is answered."""
        if self.queue is None:
            self.queue = deque()
        self.queue.append(ex)

    def on_body(self, body: bytes) -> None:
        """llhttp: body bytes, counted against --max-body-bytes and queued for the upstream."""
        ex = self.cur
        n = len(body)
        ex.body_size += n
        limit = self.gw.config.max_body_bytes
        if limit and ex.body_size > limit:
            raise _Reject(413, f"request body larger than {limit} bytes")
        if ex.finished:
            return
        ex.pending.append(b"%x\r\n%b\r\n" % (n, body) if ex.chunked else body)
        ex.pending_size += n
        if ex.pending_size > _PAUSE_BYTES and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        """llhttp: the request is complete (the chunked terminator is queued if needed)."""
        self.in_msg = False
        ex = self.cur
        self.cur = None
        ex.body_done = True
        if ex.chunked and not ex.finished:
            ex.pending.append(b"0\r\n\r\n")
        if not ex.keep_alive:
            self.ignore = True

    # -- routing and upstream selection ----------------------------------------------------

    def cookie_value(self) -> str:
        """The generated affinity cookie value: same for every request on this connection."""
        if self._cookie is None:
            local = self.transport.get_extra_info("sockname")
            self._cookie = generate_cookie_value(_addr(self.peer), _addr(local))
        return self._cookie

    def _dispatch(self, ex: Exchange) -> None:
        gw = self.gw
        router = gw.router
        route = router._cache.get(ex.host) if ex.host is not None else None
        if route is None:
            route = router.lookup(ex.host)
        if route is None:
            if not gw.loaded:
                self.local_response(ex, 503, "routing tables not loaded yet")
                return
            host = (ex.host or b"").decode("latin-1")
            self.local_response(ex, 404, f"no route for host {host!r}")
            return
        ex.route = route
        if self.peer_trusted and ex.xff is not None:
            ex.remote_ip = gw.client_ip(ex.xff, self.peer_ip)
        ejected = gw.ejected
        if ejected:
            i = route.pick(ex, 0, None, ejected)
            if i is None:
                i = route.pick(ex, 0, None, None)
        else:
            i = route.pick_first(ex)
        if i is None:
            self.local_response(ex, 503, f"no healthy endpoint for {route.key}")
            return
        if ex.generated is not None:
            gw.metrics.cookies_generated[route.key] += 1
        self._send_to(ex, i)

    def _send_to(self, ex: Exchange, i: int) -> None:
        route = ex.route
        target = route.targets[i]
        ex.index = i
        ex.target = target
        ex.attempts += 1
        route.active[i] += 1
        route.total_active += 1
        if ex.head is None:
            ex.head = self._build_head(ex)
            ex.pending.insert(0, ex.head)
        stack = self.gw.pools.idle.get(target.authority)
        while stack:  # the warmest idle connection that is still open (LIFO)
            conn = stack.pop()
            tr = conn.transport
            if tr is not None and not tr.is_closing():
                conn.reused = True
                conn.attach(ex)
                return
        self.gw.connect(target, ex)

    def _build_head(self, ex: Exchange) -> bytes:
        parts = [ex.method, b" ", ex.path, b" HTTP/1.1\r\n"]
        drop = ex.conn_drop
        for lname, name, value in ex.headers:
            if drop is None or lname not in drop:
                parts += (name, b": ", value, b"\r\n")
        if ex.host is None:
            parts.append(b"host: " + ex.route.doc.service.host.encode() + b"\r\n")
        if ex.xff is None and ex.xfp is None and not ex.chunked:
            parts.append(self.fwd_tail)  # the common case, prepared once per connection
            return b"".join(parts)
        xff = self.peer_ip_b if ex.xff is None else ex.xff + b", " + self.peer_ip_b
        xfp = ex.xfp if (self.peer_trusted and ex.xfp) else b"http"
        parts.append(b"x-forwarded-for: " + xff + b"\r\nx-forwarded-proto: " + xfp + b"\r\n")
        if ex.chunked:
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def _release_slot(self, ex: Exchange) -> None:
        if ex.index >= 0:
            route = ex.route
            route.active[ex.index] -= 1
            route.total_active -= 1
            ex.index = -1

    def connect_failed(self, ex: Exchange, why: str, timeout: bool = False) -> None:
        """Connecting to ``ex.target`` failed: retry the next endpoint (Envoy's attempt + 1)."""
        gw = self.gw
        target = ex.target
        gw.metrics.connect_failures[target.authority] += 1
        gw.eject(target.authority)
        tried_index = ex.index
        self._release_slot(ex)
        if ex.finished or self.closed:
            return
        if ex.tried is None:
            ex.tried = set()
        ex.tried.add(tried_index)
        if ex.attempts < gw.config.connect_attempts:
            route = ex.route
            i = route.pick(ex, ex.attempt + 1, ex.tried, gw.ejected)
            if i is None:
                i = route.pick(ex, ex.attempt + 1, ex.tried, None)
            if i is not None:
                self._send_to(ex, i)
                return
        status = 504 if timeout else 502
        self.local_response(ex, status, f"upstream connect failed: {target.authority}: {why}")

    def upstream_failed(self, ex: Exchange, conn, why: str) -> None:
        """The upstream closed before responding; a stale pooled connection is retried once."""
        self._release_slot(ex)
        if ex.finished or self.closed:
            return
        if conn.reused and not ex.stale_retry and ex.body_done and ex.body_size == 0:
            ex.stale_retry = True
            ex.pending = [ex.head]
            route = ex.route
            target = ex.target
            idx = route.targets.index(target)
            ex.index = idx
            route.active[idx] += 1
            route.total_active += 1
            self.gw.connect(target, ex)  # a fresh connection, not another possibly stale one
            return
        self.local_response(ex, 502, f"{why}: {ex.target.authority}")

    # -- ending exchanges ------------------------------------------------------------------

    def local_response(self, ex: Exchange, status: int, text: str) -> None:
        """Answer ``ex`` from the gateway itself (see module docstring for the statuses)."""
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

    def timeout(self, now: float) -> None:
        """Called by the sweeper when ``deadline`` passed while no request is being answered."""
        if self.cur is not None:
            ex = self.cur
            self.cur = None
            self.active = ex
            ex.t0 = perf_counter()
            ex.keep_alive = False
            self.local_response(ex, 408, "timed out waiting for the request head")
        else:
            self.transport.close()

    def _reject(self, status: int, text: str) -> None:
        self.ignore = True
        ex = self.cur or Exchange(self, b"")
        self.cur = None
        ex.keep_alive = False
        if self.active is not None and self.active is not ex:
            # A response is still owed for an earlier request: answer it, then close.
            self.active.keep_alive = False
            return
        self.active = ex
        if not ex.t0:
            ex.t0 = perf_counter()
        self.local_response(ex, status, text)

    def _end(self, ex: Exchange, close: bool) -> None:
        if ex.finished:
            return
        ex.finished = True
        if ex.index >= 0:
            route = ex.route
            route.active[ex.index] -= 1
            route.total_active -= 1
            ex.index = -1
        ex.upstream = None
        gw = self.gw
        gw.record(ex)
        if self.active is ex:
            self.active = None
        if self.closed:
            return
        if close or not ex.keep_alive or not ex.body_done or gw.draining:
            self.ignore = True
            self.transport.close()
            return
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        queue = self.queue
        if queue:
            nxt = queue.popleft()
            self.active = nxt
            self._dispatch(nxt)
        else:
            self.deadline = gw.clock + gw.config.idle_timeout


def _absolute_form(ex: Exchange) -> None:
    """``GET http://host/path``: take Host from the URL and forward the origin form."""
    url = ex.path
    _scheme, sep, rest = url.partition(b"://")
    if not sep:
        return
    authority, slash, path = rest.partition(b"/")
    ex.host = authority
    ex.path = slash + path if slash else b"/"
    ex.headers = [h for h in ex.headers if h[0] != b"host"]
    ex.headers.append((b"host", b"Host", authority))
