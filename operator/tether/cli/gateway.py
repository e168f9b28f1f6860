"""`tether gateway`: the sticky HTTP/1.1 gateway (asyncio Protocol + httptools + uvloop).

Every flag has an environment variable (``TETHER_GATEWAY_<FLAG>``, dashes as underscores);
the flag wins when both are given.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from tether.cli.flags import add_env_flag


def _add(p, flag: str, default, help: str, type=str) -> None:
    add_env_flag(p, "TETHER_GATEWAY_", flag, default, help, type)


def register(subparsers) -> None:
    """Add the ``gateway`` subcommand."""
    p = subparsers.add_parser(
        "gateway",
        help="run the sticky-session HTTP gateway",
        description="Route HTTP/1.1 by Host to Services published as tether table documents; "
        "pin clients to pods exactly as Envoy would (cookie/header/source IP/query hash).",
    )
    # In a pod, bind the pod IP (env POD_IP): the lab runs every pod in one network namespace.
    host = os.environ.get("POD_IP") or "0.0.0.0"
    _add(p, "listen", f"{host}:8080", "address:port to serve on (default $POD_IP or 0.0.0.0)")
    _add(p, "admin", f"{host}:9901", "admin address:port (/metrics /healthz /readyz); '' = off")
    src = p.add_argument_group("tables (one of)")
    _add(src, "tables-namespace", "tether-system", "watch table ConfigMaps in this namespace")
    _add(src, "tables-dir", "", "read *.json table documents from this directory instead")
    _add(src, "poll-interval", 1.0, "directory re-scan period, seconds", float)
    r = p.add_argument_group("routing")
    _add(r, "cluster-domain", "cluster.local", "DNS suffix accepted in Host")
    _add(r, "home-namespace", os.environ.get("POD_NAMESPACE", "default"),
         "namespace a bare `svc` Host resolves to first")  # fmt: skip
    _add(r, "default-service", "", "ns/name[:port] for any other Host (default: the only one)")
    _add(r, "trusted-proxies", "", "CIDRs whose X-Forwarded-For is trusted (comma-separated)")
    t = p.add_argument_group("timeouts (seconds) and limits")
    _add(t, "connect-timeout", 2.0, "upstream connect", float)
    _add(t, "header-timeout", 10.0, "client must send a request head within this", float)
    _add(t, "idle-timeout", 60.0, "client keep-alive idle", float)
    _add(t, "upstream-timeout", 30.0, "wait for response head / between response reads", float)
    _add(t, "upstream-idle-timeout", 15.0, "pooled upstream connection idle", float)
    _add(t, "drain-timeout", 25.0, "SIGTERM: max wait for in-flight requests", float)
    _add(t, "shutdown-delay", 0.0, "SIGTERM: keep serving (unready) this long first", float)
    _add(t, "max-header-bytes", 65536, "request head size limit (431 above)", int)
    _add(t, "max-body-bytes", 0, "request body limit, 0 = unlimited (413 above)", int)
    _add(t, "max-pipelined", 16, "requests queued behind the one answered; reading pauses", int)
    _add(t, "connect-attempts", 3, "endpoints tried when connecting fails", int)
    _add(t, "eject-seconds", 5.0, "skip an endpoint this long after it refused", float)
    o = p.add_argument_group("operability")
    _add(o, "access-log", "stdout", "off | stdout | FILE")
    _add(o, "log-level", "info", "debug | info | warning | error")
    p.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    p.set_defaults(func=run)


def _hostport(text: str, default_host: str = "0.0.0.0") -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return (host.strip("[]") or default_host), int(port)


def config_from_args(args: argparse.Namespace):
    """Build the frozen GatewayConfig from parsed flags; ValueError on bad values."""
    from tether.gateway.config import GatewayConfig, parse_cidrs, parse_service_ref

    host, port = _hostport(args.listen)
    admin_host, admin_port = _hostport(args.admin) if args.admin else ("", -1)
    return GatewayConfig(
        listen_host=host,
        listen_port=port,
        admin_host=admin_host,
        admin_port=admin_port,
        tables_dir=args.tables_dir or None,
        tables_namespace=args.tables_namespace or None,
        poll_interval=args.poll_interval,
        cluster_domain=args.cluster_domain,
        home_namespace=args.home_namespace,
        default_service=parse_service_ref(args.default_service) if args.default_service else None,
        trusted_proxies=parse_cidrs(args.trusted_proxies),
        connect_timeout=args.connect_timeout,
        header_timeout=args.header_timeout,
        idle_timeout=args.idle_timeout,
        upstream_timeout=args.upstream_timeout,
        upstream_idle_timeout=args.upstream_idle_timeout,
        drain_timeout=args.drain_timeout,
        shutdown_delay=args.shutdown_delay,
        max_header_bytes=args.max_header_bytes,
        max_body_bytes=args.max_body_bytes,
        max_pipelined=max(1, args.max_pipelined),
        connect_attempts=max(1, args.connect_attempts),
        eject_seconds=args.eject_seconds,
        access_log=args.access_log,
        log_level=args.log_level,
    )


def run(args: argparse.Namespace) -> int:
    """Run the gateway until SIGTERM/SIGINT; exit 2 on bad flags."""
    import asyncio

    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"tether gateway: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from tether.gateway.server import serve

    if not args.no_uvloop:
        import uvloop

        return uvloop.run(serve(config))
    return asyncio.run(serve(config))
