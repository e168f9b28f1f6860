"""`make bench-gateway`: tether gateway vs nginx vs HAProxy, side by side on loopback.

Recipe (shared/reference/perf-anchors.md §4.3): three nginx backends on 127.0.0.1:9001-9003
and wrk pinned to CPU 0; the proxy under test alone on CPU 1; ``wrk -t1 -c50`` with the same
random ``sid`` cookie script for every proxy. nginx hashes ``$cookie_sid consistent``,
HAProxy ``balance hash req.cook(sid)`` with ``hash-type consistent``, tether reads a Maglev
table document (M=65537, cookie ``sid``, no generation) from a directory. Each proxy is
warmed up, then measured twice, interleaved. Printed per run: requests/s, p50/p99 latency,
proxy CPU µs per request (utime+stime of the proxy's processes from /proc ÷ requests), and
ratios to nginx's mean. Missing nginx/haproxy/wrk are installed with apt-get.

``tether-nosessions`` is the same gateway with its recent-sessions table off
(``--session-capacity 0``): the HTTP rows of the two tethers give the table's request-path
cost (``tests.bench.gateway_icount`` gives it in instructions, without the noise).

Two more parts, tether against nginx only (``--parts http,ws,tls``):
- ``ws``: WebSocket message relay. Three ``websockets`` echo servers (127.0.0.1:9011-9013, CPU
  0) behind each proxy (nginx: ``proxy_http_version 1.1`` + Upgrade headers, the same cookie
  hash); the bounded load client of ``gateway_ws`` (CPU 0) keeps 50 connections each sending a
  128-byte message and waiting for its echo. Printed: messages/s, p50/p99 round trip, proxy CPU
  µs per message, ratios to nginx.
- ``tls``: the HTTP run again over TLS (keep-alive, ``wrk https://``), both proxies serving the
  same ECDSA P-256 certificate, TLS 1.2+.

Usage: python -m tests.bench.gateway [--duration 8] [--connections 50] [--access-log]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ASSETS = Path(__file__).parent / "gateway_assets"
ROOT = Path(__file__).resolve().parents[2]
CLK = os.sysconf("SC_CLK_TCK")
PORTS = {"nginx": 8081, "haproxy": 8082, "tether": 8083, "tether-nosessions": 8087}
WS_PORTS = {"nginx": 8084, "tether": 8083}  # tether routes by Host (ws.bench) on its listener
TLS_PORTS = {"nginx": 8085, "tether": 8086}
WS_BACKENDS = (9011, 9012, 9013)


def ensure_tools() -> None:
    """Install nginx, haproxy and wrk from Debian if any is missing."""
    missing = [t for t in ("nginx", "haproxy", "wrk") if not shutil.which(t)]
    if not missing:
        return
    print(f"installing {' '.join(missing)} (apt-get)...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "nginx", "haproxy", "wrk"], check=True, env=env
    )


def render(name: str, tmp: Path, **values) -> Path:
    text = (ASSETS / name).read_text().replace("{tmp}", str(tmp))
    for key, val in values.items():
        text = text.replace("{" + key + "}", str(val))
    out = tmp / name
    out.write_text(text)
    return out


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        todo += [int(k) for k in kids]
    return out


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the process tree rooted at pid."""
    user = system = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])  # utime, stime (fields 14, 15)
        system += int(fields[12])
    return user / CLK, system / CLK


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    val, unit = float(m.group(1)), m.group(2)
    return val * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(port: int, duration: float, connections: int, scheme: str = "http") -> dict:
    seconds = max(1, round(duration))
    cmd = [
        "taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
        "-s", str(ASSETS / "cookie.lua"), f"{scheme}://127.0.0.1:{port}/",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": reqs, "rps": rps, "p50": p50, "p99": p99,
        "errors": (int(errors.group(1)) if errors else 0), "socket": sock.group(1) if sock else "",
    }  # fmt: skip


