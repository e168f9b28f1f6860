"""Gateway metrics: plain ints on the hot path, exported through a prometheus-client collector.

Per request the proxy does one dict increment and one bucket increment; the Prometheus
families are assembled only when ``/metrics`` is scraped. Invariant: every counter is
monotonic for the life of the process; the latency histogram's ``_count`` equals the number
of upstream responses observed.

Names:
- ``tether_gateway_requests_total{route,upstream,code}`` (upstream "" = answered by the gateway)
- ``tether_gateway_upstream_latency_seconds{route}`` histogram: request sent upstream → last
  response byte received
- ``tether_gateway_upstream_connect_failures_total{upstream}``
- ``tether_gateway_cookies_generated_total{route}``
- ``tether_gateway_drain_picks_total{route}``: hash picks sent to a draining pod that the key
  went to before (``gateway.hashdrain``)
- ``tether_gateway_active_requests``, ``tether_gateway_upstream_connections{state}``
- ``tether_gateway_table_generation``, ``tether_gateway_table_age_seconds``,
  ``tether_gateway_tables``, ``tether_gateway_table_load_errors_total{source}``,
  ``tether_gateway_ready``
- from the API server's table watch (``TableSync``): ``tether_gateway_tables_synced``,
  ``tether_gateway_tables_sync_age_seconds``, ``tether_gateway_tables_last_sync_timestamp_seconds``,
  ``tether_gateway_tables_lists_total``, ``tether_gateway_tables_watch_failures_total{reason}``
- ``tether_gateway_tunnels`` (open), ``tether_gateway_tunnels_opened_total``,
  ``tether_gateway_tunnels_closed_total{reason}``, ``tether_gateway_tunnel_bytes_total{from}``
- ``tether_gateway_tls_certificates``, ``tether_gateway_tls_certificate_expiry_seconds{name}``
  (Unix time), ``tether_gateway_tls_load_errors_total{name}``
- persistent sessions: ``tether_gateway_session_decisions_total{route,action,reason}``,
  ``tether_gateway_session_values_rejected_total{route,reason}`` (malformed, unsigned,
  unknown-key, bad-signature), ``tether_gateway_session_values_issued_total{route}``,
  ``tether_gateway_session_values_unsigned_total{route}`` (no key ring to sign with yet),
  ``tether_gateway_session_keys`` (keys in the ring), ``tether_gateway_session_keyring_loads_total
  {result}`` (ok, error: the last good ring stays)
"""

from __future__ import annotations

import time
from collections import defaultdict

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Cumulative-at-export histogram with Prometheus' ``le`` buckets."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0


class TableSync:
    """How current the gateway's tables are with the API server (fed by the ConfigMap watch).

    Invariants: ``synced`` is True from a completed list (or an open watch) until the watch
    fails; ``heard`` is the last time anything came from the API server for the tables (a
    list, a watch opened, an event or a bookmark, which the API server sends about once a
    minute on a quiet watch). ``age()`` is 0 while synced, else the seconds since ``heard``:
    changes made since then are unknown to the gateway, which keeps routing by its last good
    tables. ``active`` is False for a source without an API server (a directory).
    """

    __slots__ = ("active", "failures", "heard", "lists", "synced")

    def __init__(self) -> None:
        self.active = False
        self.synced = False
        self.heard = 0.0
        self.lists = 0
        self.failures: defaultdict[str, int] = defaultdict(int)

    def listed(self) -> None:
        """A complete list of the table ConfigMaps was read."""
        self.active = self.synced = True
        self.lists += 1
        self.heard = time.time()

    def event(self) -> None:
        """The watch opened, or delivered an event or a bookmark."""
        self.synced = True
        self.heard = time.time()

    def lost(self, reason: str) -> None:
        """The list or watch failed (``error``), or its resourceVersion expired (``gone``)."""
        self.active = True
        self.synced = False
        self.failures[reason] += 1

    def age(self) -> float:
        """Seconds the tables may lag the API server by (0 while synced)."""
        if self.synced or not self.heard:
            return 0.0
        return max(0.0, time.time() - self.heard)


