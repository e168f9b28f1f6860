"""Hostile HTTP/1.1 exchanges against tether and nginx side by side, and gateway memory
against clients that never read. A comparison report, not a test: the regression tests are
tests/unit/gateway/test_hostile_*.py (they need no nginx).

Both proxies front the same scripted upstream (tests/unit/gateway/rawbackend.py) on loopback:
tether as ``tether gateway`` (a process, ``--max-body-bytes 1000``), nginx 1.22 with
``proxy_http_version 1.1``, upstream keep-alive and ``client_max_body_size 1000``. Each case
prints what the client received (statuses, or junk) and which requests reached the upstream.

``--rss``: 8 clients each pipeline 4000 GETs for a 16 KiB response and never read; the
proxies' resident memory before and after (VmRSS of their processes). ``--tether-path DIR``
runs tether from another checkout's ``operator/`` (e.g. an older commit, for a before/after).

Usage: python -m tests.bench.gateway_hostile [--rss] [--python-path] [--tether-path DIR]
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .gateway import render, stop, wait_port

ROOT = Path(__file__).resolve().parents[2]
PORTS = {"tether": 8093, "nginx": 8094}
BIG = b"B" * 16_384
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


def _ok(body: bytes = b"ok", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\n%bContent-Length: %d\r\n\r\n%b" % (extra, len(body), body)


def script(req: dict):
    """The upstream: what each path answers (see the cases)."""
    url = req["url"]
    if url == "/echo":
        return _ok(req["body"]), False
    if url == "/big":
        return _ok(BIG), False
    if url == "/head-junk":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nJUNK!", False
    if url == "/204-junk":
        return b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nJUNK!", False
    if url == "/identity":
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n5\r\nraw\r\n0\r\n\r\n", True
    if url == "/big-head":
        return (
            b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 70_000 + b"\r\nContent-Length: 2\r\n\r\nok",
            False,
        )
    if url.startswith("/stale"):
        return (_ok(b"conn %d" % req["conn"]), False) if req["nth"] == 1 else None
    if url == "/slow":
        return [b"", _ok(b"slow")], False
    host = [v for k, v in req["headers"] if k == "host"]
    return _ok(("host=" + ",".join(host)).encode()), False


def _req(path: str, extra: str = "", body: bytes = b"", method: str = "GET") -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    return f"{method} {path} HTTP/1.1\r\nHost: a\r\n{extra}{length}\r\n".encode() + body


CLOSE = "Connection: close\r\n"
CASES = [
    ("Connection: content-length smuggle",
     _req("/echo", "Connection: content-length\r\n", SMUGGLED) + _req("/get", CLOSE)),
    ("Connection: host", _req("/get", "Connection: host, close\r\n")),
    ("trailer Host on a queued request", _req("/slow") + b"POST /echo HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nHost: evil\r\n\r\n" + _req("/get", CLOSE)),
    ("HTTP/2.0 request line", b"GET /get HTTP/2.0\r\nHost: a\r\n\r\n"),
    ("HTTP/1.0 + Transfer-Encoding", b"POST /echo HTTP/1.0\r\nHost: a\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    ("missing Host", b"GET /get HTTP/1.1\r\nConnection: close\r\n\r\n"),
    ("duplicate Host", b"GET /get HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n"),
    ("comma-listed Host", b"GET /get HTTP/1.1\r\nHost: a, b\r\nConnection: close\r\n\r\n"),
    ("userinfo in absolute URI", b"GET http://u:p@a/get HTTP/1.1\r\nHost: a\r\n"
     b"Connection: close\r\n\r\n"),
    ("Content-Length over the limit", b"POST /echo HTTP/1.1\r\nHost: a\r\n"
     b"Content-Length: 100000\r\n\r\n"),
    ("pipelined head over the limit", _req("/get") + _req("/get", "X-Big: " + "b" * 70_000
                                                            + "\r\n") + _req("/get", CLOSE)),
    ("HEAD answered with a body", _req("/head-junk", method="HEAD") + _req("/get", CLOSE)),
    ("204 with a body", _req("/204-junk") + _req("/get", CLOSE)),
    ("Transfer-Encoding: identity", _req("/identity", CLOSE)),
    ("upstream head of 70 KB", _req("/big-head", CLOSE)),
]  # fmt: skip


def _exchange(port: int, data: bytes, timeout: float = 3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            out += b" [no close]"
        return out


def _summary(out: bytes, heads: set[int] = frozenset()) -> str:
    from tests.unit.gateway.hostile import responses

    try:
        rs = responses(out.replace(b" [no close]", b""), heads)
        text = " ".join(str(r.status) for r in rs)
    except Exception:
        text = "unparsable"
    junk = " JUNK" if b"JUNK" in out else ""
    return text + junk + (" (open)" if out.endswith(b" [no close]") else "")


def _stale(port: int) -> str:
    """Two requests on one client connection; the upstream drops its reused connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(_req("/stale1"))
        try:
            first = s.recv(65536)
        except TimeoutError:
            return "hang"
        time.sleep(0.1)
        s.sendall(_req("/stale2", CLOSE))
        rest = b""
        try:
            while chunk := s.recv(65536):
                rest += chunk
        except TimeoutError:
            return _summary(first) + " / hang"
    return _summary(first) + " / " + _summary(rest)


