"""The default pod backend: an HTTP/1.1 server (asyncio + httptools) on podIP:port.

Keep-alive and pipelining are supported; responses on one connection go out in request order.
A WebSocket upgrade request is accepted on any path: the pod greets with its name, then echoes
every message (websocket.py); any other upgrade gets 400.
`stop(grace)` is a graceful shutdown: the listening socket closes at once (new connections are
refused), idle connections close, busy ones finish their in-flight requests and then close;
whatever is still open when the grace period ends is aborted.
"""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus

import httptools

from tether.lab.kubelet.httpbin import Pod, Request, Response, handle
from tether.lab.kubelet.websocket import Echo, is_websocket


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def render(resp: Response, pod: Pod, keep_alive: bool, head: bool = False) -> bytes:
    """Return the bytes of `resp` on the wire, stamped with the pod's identity headers."""
    lines = [
        f"HTTP/1.1 {resp.status} {_reason(resp.status)}",
        "Server: tether-lab",
        f"Content-Type: {resp.content_type}",
        f"Content-Length: {len(resp.body)}",
        f"X-Pod-Name: {pod.name}",
        f"X-Pod-Namespace: {pod.namespace}",
        f"X-Pod-IP: {pod.ip}",
        "Connection: keep-alive" if keep_alive else "Connection: close",
    ]
    lines += [f"{k}: {v}" for k, v in resp.headers]
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head_bytes if head else head_bytes + resp.body


class _Connection(asyncio.Protocol):
    def __init__(self, server: Backend) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending: list[Request] = []
        self.keep: list[bool] = []
        self.worker: asyncio.Task | None = None
        self.partial = False  # a request has started arriving but is not complete
        self.closing = False
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._body = bytearray()
        self.upgrade: Request | None = None  # an upgrade request llhttp stopped after
        self.ws: Echo | None = None  # the connection became a WebSocket

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.connections.add(self)
        self.peer = (transport.get_extra_info("peername") or ("", 0))[0]

    def connection_lost(self, exc) -> None:
        self.server.connections.discard(self)
        if self.worker and not self.worker.done():
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        if self.ws is not None:
            self._ws_write(self.ws.feed(data))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            req = self.upgrade
            if req is None or not is_websocket(req) or self.pending:
                self._reply_now(Response(400, b"only WebSocket upgrades\n", "text/plain"), False)
                return
            self.ws = Echo(req, self.server.pod)
            self.server.served += 1
            self._ws_write(self.ws.pending())
            if exc.args[0] < len(data):
                self._ws_write(self.ws.feed(data[exc.args[0] :]))
        except httptools.HttpParserError:
            self._reply_now(Response(400, b"bad request\n", "text/plain"), False)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.partial = True
        self._url, self._headers, self._body = b"", [], bytearray()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.partial = False
        method = self.parser.get_method().decode()
        req = Request(method, self._url.decode("latin-1"), self._headers, bytes(self._body),
                      self.peer, self.server.port)  # fmt: skip
        if self.parser.should_upgrade():  # answered when llhttp stops after it
            self.upgrade = req
            return
        self.pending.append(req)
        self.keep.append(self.parser.should_keep_alive())
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._work())

    # answering
    def _ws_write(self, out: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if out:
            self.transport.write(out)
        if self.ws.done():
            self.transport.close()

    def busy(self) -> bool:
        return self.partial or bool(self.pending)

    def _reply_now(self, resp: Response, keep: bool, head: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        keep = keep and not self.closing
        self.transport.write(render(resp, self.server.pod, keep, head))
        self.server.served += 1
        if not keep:
            self.transport.close()

    async def _work(self) -> None:
        while self.pending:
            req = self.pending[0]
            resp = handle(req, self.server.pod)
            if resp.delay:
                await asyncio.sleep(resp.delay)
            keep = self.keep[0]
            if resp.drip and req.method != "HEAD":
                await self._drip(resp, keep)
            else:
                self._reply_now(resp, keep, head=req.method == "HEAD")
            self.pending.pop(0)
            self.keep.pop(0)
        if self.closing and self.transport and not self.busy():
            self.transport.close()

    async def _drip(self, resp: Response, keep: bool) -> None:
        """Send the head, then the body one byte per interval (httpbin's /drip)."""
        count, interval = resp.drip
        keep = keep and not self.closing
        wire = render(resp, self.server.pod, keep)
        start = len(wire) - len(resp.body)
        for i in range(count):
            if self.transport is None or self.transport.is_closing():
                return
            self.transport.write(wire[: start + 1] if i == 0 else wire[start + i : start + i + 1])
            if i < count - 1:
                await asyncio.sleep(interval)
        self.server.served += 1
        if not keep:
            self.transport.close()

    def shut(self) -> None:
        """Close now if idle, else after the in-flight requests are answered."""
        self.closing = True
        if self.ws is not None:
            self._ws_write(self.ws.going_away())
            return
        if not self.busy() and self.transport:
            self.transport.close()

    def abort(self) -> None:
        if self.transport:
            self.transport.abort()


class Backend:
    """One listening HTTP server for one pod port."""

    def __init__(self, pod: Pod, port: int) -> None:
        self.pod, self.port = pod, port
        self.connections: set[_Connection] = set()
        self.served = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        """Listen on pod.ip:port; on return connections are accepted."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.pod.ip, self.port, reuse_address=True, backlog=1024
        )

    @property
    def listening(self) -> bool:
        """True while the listening socket is open."""
        return self._server is not None and self._server.is_serving()

    async def stop(self, grace: float) -> int:
        """Refuse new connections now, let in-flight requests finish within `grace` seconds,
        abort the rest; return how many connections had to be aborted."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.shut()
        deadline = time.monotonic() + max(grace, 0.0)
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        aborted = len(self.connections)
        for conn in list(self.connections):
            conn.abort()
        return aborted
