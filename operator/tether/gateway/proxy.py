"""Client side of the proxy: parse requests (httptools), route, pick, relay, answer errors.

Invariants (the rest, about ending exchanges, order, memory and timers, in flow.py):
- A request body is streamed, never buffered whole: pieces go upstream as they arrive, and
  reading pauses while the upstream cannot take more (and vice versa for responses).
- What the upstream receives is the message the gateway framed and routed: the same body
  length, Host and Cookie (Connection tokens naming them are ignored, see http.py), and no
  trailer field ever becomes a header.
- The gateway answers by itself only with a small text body naming the reason: 400 malformed
  request (bad Host, target or framing), 404 no route, 408 request timeout, 413/431 size
  limits, 502 upstream connect failed or bad response, 503 no healthy endpoint or too many
  pipelined requests, 504 upstream timeout, 505 HTTP version.
"""

from __future__ import annotations

import logging
from time import perf_counter

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserUpgrade,
    HttpRequestParser,
)

from tether.hashing import HeaderKey, generate_cookie_value

from .exchange import Exchange
from .http import (
    CONNECTION_KEEPS,
    H_CONNECTION,
    H_COOKIE,
    H_HOST,
    H_TE_FRAMING,
    H_UPGRADE,
    H_XFF,
    H_XFP,
    REQUEST_HEADER_CLASS,
    connection_tokens,
)
from .request import Refuse, check_host, check_target, check_version, declared_length
from .sessions import (
    HONOUR,
    REJECT,
    STRICT_REFUSAL,
    decide_request,
    honoured_index,
    prepare_write,
)
from .upgrade import UpgradeFlow
from .wire import F_HTTP10, F_KEEP_ALIVE, scan_request

log = logging.getLogger("tether.gateway")

_CLASS_GET = REQUEST_HEADER_CLASS.get
# idempotent methods (RFC 9110 §9.2.2): sent again to another endpoint when one closed unanswered
RESENDABLE = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))
_LINE_MIN = 15  # bytes of a request line besides its target: "GET" SP SP "HTTP/1.1" CRLF


