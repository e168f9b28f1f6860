"""The gateway process: listeners, table source, timeout sweeper, graceful shutdown.

Lifecycle invariants:
- Not ready until the table source (and the TLS certificate source, when TLS is on, and the
  session key source, when one is configured) finished its first complete load; not ready
  again from the moment shutdown starts (SIGTERM/SIGINT).
- Shutdown: wait ``shutdown_delay`` (still serving, readiness already 503), stop accepting,
  close idle keep-alive connections, let in-flight requests finish (their responses carry
  ``Connection: close``) and tunnels run for at most ``drain_timeout``; then close tunnels
  cleanly (flush, FIN) and abort whatever remains.
- One sweeper task enforces every timeout by comparing deadlines (no per-request timers).
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import signal
from bisect import bisect_left
from time import perf_counter

from . import native
from .accesslog import AccessLog, fragment
from .admin import start_admin
from .config import GatewayConfig
from .hashdrain import DrainRoute
from .metrics import BUCKETS, GatewayMetrics
from .proxy import ClientProtocol
from .redirect import RedirectProtocol
from .routes import Router
from .session_keys import SessionKeys
from .sessions_seen import SessionsSeen
from .tables.store import TableStore
from .tunnel import Tunnel
from .upstream import Pools, UpstreamConnection

log = logging.getLogger("tether.gateway")


class Gateway:
    """Shared state of one gateway process (see module docstring)."""

    __slots__ = (
        "_admin",
        "_no_route_codes",
        "_servers",
        "_tasks",
        "_trust_cache",
        "_trusted",
        "accesslog",
        "admin_port",
        "certs",
        "certs_loaded",
        "clients",
        "clock",
        "config",
        "draining",
        "ejected",
        "keys_loaded",
        "loaded",
        "loop",
        "metrics",
        "now",
        "pools",
        "port",
        "router",
        "seen",
        "session_keys",
        "sessions",
        "stopped",
        "stopping",
        "store",
        "tls_port",
        "tunnels",
        "upstreams",
    )

    def __init__(self, config: GatewayConfig, loop: asyncio.AbstractEventLoop | None = None):
        self.config = config
        self.loop = loop or asyncio.get_running_loop()
        self.now = self.loop.time
        # Coarse clock for deadlines, advanced by the sweeper every tick: timeouts fire within
        # one tick of their nominal value, and the hot path never asks the loop for the time.
        self.clock = self.now()
        self.router = Router([])
        self.sessions = SessionsSeen(config.session_capacity, config.session_window,
                                     self.clock, self.loop)  # fmt: skip
        self.seen = self.sessions.table  # one store per request (proxy.py and the lane)
        self.pools = Pools(self)
        self.metrics = GatewayMetrics()
        self.metrics.connections = self._connection_counts
        self._no_route_codes = self.metrics.codes("", "")
        self.accesslog = AccessLog(config.access_log)
        self.clients: set[ClientProtocol] = set()
        self.upstreams: set[UpstreamConnection] = set()
        self.tunnels: set[Tunnel] = set()
        self.metrics.open_tunnels = lambda: len(self.tunnels)
        self.certs = None  # tls.certs.CertStore when a TLS listener is configured
        self.certs_loaded = config.tls is None
        self.ejected: dict[str, float] = {}
        self.session_keys = SessionKeys(self.metrics.keyring_loads)
        self.session_keys.on_change = self._keys_changed
        self.metrics.session_keys = lambda: (
            len(self.session_keys.ring.keys) if (self.session_keys.ring is not None) else 0
        )
        self.keys_loaded = not (config.session_keys_file or (
            config.session_keys_secret and config.tables_namespace and not config.tables_dir
        ))  # fmt: skip
        self.draining = False
        self.loaded = False
        self.stopping = False
        self.store = TableStore(
            self.swap,
            self._table_error,
            cluster_domain=config.cluster_domain,
            home_namespace=config.home_namespace,
            default_service=config.default_service,
            hash_drain=config.hash_drain,
        )
        self._trusted = config.trusted_proxies
        self._trust_cache: dict[str, bool] = {}
        self._servers: list[asyncio.base_events.Server] = []  # traffic listeners
        self._admin: asyncio.base_events.Server | None = None
        self._tasks: list[asyncio.Task] = []
        self.stopped = asyncio.Event()
        self.port = 0
        self.tls_port = 0
        self.admin_port = 0

    # -- helpers used by the protocols -------------------------------------------------

    def is_trusted(self, ip: str) -> bool:
        """True if ``ip`` is inside a configured trusted-proxy CIDR (cached per address)."""
        if not self._trusted:
            return False
        hit = self._trust_cache.get(ip)
        if hit is None:
            try:
                addr = ipaddress.ip_address(ip)
                hit = any(addr in net for net in self._trusted)
            except ValueError:
                hit = False
            if len(self._trust_cache) > 10000:
                self._trust_cache.clear()
            self._trust_cache[ip] = hit
        return hit

    def client_ip(self, xff: bytes, peer_ip: str) -> str:
        """The client address behind trusted proxies: the right-most untrusted XFF entry."""
        hops = [h.strip() for h in xff.decode("latin-1").split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.is_trusted(hop):
                return hop
        return hops[0] if hops else peer_ip

    def eject(self, authority: str) -> None:
        """Skip an endpoint that refused a connection for ``eject_seconds`` (if others exist)."""
        if self.config.eject_seconds > 0:
            self.ejected[authority] = self.now() + self.config.eject_seconds

    def connect(self, target, ex) -> None:
        """Open a new upstream connection for ``ex`` (asynchronously)."""
        self.loop.create_task(self._connect(target, ex))

    async def _connect(self, target, ex) -> None:
        # asyncio.timeout, not wait_for: wait_for's inner task keeps a failure's traceback in
        # a cycle (task -> exception -> frames -> task) that holds ``ex`` until a collection.
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                _, conn = await self.loop.create_connection(
                    lambda: UpstreamConnection(self, target), target.host, target.port
                )
        except TimeoutError:
            ex.client.connect_failed(ex, "connect timeout", timeout=True)
            return
        except OSError as exc:
            ex.client.connect_failed(ex, exc.strerror or str(exc))
            return
        if ex.finished or ex.client.closed or ex.upstream is not None:
            self.pools.release(conn)
            return
        conn.attach(ex)

    def record(self, ex) -> None:
        """Metrics and access log for a finished exchange."""
        route = ex.route
        target = ex.target
        status = ex.status
        end = perf_counter()
        if ex.local or target is None:
            codes = route.local_codes if route is not None else self._no_route_codes
        else:
            codes = target.codes
            hist = route.hist
            if ex.t_up and hist is not None:  # upstream latency histogram
                seconds = end - ex.t_up
                hist.counts[bisect_left(BUCKETS, seconds)] += 1
                hist.sum += seconds
        codes[status] = codes.get(status, 0) + 1
        if self.accesslog.enabled:
            self.log_exchange(ex, end)

    def log_exchange(self, ex, end: float) -> None:
        """The access-log line of a finished exchange (``end`` is its perf_counter time)."""
        route = ex.route
        target = ex.target
        rkey = route.key if route is not None else ""
        d = ex.session
        if ex.local or target is None:
            kind = route.kind if route is not None else ""
            where = fragment("", "", rkey, kind, *((d.action, d.reason) if d else ()))
        elif ex.where is not None:
            where = ex.where
        elif d is None:
            where = target.log_fragment
        else:
            where = target.log_variants.get((d.action, d.reason))
            if where is None:
                where = target.log_variants[(d.action, d.reason)] = fragment(
                    target.authority, target.pod, rkey, route.kind, d.action, d.reason
                )
        self.accesslog.write_line(
            ex.method, ex.path, ex.status, where, ex.hash, ex.generated is not None,
            end - ex.t0, ex.resp_bytes, ex.remote_ip, ex.attempts, ex.error,
        )  # fmt: skip

    def swap(self, router: Router) -> None:
        """Install a new routing table set atomically; close idle connections it no longer uses.

        O(routes changed): only the routes new in ``router`` are bound to their metrics.
        """
        metrics = self.metrics
        for route in router.added:  # counters live in metrics: monotonic across swaps
            route.hist = metrics.histogram(route.key)
            route.local_codes = metrics.codes(route.key, "")
            for target in route.targets:
                target.codes = metrics.codes(route.key, target.authority)
            if isinstance(route, DrainRoute):
                route.drain_counts = metrics.drain_picks
            if route.session is not None:
                route.session.counts = metrics.session(route.key)
                route.session.bind(self.session_keys.ring)
        self.sessions.swapped(router, self.now())  # sessions: ids, and what each swap moved
        self.router = router
        self.metrics.table_swapped(len(router))
        if router.gone:
            self.pools.expire(self.now(), keep=router.authorities)
        log.info("tables: generation %d, %d routes", self.metrics.table_generation, len(router))

    def _keys_changed(self, ring) -> None:
        """A new key ring: every session route's native check follows it."""
        for route in self.router.routes:
            if route.session is not None:
                route.session.bind(ring)

    def _keys_loaded(self) -> None:
        self.keys_loaded = True
        self.metrics.ready = self.not_ready_reason() is None

    async def _keys(self) -> None:
        cfg = self.config
        try:
            if cfg.session_keys_file:
                from .session_keys import watch_key_file

                await watch_key_file(
                    cfg.session_keys_file, self.session_keys, cfg.poll_interval, self._keys_loaded
                )
            elif not self.keys_loaded:
                from .session_keys import secret_watcher
                from .tables.kube import load_credentials

                creds = await self.loop.run_in_executor(None, load_credentials)
                await secret_watcher(
                    creds,
                    cfg.tables_namespace,
                    cfg.session_keys_secret,
                    self.session_keys,
                    self._keys_loaded,
                ).run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session key source failed; the gateway keeps its key ring")

    def _table_error(self, source: str, why: str) -> None:
        self.metrics.table_load_errors[source] += 1
        log.error("table %s rejected, keeping the last good one: %s", source, why)

    def tables_loaded(self) -> None:
        """The table source completed its first full load."""
        self.loaded = True
        self.metrics.ready = self.certs_loaded and self.keys_loaded
        # Everything alive now (modules, tables) lives for the process: keep the cyclic GC
        # from re-traversing it (the table worker freezes after every slice it commits, too),
        # and collect young objects less often; cycle collection measured ~12 % of CPU.
        # Connections open now are frozen as well: that leaks nothing, because connections,
        # exchanges and tunnels break their cycles when they end and are freed by reference
        # counting alone (tests/unit/gateway/test_gc_lifecycle.py).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20000, 50, 100)

    def not_ready_reason(self) -> str | None:
        """Why /readyz fails, or None when ready."""
        if self.stopping:
            return "shutting down"
        if not self.loaded:
            return "tables not loaded yet"
        if not self.certs_loaded:
            return "TLS certificates not loaded yet"
        if not self.keys_loaded:
            return "session keys not loaded yet"
        return None

    def _certs_loaded(self) -> None:
        self.certs_loaded = True
        self.metrics.ready = self.loaded and self.keys_loaded

    def _connection_counts(self) -> dict[str, int]:
        idle = self.pools.count()
        return {"idle": idle, "busy": max(0, len(self.upstreams) - idle)}

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the listeners and start the sweeper and the table source."""
        cfg = self.config
        plain = RedirectProtocol if cfg.https_redirect_port > 0 else ClientProtocol
        server = await self.loop.create_server(
            lambda: plain(self),
            cfg.listen_host,
            cfg.listen_port,
            backlog=cfg.backlog,
            reuse_address=True,
        )
        self._servers.append(server)
        self.port = server.sockets[0].getsockname()[1]
        if cfg.tls is not None:
            await self._start_tls()
        if cfg.admin_port >= 0 and cfg.admin_host:
            self._admin = await start_admin(self, cfg.admin_host, cfg.admin_port)
            self.admin_port = self._admin.sockets[0].getsockname()[1]
        self._tasks.append(self.loop.create_task(self._sweep()))
        self._tasks.append(self.loop.create_task(self._tables()))
        self._tasks.append(self.loop.create_task(self._keys()))

    async def _start_tls(self) -> None:
        from .tls.certs import CertStore

        cfg = self.config
        tls = cfg.tls
        self.certs = CertStore(tls.min_version, tls.secrets, self._cert_error)
        self.metrics.certificates = self.certs.expiry
        server = await self.loop.create_server(
            lambda: ClientProtocol(self, True),
            tls.listen_host,
            tls.listen_port,
            ssl=self.certs.server_context(),
            ssl_handshake_timeout=cfg.header_timeout,  # a slow handshake is a slow head
            ssl_shutdown_timeout=min(5.0, cfg.drain_timeout),
            backlog=cfg.backlog,
            reuse_address=True,
        )
        self._servers.append(server)
        self.tls_port = server.sockets[0].getsockname()[1]
        self._tasks.append(self.loop.create_task(self._certificates()))

    def _cert_error(self, name: str, why: str) -> None:
        self.metrics.tls_load_errors[name] += 1

    async def _certificates(self) -> None:
        from .tls.sources import watch_certificates

        try:
            await watch_certificates(
                self.config.tls, self.certs, self.config.poll_interval, self._certs_loaded
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("TLS certificate source failed; the gateway keeps its certificates")

    async def _tables(self) -> None:
        cfg = self.config
        try:
            if cfg.tables_dir is not None:
                from .tables.directory import watch_directory

                await watch_directory(
                    cfg.tables_dir, self.store, cfg.poll_interval, self.tables_loaded
                )
            elif cfg.tables_namespace:
                from .tables.kube import ConfigMapWatcher, load_credentials

                creds = await self.loop.run_in_executor(None, load_credentials)
                watcher = ConfigMapWatcher(
                    creds, cfg.tables_namespace, self.store, self.tables_loaded,
                    sync=self.metrics.sync,
                )  # fmt: skip
                await watcher.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("table source failed; the gateway keeps its last tables")

    async def _sweep(self) -> None:
        tick = self.config.tick()
        while True:
            await asyncio.sleep(tick)
            self._tick()

    def _tick(self) -> None:
        """One sweep (a function of its own: no connection stays referenced by the sweeper's
        locals while it sleeps, so a closed one is freed at once)."""
        now = self.clock = self.now()
        for client in list(self.clients):
            if not client.closed:
                client.sweep(now)
        for conn in list(self.upstreams):
            if conn.ex is not None and conn.deadline < now and not conn.rpaused:
                _upstream_timeout(conn)
        if self.tunnels:
            idle = self.config.tunnel_idle_timeout
            for tunnel in list(self.tunnels):
                tunnel.sweep(now, idle)
        self.pools.expire(now)
        if self.ejected:
            for key in [k for k, until in self.ejected.items() if until < now]:
                del self.ejected[key]
        self.accesslog.flush()

    async def shutdown(self) -> None:
        """Graceful stop (see module docstring); returns when every connection is closed."""
        if self.stopping:
            return
        self.stopping = True
        cfg = self.config
        if cfg.shutdown_delay > 0:
            await asyncio.sleep(cfg.shutdown_delay)
        for server in self._servers:
            server.close()
        self.draining = True
        for client in list(self.clients):
            if client.active is None and client.cur is None:
                client.transport.close()
        deadline = self.now() + cfg.drain_timeout
        while (self.clients or self.tunnels) and self.now() < deadline:
            await asyncio.sleep(0.02)
        for tunnel in list(self.tunnels):
            tunnel.close("shutdown")  # what is buffered is sent, then FIN both ways
        for client in list(self.clients):
            client.transport.abort()
        flushed = self.now() + min(2.0, max(cfg.drain_timeout, 0.1))
        while self.tunnels and self.now() < flushed:
            await asyncio.sleep(0.02)
        for tunnel in list(self.tunnels):
            tunnel.abort("shutdown")
        if self._admin is not None:
            self._admin.close()
        for task in self._tasks:
            task.cancel()
        self.pools.close_all()
        for conn in list(self.upstreams):
            if conn.transport is not None:
                conn.transport.close()
        self.accesslog.close()
        self.sessions.close()
        self.stopped.set()


def _upstream_timeout(conn: UpstreamConnection) -> None:
    ex = conn.ex
    conn.ex = None
    conn.transport.abort()  # it may not be reading what the gateway still has for it
    if conn.head_wait:
        ex.client.local_response(ex, 504, f"upstream timeout: {conn.target.authority}")
    else:
        ex.client.response_aborted(ex, f"upstream timeout mid-response: {conn.target.authority}")


async def serve(config: GatewayConfig) -> int:
    """Run a gateway until SIGTERM/SIGINT, then drain; returns the exit code."""
    gw = Gateway(config)
    await gw.start()
    tls = f", TLS {config.tls.listen_host}:{gw.tls_port}" if config.tls is not None else ""
    log.info("gateway listening on %s:%d (admin %d%s)", config.listen_host, gw.port,
             gw.admin_port, tls)  # fmt: skip
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: loop.create_task(gw.shutdown()))
    await gw.stopped.wait()
    return 0


native.install(Gateway)
