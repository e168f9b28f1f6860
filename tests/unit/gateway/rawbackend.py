"""An upstream that answers with exactly the bytes a test scripts, to play a misbehaving app.

``RawBackend(h, script)`` listens on the harness loop. Every complete request it receives is
recorded (``requests``: method, url, headers, body, connection number, request number on that
connection) and passed to ``script(req)``, which returns the bytes to write (``b""``: nothing;
a list: pieces written a little apart), plus whether to close the connection afterwards, or
None to close without answering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httptools

Reply = tuple[bytes | list[bytes], bool] | None


def ok(body: bytes = b"ok", extra: bytes = b"") -> bytes:
    """A keep-alive 200 with a Content-Length body."""
    return b"HTTP/1.1 200 OK\r\n%bContent-Length: %d\r\n\r\n%b" % (extra, len(body), body)


class _Conn(asyncio.Protocol):
    def __init__(self, backend: RawBackend) -> None:
        self.backend = backend
        backend.connections += 1
        self.number = backend.connections
        self.count = 0
        self.parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.backend.errors.append(data)
            self.transport.close()

    def on_message_begin(self) -> None:
        self.req = {"url": b"", "headers": [], "body": b""}

    def on_url(self, url: bytes) -> None:
        self.req["url"] += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.req["headers"].append((name.decode().lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.req["body"] += body

    def on_message_complete(self) -> None:
        self.count += 1
        req = self.req
        req.update(
            method=self.parser.get_method().decode(),
            url=req["url"].decode(),
            conn=self.number,
            nth=self.count,
        )
        self.backend.requests.append(req)
        reply = self.backend.script(req)
        if reply is None:
            self.transport.close()
            return
        data, close = reply
        if isinstance(data, list):  # pieces, each in its own write, a little apart
            asyncio.get_running_loop().create_task(self._trickle(data, close))
            return
        if data:
            self.transport.write(data)
        if close:
            self.transport.close()

    async def _trickle(self, pieces: list[bytes], close: bool) -> None:
        for piece in pieces:
            if self.transport.is_closing():
                return
            self.transport.write(piece)
            await asyncio.sleep(self.backend.delay)
        if close:
            self.transport.close()


class RawBackend:
    """See module docstring."""

    def __init__(self, h, script: Callable[[dict], Reply], delay: float = 0.002) -> None:
        self.script = script
        self.delay = delay  # between the pieces of a reply given as a list
        self.requests: list[dict] = []
        self.errors: list[bytes] = []
        self.connections = 0

        async def _start():
            server = await h.loop.create_server(lambda: _Conn(self), "127.0.0.1", 0)
            return server

        self.server = h.run(_start())
        self.port = self.server.sockets[0].getsockname()[1]
        h.backends.append(self)  # closed with the harness

    def urls(self) -> list[str]:
        """The request targets received, in order."""
        return [r["url"] for r in self.requests]
