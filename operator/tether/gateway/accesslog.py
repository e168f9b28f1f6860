"""One JSON access-log line per request, buffered so logging never dominates the proxy's CPU.

Fields (always present, in this order): ``time`` (UTC, RFC 3339 with milliseconds), ``method``,
``path`` (request target as received), ``status``, ``upstream_addr`` (``ip:port`` or ""
when the gateway answered itself), ``upstream_pod``, ``route`` (table key
``ns/name:port`` or ""), ``affinity`` (hash key kind: cookie, header, sourceIp,
queryParameter, random, roundRobin, leastRequest, or ""), ``session`` and ``session_reason``
(the persistent-session decision: honour, pick or reject, and why: valid, absent, expired,
unavailable, malformed, unsigned, unknown-key, bad-signature, no-keys; "" on routes without
sessions; never the value), ``hash`` (the 64-bit request hash as
16 lowercase hex digits, "" when none), ``cookie_generated``, ``duration_ms`` (request head
complete → response complete), ``bytes`` (response body bytes sent), ``client`` (client IP
used for XFF/sourceIp), ``attempts`` (upstreams tried), ``error`` ("" or why the gateway
answered itself).

Invariant: lines are written whole, in request-completion order; buffered lines are flushed at
least every ``flush_interval`` seconds, when 64 KiB accumulate, and on close.
"""

from __future__ import annotations

import os
import sys
import time
from json.encoder import encode_basestring_ascii as _js

_FLUSH_BYTES = 65536
_EMPTY = '""'
_FRAC = [f"{i:03d}" for i in range(1000)]
_METHODS = {m: f'"{m.decode()}"' for m in (b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"PATCH")}


def format_line(
    stamp: str,
    method: bytes,
    path: bytes,
    status: int,
    where: str,
    h: int | None,
    generated: bool,
    duration: float,
    nbytes: int,
    client: str,
    attempts: int,
    error: str,
) -> str:
    """One access-log line (see module docstring); ``where`` is a cached ``fragment()``.

    The native lane formats the same line in C (``wire/accesslog.c``), tested equal to this.
    """
    m = _METHODS.get(method)
    if m is None:
        m = _js(method.decode("latin-1"))
    us = int(duration * 1e6)  # fixed-point milliseconds: cheaper than float formatting
    ms = f"{us // 1000}.{_FRAC[us % 1000]}"
    return (
        f'{{"time":"{stamp}","method":{m},"path":{_js(path.decode("latin-1"))},'
        f'"status":{status},{where},"hash":"{"" if h is None else format(h, "016x")}",'
        f'"cookie_generated":{"true" if generated else "false"},'
        f'"duration_ms":{ms},"bytes":{nbytes},"client":{_js(client)},'
        f'"attempts":{attempts},"error":{_js(error) if error else _EMPTY}}}\n'
    )


def fragment(
    upstream: str, pod: str, route: str, affinity: str, session: str = "", reason: str = ""
) -> str:
    """The JSON members that only depend on (target, route) and the session decision: built
    once per combination, reused per line."""
    return (
        f'"upstream_addr":"{upstream}","upstream_pod":{_js(pod)},"route":{_js(route)},'
        f'"affinity":"{affinity}","session":"{session}","session_reason":"{reason}"'
    )


class AccessLog:
    """Buffered writer of access-log lines to stdout or a file; ``off`` writes nothing."""

    __slots__ = ("_buf", "_fd", "_ms", "_own", "_prefix", "_sec", "_size", "_stamp", "enabled")

    def __init__(self, target: str = "stdout") -> None:
        self.enabled = target != "off"
        self._fd: int | None = None
        self._own = False
        if target == "stdout":
            self._fd = sys.stdout.fileno()
        elif self.enabled:
            self._fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._own = True
        self._buf: list[str] = []
        self._size = 0
        self._sec = -1
        self._ms = -1
        self._prefix = ""
        self._stamp = ""

    def _time(self) -> str:
        ms = int(time.time() * 1000)
        if ms == self._ms:  # many requests share a millisecond at load: format it once
            return self._stamp
        sec, frac = divmod(ms, 1000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        self._ms = ms
        self._stamp = f"{self._prefix}.{frac:03d}Z"
        return self._stamp

    def log(
        self,
        method: bytes,
        path: bytes,
        status: int,
        upstream: str,
        pod: str,
        route: str,
        affinity: str,
        h: int | None,
        generated: bool,
        duration: float,
        nbytes: int,
        client: str,
        attempts: int,
        error: str,
    ) -> None:
        """Append one line (see module docstring for the fields)."""
        self.write_line(
            method, path, status, fragment(upstream, pod, route, affinity), h, generated,
            duration, nbytes, client, attempts, error,
        )  # fmt: skip

    def write_line(
        self,
        method: bytes,
        path: bytes,
        status: int,
        where: str,
        h: int | None,
        generated: bool,
        duration: float,
        nbytes: int,
        client: str,
        attempts: int,
        error: str,
    ) -> None:
        """Append one line; ``where`` is a cached ``fragment()`` (upstream, pod, route, kind)."""
        line = format_line(
            self._time(), method, path, status, where, h, generated, duration, nbytes, client,
            attempts, error,
        )  # fmt: skip
        self._buf.append(line)
        self._size += len(line)
        if self._size >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write buffered lines now (a short blocking write; called from the event loop)."""
        if not self._buf or self._fd is None:
            self._buf.clear()
            self._size = 0
            return
        data = "".join(self._buf).encode()
        self._buf.clear()
        self._size = 0
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                continue
            except OSError:
                return
            view = view[n:]

    def close(self) -> None:
        """Flush and release the file (stdout stays open)."""
        self.flush()
        if self._own and self._fd is not None:
            os.close(self._fd)
            self._fd = None
