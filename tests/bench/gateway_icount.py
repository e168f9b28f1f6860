"""Deterministic hot-path cost: CPU instructions per proxied request, Python side only.

Wall-clock benchmarks on a shared 2-vCPU machine swing by 2x; instruction counts do not. This
drives the gateway's real protocol objects (ClientProtocol, UpstreamConnection, Route, pools,
metrics) with in-memory transports — no sockets, no event loop I/O — over the same request
as the wrk script (``Cookie: sid=<n>``, Maglev over 3 endpoints), next to a minimal twin
(parse, hash the cookie, forward raw bytes: what the perf anchors measured as ~0.95x nginx).
Under ``valgrind --tool=callgrind`` the difference between N=3000 and N=1000 requests divided
by 2000 is the per-request instruction count.

With the native lane built (``wire/lane.c``) the tether figure is the lane's; set
``TETHER_GATEWAY_NATIVE=0`` to measure the pure-Python path. ``--access-log`` makes tether
write its access log (to /dev/null) as well. tether is measured twice: as configured by
default (the recent-sessions table on, ``sessions_seen``) and with ``session_capacity=0``
(table off: the store call returns at once), so the difference is the table's per-request
cost; each of the 1,000 request cookies is a session. ``--persistent`` adds one more figure:
the same route with persistent sessions (signed cookies, the Service's session block), every
request carrying a valid session cookie (issued for its endpoint up to 17 minutes earlier)
besides ``sid``: the cost of reading and checking the signature on the real path, against the
hash pick of the first figure.

Usage: python -m tests.bench.gateway_icount [--access-log] [--persistent]   (needs valgrind)
       python -m tests.bench.gateway_icount --run tether|persistent|minimal N   (one process)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys

import httptools
import xxhash

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 29 Nov 2026 10:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n"
    b"X-Backend: b1\r\n\r\nb1\n"
)


class _Transport:
    def __init__(self, peer=None) -> None:
        self.peer = peer
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def get_extra_info(self, name):
        return self.peer

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _MinUp:
    def __init__(self, pools, b) -> None:
        self.b, self.pools, self.c, self.t = b, pools, None, _Transport()
        self.p = httptools.HttpResponseParser(self)

    def data_received(self, d: bytes) -> None:
        self.c.t.write(d)
        self.p.feed_data(d)

    def on_message_complete(self) -> None:
        self.pools[self.b].append(self)
        self.c = None


class _MinClient:
    COOKIE = re.compile(rb"sid=([^;]*)")

    def __init__(self, pools) -> None:
        self.pools, self.ck, self.t, self.u = pools, b"", _Transport(), None
        self.p = httptools.HttpRequestParser(self)

    def data_received(self, d: bytes) -> None:
        self.buf = d
        self.p.feed_data(d)

    def on_header(self, n: bytes, v: bytes) -> None:
        if n.lower() == b"cookie":
            self.ck = v

    def on_message_complete(self) -> None:
        m = self.COOKIE.search(self.ck)
        b = xxhash.xxh64_intdigest(m.group(1) if m else b"") % 3
        self.u = self.pools[b].pop()
        self.u.c = self
        self.u.t.write(self.buf)


async def _drive(which: str, n: int, access_log: str = "off", sessions: str = "on") -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    from tests.unit.gateway.docs import cookie_key, make_document
    from tether.gateway.config import GatewayConfig
    from tether.gateway.proxy import ClientProtocol
    from tether.gateway.server import Gateway
    from tether.gateway.upstream import UpstreamConnection

    rnd = random.Random(7)
    reqs = [
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8083\r\nCookie: sid=%d\r\n\r\n" % rnd.randint(1, 100000)
        for _ in range(1000)
    ]
    capacity = {"session_capacity": 0} if sessions == "off" else {}
    gw = Gateway(GatewayConfig(access_log=access_log, **capacity))
    doc = make_document(
        [("127.0.0.1", 9000 + i, f"b{i}") for i in (1, 2, 3)], hash_key=cookie_key("sid", None)
    )
    if which == "persistent":
        doc, reqs = _with_persistent(gw, doc, reqs)
    gw.store.apply("bench", doc.dumps())
    gw.store.publish()
    gw.tables_loaded()
    client = ClientProtocol(gw)
    client.connection_made(_Transport(("127.0.0.1", 5555)))
    for target in gw.router.routes[0].targets:
        conn = UpstreamConnection(gw, target)
        conn.connection_made(_Transport(("127.0.0.1", target.port)))
        gw.pools.release(conn)
    pools = {b: [] for b in range(3)}
    for b in range(3):
        pools[b].append(_MinUp(pools, b))
    mini = _MinClient(pools)

    def tether(i: int) -> None:
        client.data_received(reqs[i % 1000])
        client.active.upstream.data_received(RESPONSE)

    def minimal(i: int) -> None:
        mini.data_received(reqs[i % 1000])
        mini.u.data_received(RESPONSE)

    for i in range(200):  # identical warm-up for both
        tether(i)
        minimal(i)
    step = minimal if which == "minimal" else tether
    for i in range(n):
        step(i)
        if i % 500 == 0:
            client.transport.out.clear()
            mini.t.out.clear()


def _with_persistent(gw, doc, reqs: list[bytes]):
    """The document with a signed cookie session block, the gateway's key ring, and the
    requests each carrying a valid session cookie for one endpoint (as a browser sends)."""
    import time

    from tests.unit.gateway.sessions_docs import keyring_json, ring_of, session_policy
    from tether.hashing.session import issue, spec_from_model

    ring = keyring_json(("k1", b"k" * 32, 0, None))
    gw.session_keys.load(ring)
    session = session_policy()
    doc = doc.model_copy(
        update={"schema_version": 2, "session": session, "checksum": None}
    ).sealed()
    spec = spec_from_model(session, "default", "httpbin")
    now = int(time.time())
    out = []
    for i, req in enumerate(reqs):
        addr = doc.endpoints[i % 3].authority
        value, _ = issue(spec, addr, ring_of(ring), now - i)
        out.append(req[:-4] + b"; shop=" + value.encode() + b"\r\n\r\n")
    return doc, out


def _instructions(which: str, n: int, access_log: bool = False, sessions: str = "on") -> int:
    env = dict(
        os.environ, PYTHONHASHSEED="0", ICOUNT_ACCESS_LOG="/dev/null" if access_log else "off",
        ICOUNT_SESSIONS=sessions,
    )  # fmt: skip
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-m", "tests.bench.gateway_icount", "--run", which, str(n)],
        capture_output=True, text=True, env=env, check=True,
    ).stderr  # fmt: skip
    return int(re.search(r"Collected : (\d+)", out).group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", nargs=2, metavar=("WHICH", "N"))
    ap.add_argument("--access-log", action="store_true", help="tether writes its access log")
    ap.add_argument("--persistent", action="store_true", help="also a persistent-session route")
    args = ap.parse_args(argv)
    if args.run:
        asyncio.run(
            _drive(args.run[0], int(args.run[1]), os.environ.get("ICOUNT_ACCESS_LOG", "off"),
                   os.environ.get("ICOUNT_SESSIONS", "on"))
        )  # fmt: skip
        return 0
    if not shutil.which("valgrind"):
        print("valgrind not found (apt-get install valgrind)", file=sys.stderr)
        return 2
    per = {}
    runs = [("tether", "on"), ("tether", "off"), ("minimal", "on")]
    for which, sessions in runs + ([("persistent", "on")] if args.persistent else []):
        n3, n1 = (_instructions(which, n, args.access_log, sessions) for n in (3000, 1000))
        name = which if which == "minimal" else f"{which}, sessions {sessions}"
        per[name] = (n3 - n1) / 2000
        print(f"{name:19s} {per[name]:9.0f} instructions/request (Python side, callgrind)")
    on, off = per["tether, sessions on"], per["tether, sessions off"]
    print(f"sessions table      {on - off:+9.0f} instructions/request ({on / off - 1:+.2%})")
    print(f"ratio               {on / per['minimal']:9.2f}x the minimal raw-forwarding twin")
    if args.persistent:
        extra = per["persistent, sessions on"] - on
        print(f"persistent sessions {per['persistent, sessions on'] / on:9.2f}x the hash route "
              f"(+{extra:.0f} instructions/request: read and check the signed cookie)")  # fmt: skip
    from tether.gateway import native, server  # noqa: F401  (server installs the lane)

    lane = (
        "native lane"
        if native.active()
        else "Python methods (TETHER_GATEWAY_NATIVE=0 or not built; heads still scanned by wire)"
    )
    log = "access log on" if args.access_log else "access log off"
    print(f"tether path: {lane}, {log}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
