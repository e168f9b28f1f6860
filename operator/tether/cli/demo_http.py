"""Small HTTP clients for the demo: plain requests, a browser-like session, many sessions.

Each request names the pod that answered (the lab's backend sets ``X-Pod-Name``), which is
all the demo needs to show where traffic went.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    pod: str
    set_cookies: list[str]


def request(
    host: str,
    port: int,
    path: str,
    cookie: str | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> Reply:
    """One GET through the gateway; reuses ``conn`` (keep-alive) when given."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(host, port, timeout=10)
    try:
        headers = {"Cookie": cookie} if cookie else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return Reply(
            resp.status, resp.getheader("X-Pod-Name", "?"), resp.headers.get_all("Set-Cookie") or []
        )
    finally:
        if own:
            conn.close()


class Browser:
    """Keeps one keep-alive connection and sends back the cookie it was given, as a browser."""

    def __init__(self, host: str, port: int) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=10)
        self.host, self.port = host, port
        self.cookie: str | None = None
        self.first_set_cookie: str | None = None

    def get(self, path: str) -> Reply:
        """GET ``path``; remember a Set-Cookie's ``name=value`` pair like a browser does."""
        reply = request(self.host, self.port, path, self.cookie, self.conn)
        for sc in reply.set_cookies:
            if self.first_set_cookie is None:
                self.first_set_cookie = sc
            self.cookie = sc.split(";", 1)[0]
        return reply

    def close(self) -> None:
        """Close the browser's keep-alive connection."""
        self.conn.close()


def route_sessions(host: str, port: int, cookies: list[str], path: str = "/get") -> list[str]:
    """The pod each cookie lands on, over one keep-alive connection."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        return [request(host, port, path, c, conn).pod for c in cookies]
    finally:
        conn.close()
