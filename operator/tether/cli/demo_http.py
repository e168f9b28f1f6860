"""Small HTTP clients for the demo and the end-to-end suite, and who answered each request.

Which pod answered: the lab's backend names its pod (``X-Pod-Name``); a real image such as
go-httpbin does not, so every request carries a unique ``tether-req`` query parameter and the
gateway's own access log (``path`` → ``upstream_pod``) says where it went. That works for any
backend image, on the lab and on kind alike.
"""

from __future__ import annotations

import http.client
import json
import secrets
import time
from dataclasses import dataclass, field

GATEWAY_SELECTOR = "app.kubernetes.io/name=tether-gateway"
TAG = "tether-req"


@dataclass
class Reply:
    status: int
    pod: str
    set_cookies: list[str]
    tag: str = ""
    sent: float = field(default=0.0)


def tagged(path: str) -> tuple[str, str]:
    """`path` with a unique `tether-req` query parameter, and that tag."""
    tag = secrets.token_hex(8)
    return f"{path}{'&' if '?' in path else '?'}{TAG}={tag}", tag


class Connection(http.client.HTTPConnection):
    """HTTPConnection whose socket comes from `connect_fn(host, port, timeout)` (a socket made
    in the cluster's network, e.g. the lab's namespace or the kind node's)."""

    def __init__(self, host: str, port: int, connect_fn=None, timeout: float = 10) -> None:
        super().__init__(host, port, timeout=timeout)
        self._connect_fn = connect_fn

    def connect(self) -> None:
        """Open the socket through `connect_fn` when one was given."""
        if self._connect_fn is None:
            return super().connect()
        self.sock = self._connect_fn(self.host, self.port, self.timeout)


def request(
    host: str,
    port: int,
    path: str,
    cookie: str | None = None,
    conn: http.client.HTTPConnection | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One GET through the gateway, tagged; reuses ``conn`` (keep-alive) when given."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(host, port, timeout=10)
    target, tag = tagged(path)
    try:
        hdrs = dict(headers or {})
        if cookie:
            hdrs["Cookie"] = cookie
        sent = time.time()
        conn.request("GET", target, headers=hdrs)
        resp = conn.getresponse()
        resp.read()
        return Reply(
            resp.status,
            resp.getheader("X-Pod-Name", ""),
            resp.headers.get_all("Set-Cookie") or [],
            tag,
            sent,
        )
    finally:
        if own:
            conn.close()


class Answers:
    """Fills in `Reply.pod` from the gateway's access log where the reply did not name it."""

    def __init__(
        self, cluster, namespace: str = "tether-system", selector: str = GATEWAY_SELECTOR
    ) -> None:
        self.cluster, self.namespace, self.selector = cluster, namespace, selector

    def _log_pods(self, since_seconds: int) -> dict[str, str]:
        out = self.cluster.kubectl(
            "logs",
            "-n",
            self.namespace,
            "-l",
            self.selector,
            "--tail=-1",
            "--prefix=false",
            "--max-log-requests=20",
            f"--since={since_seconds}s",
            check=False,
        )
        found = {}
        for line in out.splitlines():
            if not line.startswith("{") or f"{TAG}=" not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            tag = entry["path"].rpartition(f"{TAG}=")[2][:16]
            found[tag] = entry.get("upstream_pod") or ""
        return found

    def resolve(self, replies: list[Reply], timeout: float = 30) -> list[Reply]:
        """Name the pod of every reply (access-log lines are flushed within about a second)."""
        todo = [r for r in replies if not r.pod]
        deadline = time.monotonic() + timeout
        while todo:
            since = int(time.time() - min(r.sent for r in todo)) + 5
            found = self._log_pods(since)
            for r in todo:
                r.pod = found.get(r.tag, "")
            todo = [r for r in todo if not r.pod]
            if todo and time.monotonic() > deadline:
                raise TimeoutError(f"{len(todo)} request(s) not in the gateway's access log")
            if todo:
                time.sleep(0.5)
        return replies


class Browser:
    """Keeps one keep-alive connection and sends back the cookie it was given, as a browser."""

    def __init__(self, host: str, port: int, connect_fn=None) -> None:
        self.conn = Connection(host, port, connect_fn)
        self.host, self.port = host, port
        self.cookie: str | None = None
        self.first_set_cookie: str | None = None
        self.set_cookies: list[str] = []

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        """GET ``path``; remember a Set-Cookie's ``name=value`` pair like a browser does."""
        reply = request(self.host, self.port, path, self.cookie, self.conn, headers)
        for sc in reply.set_cookies:
            if self.first_set_cookie is None:
                self.first_set_cookie = sc
            self.set_cookies.append(sc)
            self.cookie = sc.split(";", 1)[0]
        return reply

    def close(self) -> None:
        """Close the browser's keep-alive connection."""
        self.conn.close()


def send_sessions(
    host: str,
    port: int,
    cookies: list[str],
    path: str = "/get",
    connect_fn=None,
    headers: dict[str, str] | None = None,
) -> list[Reply]:
    """One request per cookie over one keep-alive connection; replies in order."""
    conn = Connection(host, port, connect_fn)
    try:
        return [request(host, port, path, c, conn, headers) for c in cookies]
    finally:
        conn.close()


def route_sessions(
    host: str,
    port: int,
    cookies: list[str],
    path: str = "/get",
    answers: Answers | None = None,
    connect_fn=None,
    headers: dict[str, str] | None = None,
) -> list[str]:
    """The pod each cookie lands on (resolved from the access log when the reply lacks it)."""
    replies = send_sessions(host, port, cookies, path, connect_fn, headers)
    if answers is not None:
        answers.resolve(replies)
    return [r.pod for r in replies]


def session_cookie(set_cookies: list[str], name: str) -> str | None:
    """The ``name=value`` pair of the Set-Cookie named ``name`` (None if there is none)."""
    for sc in set_cookies:
        if sc.startswith(f"{name}="):
            return sc.split(";", 1)[0]
    return None


class SessionClient:
    """One browser of a persistent-session Service: it keeps the session cookie it is given
    (and any newer one) and sends it back, as a browser does."""

    def __init__(self, name: str, cookie: str | None = None, other: str | None = None) -> None:
        self.name = name
        self.cookie = cookie
        self.other = other  # another cookie the browser sends along (e.g. the hash rule's)
        self.pods: list[str] = []  # the pod of every reply, in order

    @property
    def header(self) -> str | None:
        """The Cookie header this browser sends."""
        parts = [c for c in (self.other, self.cookie) if c]
        return "; ".join(parts) or None

    def take(self, reply: Reply) -> None:
        """Remember a re-issued session cookie (the gateway moved or refreshed the session)."""
        fresh = session_cookie(reply.set_cookies, self.name)
        if fresh is not None:
            self.cookie = fresh

    @property
    def moves(self) -> int:
        """How often consecutive replies came from different pods."""
        return sum(a != b for a, b in zip(self.pods, self.pods[1:], strict=False))


def visit(
    host: str,
    port: int,
    clients: list[SessionClient],
    path: str = "/get",
    answers: Answers | None = None,
    connect_fn=None,
    headers: dict[str, str] | None = None,
) -> list[Reply]:
    """One request per client (its cookie, if any) over one keep-alive connection; each
    client keeps what the gateway set and records the pod that answered."""
    conn = Connection(host, port, connect_fn)
    try:
        replies = [request(host, port, path, c.header, conn, headers) for c in clients]
    finally:
        conn.close()
    if answers is not None:
        answers.resolve(replies)
    for client, reply in zip(clients, replies, strict=True):
        client.take(reply)
        client.pods.append(reply.pod)
    return replies
