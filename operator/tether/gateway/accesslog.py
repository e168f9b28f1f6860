"""One JSON access-log line per request, buffered so logging never dominates the proxy's CPU.

Fields (always present, in this order): ``time`` (UTC, RFC 3339 with milliseconds), ``method``,
``path`` (request target as received), ``status``, ``upstream_addr`` (``ip:port`` or ""
when the gateway answered itself), ``upstream_pod``, ``route`` (table key
``ns/name:port`` or ""), ``affinity`` (hash key kind: cookie, header, sourceIp,
queryParameter, random, roundRobin, leastRequest, or ""), ``hash`` (the 64-bit request hash as
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


class AccessLog:
    """Buffered writer of access-log lines to stdout or a file; ``off`` writes nothing."""

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
        self._prefix = ""

    def _time(self) -> str:
        now = time.time()
        sec = int(now)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self._prefix}.{int((now - sec) * 1000):03d}Z"

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
        line = (
            f'{{"time":"{self._time()}","method":{_js(method.decode("latin-1"))},'
            f'"path":{_js(path.decode("latin-1"))},"status":{status},'
            f'"upstream_addr":"{upstream}","upstream_pod":{_js(pod)},"route":{_js(route)},'
            f'"affinity":"{affinity}","hash":"{"" if h is None else format(h, "016x")}",'
            f'"cookie_generated":{"true" if generated else "false"},'
            f'"duration_ms":{duration * 1000:.3f},"bytes":{nbytes},"client":"{client}",'
            f'"attempts":{attempts},"error":{_js(error)}}}\n'
        )
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
