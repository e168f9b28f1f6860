"""Real loopback sockets for gateway tests: httpbin-like backends and a gateway on one loop.

The loop runs in a background thread; tests talk to it with blocking stdlib clients.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
import threading
from dataclasses import replace

import httptools
import uvloop

from tether.gateway.config import GatewayConfig
from tether.gateway.server import Gateway


class BackendProtocol(asyncio.Protocol):
    """httpbin-ish: every response names the backend and echoes what it received."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.parser = httptools.HttpRequestParser(self)
        self.conn_id = backend.next_conn()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode().lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        keep = self.parser.should_keep_alive()
        asyncio.get_running_loop().create_task(self.respond(method, self.url.decode(), keep))

    async def respond(self, method: str, url: str, keep: bool) -> None:
        b = self.backend
        b.requests.append(
            {"method": method, "url": url, "headers": self.headers, "body": self.body}
        )
        path = url.split("?", 1)[0]
        status = 200
        extra = [("X-Backend", b.name), ("Connection", "keep-alive"), ("Keep-Alive", "timeout=5")]
        if path == "/close-after":
            extra = [("X-Backend", b.name), ("Connection", "close")]
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
        if path.startswith("/slow"):
            await asyncio.sleep(float(url.split("s=", 1)[1]) if "s=" in url else 1.0)
        if path == "/set-cookie":
            extra.append(("Set-Cookie", "app=1; Path=/"))
        if path == "/hop":
            extra += [("Connection", "X-Private"), ("X-Private", "secret"), ("Upgrade", "h2c")]
        body = json.dumps(
            {
                "backend": b.name,
                "method": method,
                "url": url,
                "headers": self.headers,
                "body": self.body.decode("latin-1"),
                "conn": self.conn_id,
            }
        ).encode()
        if path == "/echo":
            body = self.body
        reason = {200: "OK", 418: "I'm a teapot"}.get(status, "X")
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in extra)
        if path in ("/split", "/split-junk", "/junk-after", "/junk-later", "/close-after"):
            await self._framing_case(path, head, body)
        elif path == "/chunked":
            pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
            out = head + "Transfer-Encoding: chunked\r\n\r\n"
            self.transport.write(out.encode())
            for p in pieces:
                self.transport.write(b"%x\r\n%b\r\n" % (len(p), p))
                await asyncio.sleep(0)
            self.transport.write(b"0\r\n\r\n")
        else:
            no_body = method == "HEAD" or status in (204, 304)
            out = head + f"Content-Length: {len(body)}\r\n\r\n"
            self.transport.write(out.encode() + (b"" if no_body else body))
        if not keep or path in ("/close", "/close-after"):
            self.transport.close()

    async def _framing_case(self, path: str, head: str, body: bytes) -> None:
        """Content-Length responses cut or followed by bytes in ways a proxy must survive."""
        whole = (head + f"Content-Length: {len(body)}\r\n\r\n").encode()
        if path == "/split":  # head alone, then the body in three reads
            self.transport.write(whole)
            for i in range(0, len(body), max(1, len(body) // 3)):
                await asyncio.sleep(0.02)
                self.transport.write(body[i : i + max(1, len(body) // 3)])
        elif path == "/split-junk":  # head and some body, then the rest with stray bytes
            self.transport.write(whole + body[:5])
            await asyncio.sleep(0.02)
            self.transport.write(body[5:] + b"JUNK")
        elif path == "/junk-after":  # the response and stray bytes in one write
            self.transport.write(whole + body + b"JUNK")
        elif path == "/junk-later":  # the response, then stray bytes in a later read
            self.transport.write(whole + body)
            await asyncio.sleep(0.05)
            if not self.transport.is_closing():
                self.transport.write(b"JUNK")
        else:
            self.transport.write(whole + body)


class Backend:
    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[dict] = []
        self.connections = 0
        self.server = None
        self.port = 0

    def next_conn(self) -> int:
        self.connections += 1
        return self.connections


class Harness:
    """One event loop thread hosting backends and a gateway."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.tmp = tempfile.TemporaryDirectory()
        self.tables = self.tmp.name
        self.backends: list[Backend] = []
        self.gw: Gateway | None = None

    def run(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        async def _c():
            return fn(*args)

        return self.run(_c())

    def backend(self, name: str, port: int = 0) -> Backend:
        b = Backend(name)

        async def _start():
            b.server = await self.loop.create_server(lambda: BackendProtocol(b), "127.0.0.1", port)
            b.port = b.server.sockets[0].getsockname()[1]

        self.run(_start())
        self.backends.append(b)
        return b

    def stop_backend(self, b: Backend) -> None:
        async def _stop():
            b.server.close()

        self.run(_stop())

    def write_table(self, name: str, doc) -> None:
        path = os.path.join(self.tables, name)
        with open(path + ".tmp", "w") as fh:
            fh.write(doc.dumps() if hasattr(doc, "dumps") else doc)
        os.replace(path + ".tmp", path)

    def gateway(self, **over) -> Gateway:
        cfg = GatewayConfig(
            listen_host="127.0.0.1",
            listen_port=0,
            admin_host="127.0.0.1",
            admin_port=0,
            tables_dir=self.tables,
            poll_interval=0.05,
            access_log="off",
        )
        cfg = replace(cfg, **over)

        async def _start():
            gw = Gateway(cfg, self.loop)
            await gw.start()
            return gw

        self.gw = self.run(_start())
        return self.gw

    def wait(self, predicate, timeout: float = 5.0) -> None:
        """Wait (with a deadline) until predicate() is true, evaluated on the loop thread."""

        async def _w():
            deadline = self.loop.time() + timeout
            while not predicate():
                if self.loop.time() > deadline:
                    raise TimeoutError("condition not reached")
                await asyncio.sleep(0.01)

        self.run(_w(), timeout + 1)

    def close(self) -> None:
        async def _close():
            if self.gw is not None and not self.gw.stopped.is_set():
                self.gw.config = replace(self.gw.config, drain_timeout=0.5)
                await self.gw.shutdown()
            for b in self.backends:
                b.server.close()

        try:
            self.run(_close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.tmp.cleanup()


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes (or timeout); return everything read."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except TimeoutError:
            pass
        return out