def start(cmd: list[str], cpu: int, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        ["taskset", "-c", str(cpu), *cmd], stdout=subprocess.DEVNULL, start_new_session=True, **kw
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def tether_table(tmp: Path, name: str = "tables") -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.unit.gateway.docs import cookie_key, make_document

    tables = tmp / name
    tables.mkdir()
    for name, ports in (("backends", (9001, 9002, 9003)), ("ws", WS_BACKENDS)):
        doc = make_document(
            [("127.0.0.1", port, f"{name}{i}") for i, port in enumerate(ports)],
            namespace="bench",
            name=name,
            port=80,
            hash_key=cookie_key("sid", ttl=None),
        )
        (tables / f"{name}.json").write_text(doc.dumps())
    return tables


def certificates(tmp: Path) -> Path:
    """One ECDSA P-256 certificate for both proxies: tmp/tls.{crt,key} and tmp/certs/."""
    from tests.unit.gateway.certs import Pki, write_files

    cert, key = Pki(tmp).leaf(["localhost", "127.0.0.1"])
    (tmp / "tls.crt").write_bytes(cert)
    (tmp / "tls.key").write_bytes(key)
    (tmp / "certs").mkdir()
    write_files(tmp / "certs", "site", cert, key)
    return tmp / "certs"


def ws_load(port: int, duration: float, connections: int) -> dict:
    """One run of the bounded WebSocket load client (CPU 0) against a proxy port."""
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "tests.bench.gateway_ws", "--load",
           "ws://ws.bench/", "--connect", f"127.0.0.1:{port}", "--duration", str(duration),
           "--connections", str(connections)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(proc: subprocess.Popen, work) -> dict:
    """Run ``work()`` (returns figures with ``requests``) and add the proxy's CPU per item."""
    before = cpu_seconds(proc.pid)
    r = work()
    after = cpu_seconds(proc.pid)
    n = max(r["requests"], 1)
    r["cpu_us"] = (sum(after) - sum(before)) / n * 1e6
    r["user_us"] = (after[0] - before[0]) / n * 1e6
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per measured run (≤ 10)")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--access-log", action="store_true", help="tether writes its access log")
    ap.add_argument("--only", default="nginx,haproxy,tether,tether-nosessions")
    ap.add_argument("--parts", default="http,ws,tls", help="http, ws (WebSocket), tls")
    args = ap.parse_args(argv)
    parts = args.parts.split(",")
    args.duration = min(args.duration, 10.0)
    ensure_tools()
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 CPUs; proxy and load generator share a core", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="tether-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        backends = start(["nginx", "-p", str(tmp), "-e", str(tmp / "b.err"),
                          "-c", str(render("backends.nginx.conf", tmp))], 0)  # fmt: skip
        procs.append(backends)
        procs.append(start([sys.executable, "-m", "tests.bench.gateway_ws", "--serve",
                            ",".join(map(str, WS_BACKENDS))], 0, cwd=ROOT))  # fmt: skip
        for port in (9001, 9002, 9003, *WS_BACKENDS):
            wait_port(port)
        certs = certificates(tmp)
        proxies: dict[str, subprocess.Popen] = {}
        wanted = args.only.split(",")
        if "nginx" in wanted:
            conf = render("proxy.nginx.conf", tmp, port=PORTS["nginx"], ws_port=WS_PORTS["nginx"],
                          tls_port=TLS_PORTS["nginx"])  # fmt: skip
            proxies["nginx"] = start(
                ["nginx", "-p", str(tmp), "-e", str(tmp / "p.err"), "-c", str(conf)], 1
            )
        if "haproxy" in wanted:
            conf = render("haproxy.cfg", tmp, port=PORTS["haproxy"])
            proxies["haproxy"] = start(["haproxy", "-db", "-f", str(conf)], 1)
        log = str(tmp / "access.log") if args.access_log else "off"
        if "tether" in wanted:
            cmd = [
                sys.executable, "-m", "tether", "gateway", "--listen",
                f"127.0.0.1:{PORTS['tether']}", "--admin", "", "--tables-dir",
                str(tether_table(tmp)), "--access-log", log, "--log-level", "warning",
                "--default-service", "bench/backends:80",
                "--tls-listen", f"127.0.0.1:{TLS_PORTS['tether']}", "--tls-dir", str(certs),
            ]  # fmt: skip
            proxies["tether"] = start(cmd, 1, cwd=ROOT)
        if "tether-nosessions" in wanted:
            cmd = [
                sys.executable, "-m", "tether", "gateway", "--listen",
                f"127.0.0.1:{PORTS['tether-nosessions']}", "--admin", "", "--tables-dir",
                str(tether_table(tmp, "tables-nosessions")), "--access-log", log,
                "--log-level", "warning", "--default-service", "bench/backends:80",
                "--session-capacity", "0",
            ]  # fmt: skip
            proxies["tether-nosessions"] = start(cmd, 1, cwd=ROOT)
        procs += proxies.values()
        for name in proxies:
            wait_port(PORTS[name])
        two = {n: p for n, p in proxies.items() if n in ("nginx", "tether")}
        if "tls" in parts:
            for name in two:
                wait_port(TLS_PORTS[name])
        if "http" in parts:
            report(rounds(proxies, args, lambda n, d: wrk(PORTS[n], d, args.connections)), args)
        if "ws" in parts and two:
            ws = rounds(two, args, lambda n, d: _as_requests(ws_load(WS_PORTS[n], d, 50)))
            report_ws(ws, args)
        if "tls" in parts and two:
            tls = rounds(two, args, lambda n, d: wrk(TLS_PORTS[n], d, args.connections, "https"))
            print("\nTLS keep-alive (wrk https://, ECDSA P-256, TLS 1.2+):")
            report(tls, args)
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def rounds(proxies: dict, args, work) -> dict[str, list[dict]]:
    """Warm every proxy up, then ``args.runs`` measured runs, interleaved."""
    results: dict[str, list[dict]] = {n: [] for n in proxies}
    for name in proxies:
        work(name, args.warmup)
    for run in range(args.runs):
        for name, proc in proxies.items():
            r = measure(proc, lambda name=name: work(name, args.duration))
            r["run"] = run + 1
            results[name].append(r)
            print(f"  {name:17s} run {run + 1}: {r['rps']:9.0f} /s", flush=True)
    return results