def _addr(sockaddr) -> str:
    """Envoy's ``asString()``: ``ip:port``, ``[v6]:port``."""
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ClientProtocol(UpgradeFlow):
    """One downstream connection; see module docstring."""

    __slots__ = (
        "_cookie",
        "active",
        "body_ex",
        "body_left",
        "boundary",
        "closed",
        "completed",
        "cur",
        "deadline",
        "feeds",
        "fwd_tail",
        "gw",
        "hcarry",
        "hfeed",
        "hsize",
        "ignore",
        "in_msg",
        "linger_end",
        "lingering",
        "max_head",
        "parser",
        "peer",
        "peer_ip",
        "peer_ip_b",
        "peer_trusted",
        "proto",
        "queue",
        "read_paused",
        "scan_mode",
        "stalled",
        "stash",
        "tls",
        "transport",
        "upgrade_body",
        "upgrading",
        "wdeadline",
        "wpaused",
        "wsize",
    )

    def __init__(self, gw, tls: bool = False) -> None:
        self.gw = gw
        self.tls = tls  # the connection came through the TLS listener
        self.proto = b"https" if tls else b"http"  # X-Forwarded-Proto
        self.scan_mode = 2 if tls else 0  # wire.scan_request: 1 trusted peer | 2 https
        self.parser: HttpRequestParser | None = None  # from connection_made to let_go
        self.transport = None
        self.cur: Exchange | None = None
        self.active: Exchange | None = None
        self.queue = None
        self.deadline = 0.0
        self.closed = False
        self.ignore = False
        self.lingering = False  # refused: reading and discarding until the client stops
        self.linger_end = 0.0
        self.read_paused = 0  # flow.HOLD_* reasons
        self.stalled = False  # max_pipelined requests queued: the parser waits
        self.stash: bytes | None = None  # the unparsed rest of a read while stalled
        self.wpaused = False  # the client does not take its responses (pause_writing)
        self.wsize = 0  # write buffer size at the last sweep
        self.wdeadline = 0.0
        self.boundary = True  # llhttp sits between messages: the next byte starts a request
        self.body_left = 0  # fast path: bytes of body_ex's Content-Length body still to come
        self.body_ex: Exchange | None = None
        self.in_msg = False  # llhttp is inside a message (on_message_begin .. _complete)
        self.feeds = 0  # reads fed to llhttp
        self.completed = 0  # requests llhttp completed
        self.hfeed = 0  # the read in which the head being parsed began
        self.hsize = 0  # bytes of that head seen by the parser callbacks (a lower bound)
        self.hcarry = 0  # bytes of that head counted read by read (a lower bound)
        self.max_head = gw.config.max_header_bytes
        self._cookie: str | None = None
        self.upgrading: Exchange | None = None  # an upgrade request not answered yet
        self.upgrade_body = 0  # its declared body length (then it is proxied as plain)
        self.peer = ("", 0)
        self.peer_ip = ""
        self.peer_ip_b = b""
        self.peer_trusted = False
        self.fwd_tail = b"x-forwarded-for: \r\nx-forwarded-proto: " + self.proto + b"\r\n\r\n"

    # -- transport callbacks -------------------------------------------------------------

    def connection_made(self, transport) -> None:
        """A client connected: note its address and start the header-read deadline."""
        self.transport = transport
        # The parser calls this protocol back: a cycle, broken by let_go. Made here, not in
        # __init__: a TLS connection whose handshake fails never reaches connection_made,
        # and its protocol must still be freed by reference counting.
        self.parser = HttpRequestParser(self)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = peer
            self.peer_ip = peer[0]
            self.peer_ip_b = peer[0].encode()
            self.peer_trusted = self.gw.is_trusted(peer[0])
            self.scan_mode |= self.peer_trusted
        self.fwd_tail = (
            b"x-forwarded-for: " + self.peer_ip_b + b"\r\nx-forwarded-proto: " + self.proto
            + b"\r\n\r\n"
        )  # fmt: skip
        self.gw.clients.add(self)
        self.deadline = self.gw.now() + self.gw.config.header_timeout

    def connection_lost(self, exc) -> None:
        """The client went away: an unfinished exchange ends as 499 and its upstream is closed."""
        self.closed = True
        self.gw.clients.discard(self)
        ex = self.active
        if ex is not None and not ex.finished:
            ex.error = ex.error or "client closed the connection"
            if not ex.resp_started:
                ex.status = 499
            self._end(ex, close=True)  # drops the upstream connection still bound to it
        self.let_go()

    def let_go(self) -> None:
        """This protocol no longer serves its connection: drop every reference that could
        lead back to it (the parser calls it back, exchanges name it as their client), so it
        is freed by reference counting alone, never left to the cyclic collector."""
        self.parser = None
        self.cur = self.active = self.body_ex = self.upgrading = None
        self.queue = None
        self.stash = None

    def data_received(self, data: bytes) -> None:
        """Frame requests from the client's bytes: the native scan first, llhttp for the rest."""
        if self.ignore:
            if self.lingering:  # discarded while the refusal's close lingers
                self.deadline = self.gw.clock + self.linger_quiet()
            return
        if self.stash is not None:  # stalled (reading is paused): keep the order
            self.stash += data
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
                r = scan_request(data, start, self.peer_ip_b, self.scan_mode, self.max_head)
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
                        self.deadline = self.gw.clock + self.gw.config.idle_timeout
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
                if self.active is None and not self.queue:
                    self.active = ex
                    self._dispatch(ex)
                else:
                    self._enqueue(ex)
                if not ex.keep_alive and ex.body_done:
                    self.ignore = True  # nothing may follow a request that closes
                if self.ignore or end == len(data):
                    return
                start = end
                if self.stalled:  # max_pipelined queued: the rest waits, reading is paused
                    self._stash_rest(data[start:])
                    return
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
        gw = self.gw
        self.deadline = gw.clock + gw.config.idle_timeout
        if not ex.finished:
            up = ex.upstream
            if up is not None and up.transport is not None:
                up.transport.write(piece)
                up.deadline = gw.clock + gw.config.upstream_timeout
            else:
                ex.pending.append(piece)
                ex.pending_size += n
                self.buffering(ex)
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
        self.feeds += 1
        fresh = not self.in_msg  # a request starts at data[0] (after optional CRLFs)
        completed = self.completed
        try:
            self.parser.feed_data(data)
        except HttpParserCallbackError as exc:
            self._callback_failed(exc.__context__)  # no local keeps it: its frames would
            return  # form a cycle with this one, holding the exchange until a collection
        except HttpParserUpgrade as exc:  # llhttp stops after an upgrade request's head
            self.upgrade_paused(data, exc.args[0])
        except HttpParserError as exc:
            self._reject(400, f"malformed request: {exc}")
            return
        self.boundary = not self.in_msg
        cur = self.cur
        if cur is not None and not cur.head_done:
            # A head continues in the next read. Its size so far, as a lower bound: what the
            # callbacks saw of it in the read it began in, then every later read whole.
            if self.hfeed == self.feeds:
                # nothing else was in this read: all of it is this head; else (requests before
                # it) what the callbacks saw, at most one read short
                self.hcarry = len(data) if fresh and completed == self.completed else self.hsize
                self.deadline = self.gw.clock + self.gw.config.header_timeout
            else:
                self.hcarry += len(data)
            if self.hcarry > self.max_head:
                self._reject(431, "request head too large")
                return
        ex = self.active
        if ex is not None and ex.pending:
            up = ex.upstream
            if up is not None and up.transport is not None:
                pending = ex.pending
                up.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
                up.deadline = self.gw.clock + self.gw.config.upstream_timeout
                ex.pending = []
                ex.pending_size = 0
                self.flushed()

    def _callback_failed(self, cause: BaseException | None) -> None:
        """A parser callback raised ``cause``: a refusal, or a bug answered with a 500."""
        if isinstance(cause, Refuse):
            self._reject(cause.status, cause.text)
            return
        log.exception("internal error while handling a request", exc_info=cause)
        self._reject(500, "internal gateway error")

    # -- parser callbacks (the slow path) ---------------------------------------------------

    def on_message_begin(self) -> None:
        """llhttp: a request starts."""
        self.in_msg = True
        self.hsize = 0
        self.hfeed = self.feeds

    def on_url(self, url: bytes) -> None:
        """llhttp: (part of) the request target; the first part creates the exchange."""
        ex = self.cur
        if ex is None:
            self.cur = ex = Exchange(self, url)
            ex.headers = []
            ex.cookies = []
            ex.pending = []
            self.hsize += _LINE_MIN
        else:
            ex.path += url
        self.hsize += len(url)
        if self.hsize > self.max_head:
            raise Refuse(431, "request head too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        """llhttp: one header, classified (hop-by-hop, cookie, forwarded, kept); trailer
        fields (after a chunked body) are dropped: they never become request headers."""
        ex = self.cur
        if ex.head_done:
            return
        self.hsize += len(name) + len(value) + 3
        if self.hsize > self.max_head:
            raise Refuse(431, "request head too large")
        lname = name.lower()
        kind = _CLASS_GET(lname)
        if kind is None:
            ex.headers.append((lname, name, value))
        elif kind == H_HOST:
            if ex.host is not None:
                raise Refuse(400, "duplicate Host header")
            ex.host = value = value.rstrip(b" \t")
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
            drop = [t for t in connection_tokens(value) if t not in CONNECTION_KEEPS]
            if drop:
                ex.conn_drop = set(drop) | (ex.conn_drop or set())
        elif kind == H_TE_FRAMING:
            ex.chunked = True  # llhttp refuses any Transfer-Encoding not ending in chunked
        elif kind == H_UPGRADE:
            ex.upgrade = value if ex.upgrade is None else ex.upgrade + b", " + value
        elif kind != 5:  # Expect and friends pass; 5 (H_HOP) is dropped
            ex.headers.append((lname, name, value))

    def on_headers_complete(self) -> None:
        """llhttp: the head is complete; check it (request.py), then route and send it."""
        ex = self.cur
        parser = self.parser
        ex.head_done = True
        ex.method = method = parser.get_method()
        ex.keep_alive = parser.should_keep_alive()
        ex.http10 = check_version(parser.get_http_version(), ex.chunked)
        ex.is_head = method == b"HEAD"
        ex.t0 = perf_counter()
        if method == b"CONNECT":
            raise Refuse(405, "CONNECT is not supported")
        check_target(ex)
        check_host(ex, ex.http10)
        limit = self.gw.config.max_body_bytes
        if limit and not ex.chunked and declared_length(ex.headers) > limit:
            raise Refuse(413, f"request body larger than {limit} bytes")
        if parser.should_upgrade():  # Upgrade and Connection: upgrade (CONNECT is refused)
            self.offer_upgrade(ex)
        else:
            ex.upgrade = None
        self.deadline = self.gw.clock + self.gw.config.idle_timeout  # the body may follow
        if self.active is None and not self.queue:
            self.active = ex
            self._dispatch(ex)
        elif self.queue is not None and len(self.queue) >= self.gw.config.max_pipelined:
            raise Refuse(503, "too many pipelined requests")
        else:
            self._enqueue(ex)

    def on_body(self, body: bytes) -> None:
        """llhttp: body bytes, counted against --max-body-bytes and queued for the upstream."""
        ex = self.cur
        n = len(body)
        ex.body_size += n
        gw = self.gw
        limit = gw.config.max_body_bytes
        if limit and ex.body_size > limit:
            raise Refuse(413, f"request body larger than {limit} bytes")
        self.deadline = gw.clock + gw.config.idle_timeout
        if ex.finished:
            return
        ex.pending.append(b"%x\r\n%b\r\n" % (n, body) if ex.chunked else body)
        ex.pending_size += n
        if ex.upstream is None:
            self.buffering(ex)

    def on_message_complete(self) -> None:
        """llhttp: the request is complete (the chunked terminator is queued if needed)."""
        self.in_msg = False
        self.completed += 1
        ex = self.cur
        self.cur = None
        ex.body_done = True
        if ex.chunked:
            if not ex.finished:
                ex.pending.append(b"0\r\n\r\n")
            if not self.parser.should_keep_alive():  # llhttp read Connection in the trailers
                ex.keep_alive = False
        if not ex.keep_alive and ex is not self.upgrading:  # upgrade_paused decides
            self.ignore = True

    # -- routing and upstream selection ----------------------------------------------------

    def cookie_value(self) -> str:
        """The generated affinity cookie value: same for every request on this connection."""
        if self._cookie is None:
            local = self.transport.get_extra_info("sockname")
            self._cookie = generate_cookie_value(_addr(self.peer), _addr(local))
        return self._cookie

    def _dispatch(self, ex: Exchange) -> None:
        if ex.status:  # refused while others were ahead of it: answered in its turn
            self.local_response(ex, ex.status, ex.error)
            return
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
        sroute = route.session
        if sroute is not None:  # hard before soft (sessions.py)
            d = decide_request(sroute, ex, gw.session_keys.ring)
            if d is not None:
                if d.action == REJECT:
                    self.local_response(ex, 503, STRICT_REFUSAL)
                    return
                i = honoured_index(sroute, d)
                if i is not None:
                    self._send_to(ex, i)
                    return
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
        if ex.session is not None:
            prepare_write(self.gw, ex, target)
        ex.attempts += 1
        route.active[i] += 1
        route.total_active += 1
        if ex.hash is not None:  # sessions_seen: this session was just sent to this pod
            self.gw.seen.store(route.sid, ex.hash, target.sid, self.gw.clock)
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
        if drop is not None:
            key = ex.route.hkey  # the header the route hashes on routed it: it is kept
            if isinstance(key, HeaderKey):
                drop = drop - {key.name.lower().encode("latin-1")}
        for lname, name, value in ex.headers:
            if drop is None or lname not in drop:
                parts += (name, b": ", value, b"\r\n")
        if ex.host is None:
            parts.append(b"host: " + ex.route.fqdn.encode() + b"\r\n")
        if ex.upgrade is not None:
            parts.append(b"connection: upgrade\r\nupgrade: " + ex.upgrade + b"\r\n")
        if ex.xff is None and ex.xfp is None and not ex.chunked:
            parts.append(self.fwd_tail)  # the common case, prepared once per connection
            return b"".join(parts)
        xff = self.peer_ip_b if ex.xff is None else ex.xff + b", " + self.peer_ip_b
        xfp = ex.xfp if (self.peer_trusted and ex.xfp) else self.proto
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
        status = 504 if timeout else 502
        failed = f"upstream connect failed: {target.authority}: {why}"
        self._next_endpoint(ex, tried_index, why, status, failed)

    def _next_endpoint(
        self, ex: Exchange, tried_index: int, why: str, status: int, failed: str, other=False
    ) -> None:
        """``ex`` got nothing from ``ex.target``: send it to the next endpoint of the route
        (attempt + 1, skipping endpoints tried or ejected) while attempts remain, else answer
        ``status`` with ``failed``; with ``other``, only to an endpoint not tried yet. A strict
        session naming that endpoint gets 503 instead."""
        gw = self.gw
        target = ex.target
        if ex.tried is None:
            ex.tried = set()
        ex.tried.add(tried_index)
        d = ex.session
        if d is not None and d.action == HONOUR and ex.route.session.spec.strict:
            self.local_response(ex, 503, f"{STRICT_REFUSAL}: {target.authority}: {why}")
            return
        if ex.attempts < gw.config.connect_attempts:
            route = ex.route
            i = route.pick(ex, ex.attempt + 1, ex.tried, gw.ejected)
            if i is None:
                i = route.pick(ex, ex.attempt + 1, ex.tried, None)
            if i is not None and not (other and i in ex.tried):
                self._send_to(ex, i)
                return
        self.local_response(ex, status, failed)

    def upstream_failed(self, ex: Exchange, conn, why: str, answered: bool) -> None:
        """The upstream closed before its response head was complete. A pooled connection that
        sent nothing back is stale: a request without a body is resent once on a fresh one.
        An idempotent request without a body that got not a byte back on a fresh connection (a
        pod closing as it shuts down) goes to the next endpoint, as nginx's default
        ``proxy_next_upstream error`` does; anything else gets 502."""
        tried_index = ex.index
        self._release_slot(ex)
        ex.upstream = None
        if ex.finished or self.closed:
            return
        if (
            conn.reused
            and not answered
            and not ex.stale_retry
            and ex.body_done
            and ex.body_size == 0
        ):
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
        if not answered and ex.body_done and ex.body_size == 0 and ex.method in RESENDABLE:
            ex.pending = [ex.head]  # it went out already (no body): send it again, whole
            failed = f"{why}: {ex.target.authority}"
            self._next_endpoint(ex, tried_index, why, 502, failed, other=True)
            return
        self.local_response(ex, 502, f"{why}: {ex.target.authority}")