def _rss_kib(pid: int) -> int:
    total = 0
    for p in [pid, *_children(pid)]:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def never_reading_clients(port: int, pid: int, clients: int = 8, each: int = 4000) -> tuple:
    """RSS (MiB) before, at the plateau, and the number of responses the clients let in."""
    before = _rss_kib(pid)
    data = _req("/big") * each
    socks, sent = [], []
    for _ in range(clients):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.setblocking(False)
        socks.append(s)
        sent.append(0)
    peak, quiet_since = before, time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 3:
        _, writable, _ = select.select([], socks, [], 0.1)
        for s in writable:
            i = socks.index(s)
            try:
                sent[i] += s.send(data[sent[i] :])
            except BlockingIOError:
                pass
            except OSError:  # the proxy dropped this client
                socks.remove(s)
                sent.pop(i)
        rss = _rss_kib(pid)
        if rss > peak + 1024:
            peak, quiet_since = rss, time.monotonic()
    for s in socks:
        s.close()
    return before / 1024, max(peak, _rss_kib(pid)) / 1024, sum(sent)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rss", action="store_true", help="also measure memory vs idle readers")
    ap.add_argument("--no-cases", action="store_true", help="skip the exchange table")
    ap.add_argument("--python-path", action="store_true", help="TETHER_GATEWAY_NATIVE=0")
    ap.add_argument("--tether-path", help="an operator/ directory to run tether from")
    args = ap.parse_args(argv)
    if not shutil.which("nginx"):
        print("nginx not found: apt-get install nginx (make bench-gateway installs it)")
        return 2
    sys.path.insert(0, str(ROOT))
    from tests.unit.gateway.docs import make_document
    from tests.unit.gateway.harness import Harness
    from tests.unit.gateway.rawbackend import RawBackend

    h = Harness()
    procs = []
    try:
        backend = RawBackend(h, script, delay=0.3)
        tmp = Path(tempfile.mkdtemp(prefix="tether-hostile-"))
        (tmp / "tables").mkdir()
        doc = make_document([("127.0.0.1", backend.port, "raw")], algorithm=None)
        (tmp / "tables" / "svc.json").write_text(doc.dumps())
        env = dict(os.environ, TETHER_GATEWAY_NATIVE="0" if args.python_path else "1")
        if args.tether_path:
            env["PYTHONPATH"] = args.tether_path
        tether = subprocess.Popen(
            [sys.executable, "-m", "tether", "gateway", "--listen", f"127.0.0.1:{PORTS['tether']}",
             "--admin", "", "--tables-dir", str(tmp / "tables"), "--max-body-bytes", "1000",
             "--access-log", "off", "--log-level", "error"],
            env=env, start_new_session=True,
        )  # fmt: skip
        conf = render("hostile.nginx.conf", tmp, port=PORTS["nginx"], backend=backend.port)
        nginx = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(conf)],
                                 start_new_session=True)  # fmt: skip
        procs = [tether, nginx]
        for port in PORTS.values():
            wait_port(port)
        time.sleep(0.5)  # tables loaded
        width = max(len(c[0]) for c in CASES) + 2
        print(f"{'case':{width}s} {'tether':34s} {'nginx':34s}")
        for name, data in [] if args.no_cases else [*CASES, ("stale pooled connection", None)]:
            row = []
            for port in PORTS.values():
                seen = len(backend.requests)
                heads = {0} if data is not None and data.startswith(b"HEAD") else set()
                got = _stale(port) if data is None else _summary(_exchange(port, data), heads)
                urls = [r["url"] for r in backend.requests[seen:]]
                smuggled = " SMUGGLED" if "/smuggled" in urls else ""
                evil = " evil-host" if any(("host", "evil") in r["headers"]
                                           for r in backend.requests[seen:]) else ""  # fmt: skip
                row.append(f"{got} | up:{len(urls)}{smuggled}{evil}")
            print(f"{name:{width}s} {row[0]:34s} {row[1]:34s}", flush=True)
        if args.rss:
            print(f"\nnever-reading clients (8 x 4000 pipelined GETs of 16 KiB); load "
                  f"{os.getloadavg()[0]:.2f}")  # fmt: skip
            for which, proc in (("tether", tether), ("nginx", nginx)):
                seen = len(backend.requests)
                before, after, _ = never_reading_clients(PORTS[which], proc.pid)
                upstream = len(backend.requests) - seen
                grew = f"(+{after - before:.1f}); {upstream} requests sent upstream"
                print(f"  {which:7s} RSS {before:6.1f} MiB -> {after:6.1f} MiB {grew}", flush=True)
    finally:
        for proc in procs:
            stop(proc)
        h.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
