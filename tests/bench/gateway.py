"""`make bench-gateway`: tether gateway vs nginx vs HAProxy, side by side on loopback.

Recipe (shared/reference/perf-anchors.md §4.3): three nginx backends on 127.0.0.1:9001-9003
and wrk pinned to CPU 0; the proxy under test alone on CPU 1; ``wrk -t1 -c50`` with the same
random ``sid`` cookie script for every proxy. nginx hashes ``$cookie_sid consistent``,
HAProxy ``balance hash req.cook(sid)`` with ``hash-type consistent``, tether reads a Maglev
table document (M=65537, cookie ``sid``, no generation) from a directory. Each proxy is
warmed up, then measured twice, interleaved. Printed per run: requests/s, p50/p99 latency,
proxy CPU µs per request (utime+stime of the proxy's processes from /proc ÷ requests), and
ratios to nginx's mean. Missing nginx/haproxy/wrk are installed with apt-get.

Usage: python -m tests.bench.gateway [--duration 8] [--connections 50] [--access-log]
"""

from __future__ import annotations

import argparse
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
PORTS = {"nginx": 8081, "haproxy": 8082, "tether": 8083}


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


def wrk(port: int, duration: float, connections: int) -> dict:
    seconds = max(1, round(duration))
    cmd = [
        "taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
        "-s", str(ASSETS / "cookie.lua"), f"http://127.0.0.1:{port}/",
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


def tether_table(tmp: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.unit.gateway.docs import cookie_key, make_document

    tables = tmp / "tables"
    tables.mkdir()
    doc = make_document(
        [("127.0.0.1", 9000 + i, f"b{i}") for i in (1, 2, 3)],
        namespace="bench",
        name="backends",
        port=80,
        hash_key=cookie_key("sid", ttl=None),
    )
    (tables / "backends.json").write_text(doc.dumps())
    return tables


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per measured run (≤ 10)")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--access-log", action="store_true", help="tether writes its access log")
    ap.add_argument("--only", default="nginx,haproxy,tether")
    args = ap.parse_args(argv)
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
        for port in (9001, 9002, 9003):
            wait_port(port)
        proxies: dict[str, subprocess.Popen] = {}
        wanted = args.only.split(",")
        if "nginx" in wanted:
            conf = render("proxy.nginx.conf", tmp, port=PORTS["nginx"])
            proxies["nginx"] = start(
                ["nginx", "-p", str(tmp), "-e", str(tmp / "p.err"), "-c", str(conf)], 1
            )
        if "haproxy" in wanted:
            conf = render("haproxy.cfg", tmp, port=PORTS["haproxy"])
            proxies["haproxy"] = start(["haproxy", "-db", "-f", str(conf)], 1)
        if "tether" in wanted:
            log = str(tmp / "access.log") if args.access_log else "off"
            cmd = [
                sys.executable, "-m", "tether", "gateway", "--listen",
                f"127.0.0.1:{PORTS['tether']}", "--admin", "", "--tables-dir",
                str(tether_table(tmp)), "--access-log", log, "--log-level", "warning",
            ]  # fmt: skip
            proxies["tether"] = start(cmd, 1, cwd=ROOT)
        procs += proxies.values()
        for name in proxies:
            wait_port(PORTS[name])
        results: dict[str, list[dict]] = {n: [] for n in proxies}
        for name in proxies:
            wrk(PORTS[name], args.warmup, args.connections)
        for run in range(args.runs):
            for name, proc in proxies.items():
                before = cpu_seconds(proc.pid)
                r = wrk(PORTS[name], args.duration, args.connections)
                after = cpu_seconds(proc.pid)
                n = max(r["requests"], 1)
                r["cpu_us"] = (sum(after) - sum(before)) / n * 1e6
                r["user_us"] = (after[0] - before[0]) / n * 1e6
                r["run"] = run + 1
                results[name].append(r)
                print(f"  {name:8s} run {run + 1}: {r['rps']:9.0f} rps", flush=True)
        report(results, args)
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _tether_path() -> str:
    """Which data path the tether subprocess runs (see tether.gateway.native)."""
    import importlib.util

    sys.path.insert(0, str(ROOT / "operator"))
    built = importlib.util.find_spec("tether.gateway.wire._wire") is not None
    if built and os.environ.get("TETHER_GATEWAY_NATIVE", "1") != "0":
        return "native lane (wire/lane.c)"
    return "Python methods (TETHER_GATEWAY_NATIVE=0 or the extension not built)"


def report(results: dict[str, list[dict]], args) -> None:
    base = results.get("nginx")
    base_rps = statistics.mean(r["rps"] for r in base) if base else None
    base_p99 = statistics.mean(r["p99"] for r in base) if base else None
    base_cpu = statistics.mean(r["cpu_us"] for r in base) if base else None
    print(
        f"\nwrk -t1 -c{args.connections} -d{args.duration:g}s, cookie sid=random(1..100000); "
        f"proxy on CPU 1, wrk + backends on CPU 0; load average now "
        f"{os.getloadavg()[0]:.2f} (other work on the machine adds noise)"
    )
    if "tether" in results:
        print(
            f"tether data path: {_tether_path()}, access log {'on' if args.access_log else 'off'}"
        )
    hdr = f"{'proxy':9s} {'run':>3s} {'rps':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'CPU µs/req':>10s}"
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
                f"{name:9s} {r['run']:3d} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f}"
                f" {r['cpu_us']:10.1f} {r['user_us']:5.1f}{ratios}  {r['errors']} {r['socket']}"
            )
    if base_rps:
        print("\nmeans vs nginx:")
        for name, runs in results.items():
            rps = statistics.mean(r["rps"] for r in runs)
            p99 = statistics.mean(r["p99"] for r in runs)
            cpu = statistics.mean(r["cpu_us"] for r in runs)
            print(
                f"  {name:8s} rps {rps:9.0f} ({rps / base_rps:.2f}x)  p99 {p99:.2f} ms "
                f"({p99 / base_p99:.2f}x)  CPU {cpu:.1f} µs/req ({cpu / base_cpu:.2f}x)"
            )


if __name__ == "__main__":
    raise SystemExit(main())