class GatewayMetrics(Collector):
    """All gateway counters; ``collect()`` renders them for prometheus-client."""

    def __init__(self) -> None:
        # (route, upstream) -> {code: n}; routes and targets hold a reference to their dict
        self.requests: dict[tuple[str, str], dict[int, int]] = {}
        self.latency: dict[str, Histogram] = {}
        self.connect_failures: defaultdict[str, int] = defaultdict(int)
        self.cookies_generated: defaultdict[str, int] = defaultdict(int)
        self.drain_picks: dict[str, int] = {}  # route -> picks honoured by hash drain
        self.table_load_errors: defaultdict[str, int] = defaultdict(int)
        self.table_generation = 0
        self.table_swapped_at = 0.0
        self.tables = 0
        self.ready = False
        self.active_requests = 0
        self.connections = lambda: {}  # set by the gateway: state -> count
        self.sync = TableSync()
        self.open_tunnels = lambda: 0  # set by the gateway
        self.tunnels_opened = 0
        self.tunnels_closed: defaultdict[str, int] = defaultdict(int)  # by reason
        self.tunnel_bytes: defaultdict[str, int] = defaultdict(int)  # by side read from
        self.certificates = lambda: {}  # set by the gateway: name -> not-after Unix time
        self.tls_load_errors: defaultdict[str, int] = defaultdict(int)
        self.sessions: dict[str, dict[str, int]] = {}  # route -> sessions.py counter names
        self.session_keys = lambda: 0  # set by the gateway: keys in the ring
        self.keyring_loads: defaultdict[str, int] = defaultdict(int)  # ok | error

    def session(self, route: str) -> dict[str, int]:
        """The live session counters of one route (created on first use)."""
        counts = self.sessions.get(route)
        if counts is None:
            counts = self.sessions[route] = {}
        return counts

    def codes(self, route: str, upstream: str) -> dict[int, int]:
        """The live {status: count} dict of one (route, upstream) pair (created on first use)."""
        key = (route, upstream)
        codes = self.requests.get(key)
        if codes is None:
            codes = self.requests[key] = {}
        return codes

    def histogram(self, route: str) -> Histogram:
        """The live upstream-latency histogram of one route (created on first use)."""
        hist = self.latency.get(route)
        if hist is None:
            hist = self.latency[route] = Histogram()
        return hist

    def table_swapped(self, n_tables: int) -> None:
        """A new routing table set is live."""
        self.table_generation += 1
        self.table_swapped_at = time.time()
        self.tables = n_tables

    def collect(self):
        """Yield metric families (called by prometheus-client at scrape time)."""
        req = CounterMetricFamily(
            "tether_gateway_requests",
            "Requests answered, by route, upstream (empty: answered by the gateway) and status.",
            labels=["route", "upstream", "code"],
        )
        for (route, upstream), codes in list(self.requests.items()):
            for code, n in list(codes.items()):
                req.add_metric([route, upstream, str(code)], n)
        yield req
        hist = HistogramMetricFamily(
            "tether_gateway_upstream_latency_seconds",
            "Time from sending a request upstream to the last byte of its response.",
            labels=["route"],
        )
        for route, h in list(self.latency.items()):
            cum, buckets = 0, []
            for bound, n in zip((*BUCKETS, float("inf")), h.counts, strict=True):
                cum += n
                buckets.append((str(bound) if bound != float("inf") else "+Inf", cum))
            hist.add_metric([route], buckets, h.sum)
        yield hist
        yield _counter(
            "tether_gateway_upstream_connect_failures",
            "Failed connection attempts to an upstream endpoint.",
            "upstream",
            self.connect_failures,
        )
        yield _counter(
            "tether_gateway_cookies_generated",
            "Affinity cookies generated (Set-Cookie added) per route.",
            "route",
            self.cookies_generated,
        )
        yield _counter(
            "tether_gateway_drain_picks",
            "Hash picks kept on a draining pod that the key went to before (hash drain).",
            "route",
            self.drain_picks,
        )
        yield _counter(
            "tether_gateway_table_load_errors",
            "Table documents rejected (the last good table stays in use).",
            "source",
            self.table_load_errors,
        )
        yield GaugeMetricFamily(
            "tether_gateway_table_generation",
            "Number of routing table swaps since start.",
            value=self.table_generation,
        )
        age = time.time() - self.table_swapped_at if self.table_swapped_at else 0.0
        yield GaugeMetricFamily(
            "tether_gateway_table_age_seconds", "Seconds since the last table swap.", value=age
        )
        yield GaugeMetricFamily(
            "tether_gateway_tables", "Table documents currently routed.", value=self.tables
        )
        yield GaugeMetricFamily(
            "tether_gateway_ready",
            "1 once the first complete table load is done.",
            value=int(self.ready),
        )
        yield GaugeMetricFamily(
            "tether_gateway_active_requests", "Requests in flight.", value=self.active_requests
        )
        yield from _sync_families(self.sync)
        conns = GaugeMetricFamily(
            "tether_gateway_upstream_connections",
            "Upstream connections by state (busy, idle).",
            labels=["state"],
        )
        for state, n in self.connections().items():
            conns.add_metric([state], n)
        yield conns
        yield from self._tunnels_and_tls()
        yield from self._sessions()

    def _sessions(self):
        decisions = CounterMetricFamily(
            "tether_gateway_session_decisions",
            "Persistent-session decisions: honour the value's endpoint, pick (soft policy), or "
            "reject (strict), by reason.",
            labels=["route", "action", "reason"],
        )
        rejected = CounterMetricFamily(
            "tether_gateway_session_values_rejected",
            "Session values refused (forged, tampered, unsigned or unknown key): treated as "
            "absent, never forwarded to the address they name.",
            labels=["route", "reason"],
        )
        issued = CounterMetricFamily(
            "tether_gateway_session_values_issued",
            "Session values written (Set-Cookie or the session header).",
            labels=["route"],
        )
        unsigned = CounterMetricFamily(
            "tether_gateway_session_values_unsigned",
            "Session values that could not be written: no key ring to sign with yet.",
            labels=["route"],
        )
        for route, counts in list(self.sessions.items()):
            for name, n in list(counts.items()):
                kind, _, reason = name.partition("/")
                if kind == "rejected":
                    rejected.add_metric([route, reason], n)
                elif kind == "issued":
                    issued.add_metric([route], n)
                elif kind == "no-keys":
                    unsigned.add_metric([route], n)
                else:
                    decisions.add_metric([route, kind, reason], n)
        yield decisions
        yield rejected
        yield issued
        yield unsigned
        yield GaugeMetricFamily(
            "tether_gateway_session_keys", "Keys in the session-signing key ring.",
            value=self.session_keys(),
        )  # fmt: skip
        yield _counter(
            "tether_gateway_session_keyring_loads",
            "Key ring loads from the Secret (error: the last good ring stays in use).",
            "result",
            self.keyring_loads,
        )

    def _tunnels_and_tls(self):
        yield GaugeMetricFamily(
            "tether_gateway_tunnels", "Open tunnels (WebSocket and other Upgrades).",
            value=self.open_tunnels(),
        )  # fmt: skip
        yield CounterMetricFamily(
            "tether_gateway_tunnels_opened", "Tunnels opened (101 Switching Protocols).",
            value=self.tunnels_opened,
        )  # fmt: skip
        yield _counter(
            "tether_gateway_tunnels_closed",
            "Tunnels closed, by reason (client/upstream closed, idle, stopped reading, shutdown).",
            "reason",
            self.tunnels_closed,
        )
        yield _counter(
            "tether_gateway_tunnel_bytes",
            "Bytes relayed through closed tunnels, by the side they were read from.",
            "from",
            self.tunnel_bytes,
        )
        certs = self.certificates()
        yield GaugeMetricFamily(
            "tether_gateway_tls_certificates", "TLS certificates loaded.", value=len(certs)
        )
        expiry = GaugeMetricFamily(
            "tether_gateway_tls_certificate_expiry_seconds",
            "Unix time at which each loaded TLS certificate expires.",
            labels=["name"],
        )
        for name, not_after in sorted(certs.items()):
            expiry.add_metric([name], not_after)
        yield expiry
        yield _counter(
            "tether_gateway_tls_load_errors",
            "Certificates rejected (the last good one for the name stays in use).",
            "name",
            self.tls_load_errors,
        )


def _counter(name: str, doc: str, label: str, values: dict) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, doc, labels=[label])
    for key, n in list(values.items()):
        fam.add_metric([key], n)
    return fam


def _sync_families(sync: TableSync):
    if not sync.active:
        return
    yield GaugeMetricFamily(
        "tether_gateway_tables_synced",
        "1 while the table watch follows the API server, 0 after it failed until it recovers.",
        value=int(sync.synced),
    )
    yield GaugeMetricFamily(
        "tether_gateway_tables_sync_age_seconds",
        "0 while synced, else seconds since the API server was last heard (tables may lag).",
        value=sync.age(),
    )
    yield GaugeMetricFamily(
        "tether_gateway_tables_last_sync_timestamp_seconds",
        "Unix time the API server was last heard about the tables (list, event, bookmark).",
        value=sync.heard,
    )
    yield CounterMetricFamily(
        "tether_gateway_tables_lists", "Complete lists of the table ConfigMaps.", value=sync.lists
    )
    yield _counter(
        "tether_gateway_tables_watch_failures",
        "Table list/watch failures: error (then back-off) or gone (410: relist).",
        "reason",
        {"error": 0, "gone": 0, **sync.failures},
    )
