"""Shared pieces of the adversarial suites (test_hostile_*.py): gateways in front of real
backends, and reading what a client really received off the socket."""

from __future__ import annotations

import socket

import httptools

from tether.hashing import Host, Maglev, MaglevConfig
from tether.models.table import HashKey

from .docs import cookie_key, make_document
from .rawbackend import RawBackend


def one(h, **gw):
    """A gateway with one round-robin Service (httpbin, default route) over backend b0."""
    b = h.backend("b0")
    h.write_table("svc.json", make_document([("127.0.0.1", b.port, "b0")], algorithm=None))
    gateway = h.gateway(**gw)
    h.wait(lambda: gateway.loaded)
    return gateway, b


def raw(h, script, delay: float = 0.002, **gw):
    """A gateway whose only Service is a RawBackend playing ``script``."""
    b = RawBackend(h, script, delay)
    h.write_table("svc.json", make_document([("127.0.0.1", b.port, "raw")], algorithm=None))
    gateway = h.gateway(**gw)
    h.wait(lambda: gateway.loaded)
    return gateway, b


def two_services(h, **gw):
    """Services ``one`` and ``two`` (Host-routed, no default route): backends b1 and b2."""
    backends = []
    for name in ("one", "two"):
        b = h.backend(f"b-{name}")
        doc = make_document([("127.0.0.1", b.port, b.name)], algorithm=None, name=name)
        h.write_table(f"{name}.json", doc)
        backends.append(b)
    gateway = h.gateway(**gw)
    h.wait(lambda: gateway.loaded)
    return gateway, backends


def sticky(h, key: HashKey | None = None, n: int = 3, **gw):
    """A Maglev route over n backends hashing on ``key`` (a cookie ``sid`` without ttl)."""
    backends = [h.backend(f"b{i}") for i in range(n)]
    eps = [("127.0.0.1", b.port, b.name) for b in backends]
    h.write_table("svc.json", make_document(eps, hash_key=key or cookie_key("sid", ttl=None)))
    gateway = h.gateway(**gw)
    h.wait(lambda: gateway.loaded)
    maglev = Maglev.build([Host(f"127.0.0.1:{b.port}") for b in backends], MaglevConfig(65537))
    return gateway, backends, maglev


class Response:
    """One response as the client parsed it."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode().lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def header(self, name: str) -> list[str]:
        """All values of a header."""
        return [v for k, v in self.headers if k == name]


class _Reader:
    def __init__(self) -> None:
        self.out: list[Response] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self.out.append(Response())

    def on_header(self, name: bytes, value: bytes) -> None:
        self.out[-1].on_header(name, value)

    def on_headers_complete(self) -> None:
        self.out[-1].status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.out[-1].on_body(body)


def responses(data: bytes, heads: set[int] = frozenset()) -> list[Response]:
    """Every response in ``data``, in order; fails the test on bytes that are not responses.

    ``heads``: indexes of the responses that answer HEAD requests (they have no body).
    """
    rd = _Reader()
    pos = 0
    while len(rd.out) in heads:  # a head alone: a parser of its own, fed nothing after it
        end = data.index(b"\r\n\r\n", pos) + 4
        rd.parser = httptools.HttpResponseParser(rd)
        rd.parser.feed_data(data[pos:end])
        pos = end
    rd.parser = httptools.HttpResponseParser(rd)
    if pos < len(data):
        rd.parser.feed_data(data[pos:])
    return rd.out


def send(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data``, read until the gateway closes; fails if it does not close in time."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def request(path: str = "/get", host: str = "a", extra: str = "", body: bytes = b"") -> bytes:
    """A GET (or POST when ``body``) head as bytes; ``extra`` is more header lines."""
    method = "POST" if body else "GET"
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}{length}\r\n".encode() + body


CLOSE = "Connection: close\r\n"
