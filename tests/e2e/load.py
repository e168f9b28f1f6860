"""Bounded HTTP load through the gateway, counting every failed request by kind.

Each client is one keep-alive connection (http.client, as a browser or an HTTP library keeps
one), paced to `rate` requests per second, cycling through session cookies so every pod gets
traffic. A request fails as:
- `connect`: the TCP connection to the gateway could not be made;
- `timeout`: no complete response within `timeout` seconds;
- `broken`: the connection broke after it was made (reset, closed mid-response);
- `5xx`: a response with status 500-599 (by code in `codes`);
- `other`: any other status than `expect`, or an answer from another namespace's pod (the
  lab's backend names its pod's namespace in `X-Pod-Namespace`; go-httpbin on kind does not).
A failed connection is replaced by a new one (counted only as that one failure). The load is
bounded: it stops after `max_seconds` or `max_requests`, whichever comes first, even if the
test forgets to stop it.
"""

from __future__ import annotations

import http.client
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from tether.cli.demo_http import Connection

KINDS = ("connect", "timeout", "broken", "5xx", "other")


@dataclass
class Failure:
    at: float  # time.monotonic() of the request
    kind: str
    detail: str
    client: int


@dataclass
class LoadReport:
    sent: int = 0
    ok: int = 0
    failures: list[Failure] = field(default_factory=list)
    codes: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        """Requests that did not get the expected answer."""
        return len(self.failures)

    def by_kind(self) -> dict[str, int]:
        """Failed requests per kind (every kind listed, zeros included)."""
        seen = Counter(f.kind for f in self.failures)
        return {k: seen.get(k, 0) for k in KINDS}

    def __add__(self, other: LoadReport) -> LoadReport:
        return LoadReport(
            self.sent + other.sent,
            self.ok + other.ok,
            self.failures + other.failures,
            self.codes + other.codes,
            max(self.seconds, other.seconds),
        )

    def summary(self) -> str:
        """One line for a log or an assertion message."""
        kinds = ", ".join(f"{k} {n}" for k, n in self.by_kind().items() if n)
        sample = "; ".join(f"{f.kind}: {f.detail}" for f in self.failures[:5])
        return f"{self.sent} requests in {self.seconds:.1f} s, {self.failed} failed" + (
            f" ({kinds}); first: {sample}" if self.failed else ""
        )


class Load:
    """`clients` keep-alive clients against `targets` ((host, port, connect_fn) each; client i
    uses target i mod len), each at most `rate` requests/s, until `stop()` or the bounds."""

    def __init__(
        self,
        targets: list[tuple[str, int, object]],
        host: str,
        *,
        clients: int = 4,
        rate: float = 20.0,
        path: str = "/get",
        cookie: str = "sticky-session-key",
        sessions: int = 64,
        timeout: float = 5.0,
        expect: int = 200,
        max_seconds: float = 600.0,
        max_requests: int = 100_000,
        namespace: str | None = None,
    ) -> None:
        self.targets, self.host, self.path = targets, host, path
        self.clients, self.interval, self.timeout, self.expect = clients, 1 / rate, timeout, expect
        self.cookies = [f'{cookie}="{secrets.token_hex(8)}"' for _ in range(sessions)]
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.namespace = namespace
        self.report = LoadReport()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._began = 0.0

    # -- running -------------------------------------------------------------------------------
    def start(self) -> Load:
        """Start the clients; returns at once."""
        self._began = time.monotonic()
        for i in range(self.clients):
            th = threading.Thread(target=self._client, args=(i,), name=f"load-{i}", daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def stop(self) -> LoadReport:
        """Stop the clients, wait for their last request, and return the report."""
        self._stop.set()
        for th in self._threads:
            th.join(timeout=self.timeout + 10)
        self.report.seconds = time.monotonic() - self._began
        return self.report

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def sent(self) -> int:
        """Requests sent so far."""
        with self._lock:
            return self.report.sent

    def failures_since(self, mark: float) -> list[Failure]:
        """Failures of requests sent at or after `mark` (time.monotonic())."""
        with self._lock:
            return [f for f in self.report.failures if f.at >= mark]

    # -- one client ----------------------------------------------------------------------------
    def _done(self) -> bool:
        return (
            self._stop.is_set()
            or time.monotonic() - self._began > self.max_seconds
            or self.report.sent >= self.max_requests
        )

    def _record(self, at: float, status: int | None, kind: str = "", detail: str = "", i=0):
        with self._lock:
            self.report.sent += 1
            if status is not None:
                self.report.codes[status] += 1
            if not kind:
                self.report.ok += 1
            else:
                self.report.failures.append(Failure(at, kind, detail, i))

    def _client(self, i: int) -> None:
        host, port, connect_fn = self.targets[i % len(self.targets)]
        conn: Connection | None = None
        n, next_at = i, time.monotonic()
        while not self._done():
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            next_at = max(next_at + self.interval, time.monotonic() - self.interval)
            at = time.monotonic()
            if conn is None:
                conn = Connection(host, port, connect_fn, timeout=self.timeout)
                try:
                    conn.connect()
                except OSError as e:
                    self._record(at, None, "connect", repr(e), i)
                    conn = None
                    continue
            cookie = self.cookies[n % len(self.cookies)]
            n += self.clients
            try:
                conn.request("GET", self.path, headers={"Host": self.host, "Cookie": cookie})
                resp = conn.getresponse()
                body = resp.read()
            except TimeoutError as e:
                self._record(at, None, "timeout", repr(e), i)
                conn.close()
                conn = None
                continue
            except (OSError, http.client.HTTPException) as e:
                self._record(at, None, "broken", repr(e), i)
                conn.close()
                conn = None
                continue
            status = resp.status
            kind = "" if status == self.expect else ("5xx" if 500 <= status < 600 else "other")
            detail = f"{status} {body[:160]!r}" if kind else ""
            answered_by = resp.getheader("X-Pod-Namespace")
            if not kind and self.namespace and answered_by not in (None, self.namespace):
                kind, detail = "other", f"answered by a pod of namespace {answered_by}"
            self._record(at, status, kind, detail, i)
            if resp.will_close:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()