def _as_requests(r: dict) -> dict:
    """WebSocket figures in the shape report() reads (a message is a request)."""
    return {**r, "requests": r["messages"], "rps": r["rate"], "socket": r["first_error"]}


def report_ws(results: dict[str, list[dict]], args) -> None:
    """The WebSocket relay table, with ratios to nginx."""
    print("\nWebSocket relay: 50 connections, 128-byte message and its echo, one in flight each")
    report(results, args, unit="msg")


def _tether_path() -> str:
    """Which data path the tether subprocess runs (see tether.gateway.native)."""
    import importlib.util

    sys.path.insert(0, str(ROOT / "operator"))
    built = importlib.util.find_spec("tether.gateway.wire._wire") is not None
    if built and os.environ.get("TETHER_GATEWAY_NATIVE", "1") != "0":
        return "native lane (wire/lane.c)"
    return "Python methods (TETHER_GATEWAY_NATIVE=0 or the extension not built)"


def report(results: dict[str, list[dict]], args, unit: str = "req") -> None:
    base = results.get("nginx")
    base_rps = statistics.mean(r["rps"] for r in base) if base else None
    base_p99 = statistics.mean(r["p99"] for r in base) if base else None
    base_cpu = statistics.mean(r["cpu_us"] for r in base) if base else None
    client = f"wrk -t1 -c{args.connections}" if unit == "req" else "gateway_ws client -c50"
    print(
        f"\n{client} -d{args.duration:g}s, cookie sid=random(1..100000); "
        f"proxy on CPU 1, client + backends on CPU 0; load average now "
        f"{os.getloadavg()[0]:.2f} (other work on the machine adds noise)"
    )
    if any(name.startswith("tether") for name in results):
        print(
            f"tether data path: {_tether_path()}, access log {'on' if args.access_log else 'off'}"
        )
    rate = "rps" if unit == "req" else "msg/s"
    hdr = f"{'proxy':17s} {'run':>3s} {rate:>9s} {'p50 ms':>8s} {'p99 ms':>8s}"
    hdr += f" {'CPU µs/' + unit:>10s}"
    hdr += f" {'user':>5s}"
    print(hdr + f" {'rps/nginx':>9s} {'p99/nginx':>9s} {'cpu/nginx':>9s}  errors")
    for name, runs in results.items():
        for r in runs:
            ratios = ""
            if base_rps:
                ratios = (
                    f" {r['rps'] / base_rps:9.2f} {r['p99'] / base_p99:9.2f}"
                    f" {r['cpu_us'] / base_cpu:9.2f}"
                )
            print(
                f"{name:17s} {r['run']:3d} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f}"
                f" {r['cpu_us']:10.1f} {r['user_us']:5.1f}{ratios}  {r['errors']} {r['socket']}"
            )
    if base_rps:
        print("\nmeans vs nginx:")
        for name, runs in results.items():
            rps = statistics.mean(r["rps"] for r in runs)
            p99 = statistics.mean(r["p99"] for r in runs)
            cpu = statistics.mean(r["cpu_us"] for r in runs)
            print(
                f"  {name:17s} {rate} {rps:9.0f} ({rps / base_rps:.2f}x)  p99 {p99:.2f} ms "
                f"({p99 / base_p99:.2f}x)  CPU {cpu:.1f} µs/{unit} ({cpu / base_cpu:.2f}x)"
            )
    if "tether" in results and "tether-nosessions" in results:
        on, off = (statistics.mean(r["cpu_us"] for r in results[n])
                   for n in ("tether", "tether-nosessions"))  # fmt: skip
        print(f"sessions table: tether {on:.1f} vs {off:.1f} CPU µs/{unit} without it "
              f"({on / off - 1:+.1%}; noise on a shared machine is a few %)")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
