"""Upstreams that accept upgrades, for the tunnel tests (test_websocket*.py).

- ``TunnelBackend``: a raw upstream. A plain request gets a 200 naming the backend (its JSON
  body lists the request's headers); an upgrade request gets what ``mode`` says ("switch": a
  101 and then a raw byte tunnel; "refuse": 403, and the connection stays HTTP; "bare": a 101
  without Upgrade). In the tunnel it records every byte, echoes them when ``echo`` is on, and
  the test can write, half-close or stop reading through the connection object.
- ``ws_backends``: real ``websockets`` servers; each greets with its name and the handshake
  headers it received, then echoes every message. A plain GET gets its name in a 200.
- ``handshake``: a raw client socket through the upgrade; the rest is the tunnel.
"""

from __future__ import annotations

import asyncio
import json
import socket
from types import SimpleNamespace

import httptools
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from tether.hashing import Host, Maglev, MaglevConfig

from .docs import make_document

UPGRADE = "Connection: Upgrade\r\nUpgrade: websocket\r\n"


def upgrade_request(path: str = "/ws", host: str = "a", extra: str = "") -> bytes:
    """An upgrade request head (WebSocket-like, without the key: the raw backends need none)."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{UPGRADE}{extra}\r\n".encode()


def read_head(s: socket.socket) -> tuple[bytes, bytes]:
    """Read one response head from a raw socket: (head, bytes read after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


def handshake(port: int, request: bytes | None = None, timeout: float = 5.0):
    """Connect, send an upgrade request, read the answer head: (socket, head, early bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(request or upgrade_request())
    head, rest = read_head(s)
    return s, head, rest


def recv_exactly(s: socket.socket, n: int) -> bytes:
    """Read exactly n bytes (fails the test on an early close)."""
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return out


class _Conn(asyncio.Protocol):
    def __init__(self, backend: TunnelBackend) -> None:
        self.backend = backend
        self.parser = httptools.HttpRequestParser(self)
        self.tunnel = False
        self.received = bytearray()
        self.eof = False
        self.lost = False
        backend.conns.append(self)

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.lost = True

    def eof_received(self) -> bool:
        self.eof = True
        return self.backend.half_close  # True: keep sending after the client's EOF

    def data_received(self, data: bytes) -> None:
        if self.tunnel:
            self.received += data
            if self.backend.echo:
                self.transport.write(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade(data[exc.args[0] :])
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.req = {"url": b"", "headers": []}

    def on_url(self, url: bytes) -> None:
        self.req["url"] += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.req["headers"].append((name.decode().lower(), value.decode("latin-1")))

    def on_message_complete(self) -> None:
        self.req["method"] = self.parser.get_method().decode()
        self.req["url"] = self.req["url"].decode()
        self.backend.requests.append(self.req)
        if not self.parser.should_upgrade():
            body = json.dumps({"backend": self.backend.name, "headers": self.req["headers"]})
            self.transport.write(_ok(body.encode(), self.backend.name))

    def _upgrade(self, rest: bytes) -> None:
        mode, name = self.backend.mode, self.backend.name
        if mode == "refuse":
            self.transport.write(
                b"HTTP/1.1 403 Forbidden\r\nX-Backend: %s\r\nContent-Length: 2\r\n\r\nno"
                % name.encode()
            )
            self.parser = httptools.HttpRequestParser(self)
            if rest:
                self.data_received(rest)
            return
        upgrade = b"" if mode == "bare" else b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\n%bX-Backend: %s\r\n\r\n%b"
            % (upgrade, name.encode(), self.backend.greeting)
        )
        self.tunnel = True
        if rest:
            self.data_received(rest)


def _ok(body: bytes, name: str) -> bytes:
    return b"HTTP/1.1 200 OK\r\nX-Backend: %s\r\nContent-Length: %d\r\n\r\n%b" % (
        name.encode(), len(body), body,
    )  # fmt: skip


class TunnelBackend:
    """See module docstring."""

    def __init__(self, h, name: str = "t0", mode: str = "switch", greeting: bytes = b"") -> None:
        self.name = name
        self.mode = mode
        self.greeting = greeting  # bytes sent right behind the 101 head, in the same write
        self.echo = True
        self.half_close = False  # like WebSocket servers, close when the client stops sending
        self.conns: list[_Conn] = []
        self.requests: list[dict] = []

        async def _start():
            return await h.loop.create_server(lambda: _Conn(self), "127.0.0.1", 0)

        self.server = h.run(_start())
        self.port = self.server.sockets[0].getsockname()[1]
        h.backends.append(self)  # closed with the harness


def tunnel_gateway(h, n: int = 1, key=None, **gw):
    """A gateway in front of n TunnelBackends (round robin, or Maglev over ``key``)."""
    backends = [TunnelBackend(h, f"t{i}") for i in range(n)]
    eps = [("127.0.0.1", b.port, b.name) for b in backends]
    h.write_table("svc.json", make_document(eps, algorithm="maglev" if key else None,
                                            hash_key=key))  # fmt: skip
    gateway = h.gateway(**gw)
    h.wait(lambda: gateway.loaded)
    return gateway, backends


def ws_backends(h, n: int = 3):
    """n real WebSocket servers named w0..w(n-1) (module docstring): [(name, port)]."""

    def named(name: str):
        async def handler(ws):
            hello = {
                "backend": name,
                "path": ws.request.path,
                "headers": [[k.lower(), v] for k, v in ws.request.headers.raw_items()],
            }
            await ws.send(json.dumps(hello))  # fmt: skip
            async for message in ws:
                await ws.send(message)

        def plain(connection, request):
            if "upgrade" not in request.headers:
                return Response(200, "OK", Headers({"X-Backend": name}), name.encode())
            return None

        return handler, plain

    out = []
    for i in range(n):
        handler, plain = named(f"w{i}")

        async def _start(handler=handler, plain=plain):
            return await serve(
                handler, "127.0.0.1", 0, process_request=plain, max_size=None,
                select_subprotocol=lambda _conn, offered: offered[0] if offered else None,
            )  # fmt: skip

        server = h.run(_start())
        out.append((f"w{i}", server.sockets[0].getsockname()[1]))
        h.backends.append(SimpleNamespace(server=server))  # closed with the harness
    return out


def maglev_of(ports: list[int]) -> Maglev:
    """The Maglev table the gateway builds for endpoints 127.0.0.1:<port> (M = 65537)."""
    return Maglev.build([Host(f"127.0.0.1:{p}") for p in ports], MaglevConfig(65537))
