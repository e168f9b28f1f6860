"""`make bench`: hashing core speed, disruption and balance, with anchors run alongside.

Prints a table, writes bench-results/hashing.json and bench-results/hashing-keys-moved.png.
Timings are best-of-k *CPU* times of this process (``time.process_time``), so other load on
the machine inflates them less than wall time would; compare them through the ratios (same-run
anchors: the pure-Python reference build, a bare ``xxhash.xxh64_intdigest`` call) and against
the issue's targets. Disruption and balance figures are exact (no sampling).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import timeit
from pathlib import Path

import pytest
import xxhash

from tether.hashing import (
    NATIVE,
    CookieKey,
    Host,
    Maglev,
    MaglevConfig,
    RingHash,
    RingHashConfig,
    SourceIpKey,
    auto_table_size,
    canonical_order,
)

from .hashing_metrics import balance, maglev_moved, maglev_shares, ring_moved, ring_shares

pytestmark = pytest.mark.bench

OUT = Path(__file__).resolve().parents[2] / "bench-results"
SIZES = (10, 100, 1000)
MOVED_N = (3, 10, 100, 500)
PLOT_N = (3, 5, 10, 20, 50, 100, 200, 500, 1000)
TARGET_MAGLEV_MS = {100: 8.0, 1000: 15.0}
ENVOY_MAGLEV_MS = (2.0, 4.0)  # published C++ build, 100–500 hosts, M=65537 (perf-anchors §0)
TARGET_PICK_NS = 1000.0
COOKIE = b"_ga=GA1.2.3.4; session-id=abc123; sticky-session-key=d9df64085857d8db; theme=dark"


def hosts_for(n: int) -> list[Host]:
    """Synthetic pod addresses, in the canonical order the operator builds tables in."""
    return canonical_order([Host(f"10.0.{i // 256}.{i % 256}:8080") for i in range(n)])


def best_ms(fn, repeat: int, number: int = 1) -> float:
    return (
        min(timeit.repeat(fn, number=number, repeat=repeat, timer=time.process_time)) / number * 1e3
    )


def per_call_ns(fn, number: int = 100_000, repeat: int = 7) -> float:
    runs = timeit.repeat(fn, number=number, repeat=repeat, timer=time.process_time)
    return min(runs) / number * 1e9


class Request:
    """Minimal RequestView, as the gateway hands one to the hash policy."""

    __slots__ = ("headers", "path", "remote_ip")

    def __init__(self, headers: dict[bytes, list[bytes]], path=b"/", remote_ip="10.1.2.3"):
        self.headers, self.path, self.remote_ip = headers, path, remote_ip

    def header_values(self, lname: bytes) -> list[bytes]:
        return self.headers.get(lname, [])


def measure_builds() -> dict:
    out = {"maglev": {}, "maglev_reference": {}, "ring": {}, "maglev_auto": {}}
    for n in SIZES:
        hosts = hosts_for(n)
        out["maglev"][n] = best_ms(lambda h=hosts: Maglev.build(h), repeat=15)
        out["maglev_reference"][n] = best_ms(lambda h=hosts: Maglev.build_reference(h), repeat=3)
        out["ring"][n] = best_ms(lambda h=hosts: RingHash.build(h), repeat=15)
        config = MaglevConfig(auto_table_size(n))
        out["maglev_auto"][n] = {
            "table_size": config.table_size,
            "ms": best_ms(lambda h=hosts, c=config: Maglev.build(h, c), repeat=7),
        }
    return out


def measure_picks() -> dict:
    hosts = hosts_for(100)
    maglev, ring = Maglev.build(hosts), RingHash.build(hosts)
    request = Request({b"cookie": [COOKIE]})
    cookie, source_ip = CookieKey("sticky-session-key", ttl_seconds=0), SourceIpKey()
    value = b"d9df64085857d8db"
    assert maglev.choose(cookie.evaluate(request)) == maglev.choose(xxhash.xxh64_intdigest(value))
    return {
        "anchor_bare_xxh64": per_call_ns(lambda: xxhash.xxh64_intdigest(value)),
        "maglev_lookup_only": per_call_ns(lambda: maglev.choose(12345678901234567)),
        "ring_lookup_only": per_call_ns(lambda: ring.choose(12345678901234567)),
        "cookie_maglev": per_call_ns(lambda: maglev.choose(cookie.evaluate(request))),
        "cookie_ring": per_call_ns(lambda: ring.choose(cookie.evaluate(request))),
        "source_ip_maglev": per_call_ns(lambda: maglev.choose(source_ip.evaluate(request))),
    }


def disruption(n: int) -> dict:
    """Keys moved and balance when going from n to n+1 hosts, per algorithm."""
    before, after = hosts_for(n), hosts_for(n + 1)
    variants = {
        "ring-1024": (
            lambda hs: RingHash.build(hs, RingHashConfig()),
            ring_moved,
            ring_shares,
        ),
        "maglev-65537": (lambda hs: Maglev.build(hs), maglev_moved, maglev_shares),
        "maglev-auto": (
            lambda hs: Maglev.build(hs, MaglevConfig(auto_table_size(len(hs)))),
            maglev_moved,
            maglev_shares,
        ),
        "maglev-auto-ladder": (
            lambda hs: Maglev.build(hs, MaglevConfig(auto_table_size(len(hs), ladder=True))),
            maglev_moved,
            maglev_shares,
        ),
    }
    result = {"optimum": 1 / (n + 1)}
    for name, (build, moved, shares) in variants.items():
        a, b = build(before), build(after)
        fraction = moved(a, before, b, after)
        max_avg, min_avg = balance(shares(b, after))
        result[name] = {
            "moved": fraction,
            "vs_optimum": fraction * (n + 1),
            "max_avg": max_avg,
            "min_avg": min_avg,
            "size": len(a.hashes) if isinstance(a, RingHash) else a.size,
        }
    return result


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted(curves)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(ns, [curves[n]["optimum"] * 100 for n in ns], "k--", label="optimum 1/(n+1)")
    styles = {
        "ring-1024": "o-",
        "maglev-65537": "s-",
        "maglev-auto": "^-",
        "maglev-auto-ladder": "v-",
    }
    for name, style in styles.items():
        ax.plot(ns, [curves[n][name]["moved"] * 100 for n in ns], style, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("hosts n (adding host n+1)")
    ax.set_ylabel("keys moved (%)")
    ax.set_title("tether: keys moved on n → n+1 (exact, canonical host order)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_report(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    b, p = results["build_ms"], results["pick_ns"]
    t = Table(title=f"build (best of k, ms) — native kernel: {results['native_kernel']}")
    for col in ("N", "maglev 65537", "vs reference", "vs target", "vs Envoy C++ 2–4 ms"):
        t.add_column(col, justify="right")
    t.add_column("ring min 1024", justify="right")
    t.add_column("maglev auto (M)", justify="right")
    for n in SIZES:
        fast, ref = b["maglev"][n], b["maglev_reference"][n]
        target = TARGET_MAGLEV_MS.get(n)
        auto = b["maglev_auto"][n]
        t.add_row(
            str(n),
            f"{fast:.2f}",
            f"{ref / fast:.0f}x faster ({ref:.0f} ms)",
            f"{fast / target:.2f} of {target:g} ms" if target else "—",
            f"{fast / ENVOY_MAGLEV_MS[1]:.2f}–{fast / ENVOY_MAGLEV_MS[0]:.2f}x",
            f"{b['ring'][n]:.2f}",
            f"{auto['ms']:.2f} ({auto['table_size']})",
        )
    console.print(t)
    t = Table(title="per-request pick (ns per call, N=100)")
    for col in ("operation", "ns", "× bare xxh64", "vs 1 µs target"):
        t.add_column(col, justify="right")
    anchor = p["anchor_bare_xxh64"]
    for name, ns in p.items():
        t.add_row(name, f"{ns:.0f}", f"{ns / anchor:.1f}", f"{ns / TARGET_PICK_NS:.2f}")
    console.print(t)
    t = Table(title="keys moved on n → n+1 (exact) and balance after (max/avg, min/avg share)")
    t.add_column("n", justify="right")
    t.add_column("optimum", justify="right")
    for name in ("ring-1024", "maglev-65537", "maglev-auto", "maglev-auto-ladder"):
        t.add_column(name, justify="right")
    for n in MOVED_N:
        row = results["keys_moved"][n]
        cells = [
            f"{row[k]['moved'] * 100:.2f}% ({row[k]['vs_optimum']:.1f}x) "
            f"{row[k]['max_avg']:.3f}/{row[k]['min_avg']:.3f}"
            for k in ("ring-1024", "maglev-65537", "maglev-auto", "maglev-auto-ladder")
        ]
        t.add_row(str(n), f"{row['optimum'] * 100:.2f}%", *cells)
    console.print(t)
    console.print(f"wrote {OUT / 'hashing.json'} and {OUT / 'hashing-keys-moved.png'}")


def test_hashing_bench():
    OUT.mkdir(exist_ok=True)
    curves = {n: disruption(n) for n in sorted(set(PLOT_N) | set(MOVED_N))}
    results = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_at_start": os.getloadavg(),
        },
        "native_kernel": NATIVE,
        "build_ms": measure_builds(),
        "pick_ns": measure_picks(),
        "keys_moved": curves,
        "targets": {"maglev_build_ms": TARGET_MAGLEV_MS, "pick_ns": TARGET_PICK_NS},
    }
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    (OUT / "hashing.json").write_text(json.dumps(results, indent=2))
    plot(curves, OUT / "hashing-keys-moved.png")
    print_report(results)
    # Correctness the figures rest on (timing targets are reported above, never asserted).
    assert NATIVE
    for n in MOVED_N:
        assert curves[n]["ring-1024"]["moved"] >= curves[n]["optimum"] * 0.5
        assert curves[n]["maglev-65537"]["max_avg"] < 1.02
