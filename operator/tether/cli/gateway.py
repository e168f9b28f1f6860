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
    add_env_flag(r, "TETHER_GATEWAY_", "hash-drain", False,
                 "consistent-hash keys of a terminating pod that still serves stay on it until it "
                 "stops serving (for apps that serve their grace period, e.g. a preStop sleep); "
                 "off by default: keys move at once, as Envoy does",
                 _on_off, action=argparse.BooleanOptionalAction)  # fmt: skip
    _add(r, "trusted-proxies", "", "CIDRs whose X-Forwarded-For is trusted (comma-separated)")
    t = p.add_argument_group("timeouts (seconds) and limits")
    _add(t, "connect-timeout", 2.0, "upstream connect", float)
    _add(t, "header-timeout", 10.0, "client must send a request head within this", float)
    _add(t, "idle-timeout", 60.0, "client keep-alive idle", float)
    _add(t, "upstream-timeout", 30.0, "wait for response head / between response reads", float)
    _add(t, "upstream-idle-timeout", 15.0, "pooled upstream connection idle", float)
    _add(t, "tunnel-idle-timeout", 300.0,
         "tunnel (WebSocket) side silent, or not reading, this long: closed", float)  # fmt: skip
    _add(t, "drain-timeout", 25.0, "SIGTERM: max wait for in-flight requests and tunnels", float)
    _add(t, "shutdown-delay", 0.0, "SIGTERM: keep serving (unready) this long first", float)
    _add(t, "max-header-bytes", 65536, "request head size limit (431 above)", int)
    _add(t, "max-body-bytes", 0, "request body limit, 0 = unlimited (413 above)", int)
    _add(t, "max-pipelined", 16, "requests queued behind the one answered; reading pauses", int)
    _add(t, "connect-attempts", 3, "endpoints tried when connecting fails", int)
    _add(t, "eject-seconds", 5.0, "skip an endpoint this long after it refused", float)
    _add(t, "upgrade-protocols", "websocket", "Upgrade protocols tunnelled (comma-separated)")
    tls = p.add_argument_group("TLS (off unless --tls-listen is set)")
    _add(tls, "tls-listen", "", "[address]:port of the TLS listener (:8443 = $POD_IP:8443)")
    _add(tls, "tls-dir", "", "certificates from NAME.crt+NAME.key or NAME/tls.{crt,key} here")
    _add(tls, "tls-secrets", "", "kubernetes.io/tls Secrets to serve, by name (comma-separated)")
    _add(tls, "tls-secret-selector", "", "or: the kubernetes.io/tls Secrets with these labels")
    _add(tls, "tls-namespace", "tether-system", "namespace of those Secrets")
    _add(tls, "tls-min-version", "1.2", "1.2 or 1.3")
    _add(tls, "https-redirect-port", 0,
         "> 0: the plain listener answers 308 to https on this port", int)  # fmt: skip
    k = p.add_argument_group("persistent sessions")
    _add(k, "session-keys-secret", "tether-session-keys",
         "Secret (in --tables-namespace) holding the session-signing keys; '' = none")  # fmt: skip
    _add(k, "session-keys-file", "", "or: a keyring.json file, re-read when it changes")
    o = p.add_argument_group("operability")
    _add(o, "access-log", "stdout", "off | stdout | FILE")
    _add(o, "log-level", "info", "debug | info | warning | error")
    _add(o, "session-capacity", 65536,
         "recent sessions kept for /sessions (20 bytes each; rounded up to a power of two; "
         "0: off)", int)  # fmt: skip
    _add(o, "session-window", 300.0, "seconds a session stays active after its last request",
         float)  # fmt: skip
    p.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    p.set_defaults(func=run)


def _hostport(text: str, default_host: str = "0.0.0.0") -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return (host.strip("[]") or default_host), int(port)


def config_from_args(args: argparse.Namespace):
    """Build the frozen GatewayConfig from parsed flags; ValueError on bad values."""
    from tether.gateway.config import (
        GatewayConfig,
        TLSConfig,
        parse_cidrs,
        parse_service_ref,
        parse_upgrade_protocols,
    )

    host, port = _hostport(args.listen)
    tls = None
    if args.tls_listen:
        tls_host, tls_port = _hostport(args.tls_listen, os.environ.get("POD_IP") or "0.0.0.0")
        tls = TLSConfig(
            listen_host=tls_host,
            listen_port=tls_port,
            cert_dir=args.tls_dir or None,
            secrets=tuple(n.strip() for n in args.tls_secrets.split(",") if n.strip()),
            secret_selector=args.tls_secret_selector,
            namespace=args.tls_namespace,
            min_version=args.tls_min_version,
        )
    elif args.tls_dir or args.tls_secrets or args.tls_secret_selector:
        raise ValueError("a TLS certificate source needs --tls-listen")
    if args.https_redirect_port and tls is None:
        raise ValueError("--https-redirect-port needs --tls-listen")
    admin_host, admin_port = _hostport(args.admin) if args.admin else ("", -1)
    if not args.session_window > 0:
        raise ValueError(f"--session-window must be > 0 seconds, got {args.session_window}")
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
        tunnel_idle_timeout=args.tunnel_idle_timeout,
        upgrade_protocols=parse_upgrade_protocols(args.upgrade_protocols),
        tls=tls,
        https_redirect_port=args.https_redirect_port,
        drain_timeout=args.drain_timeout,
        shutdown_delay=args.shutdown_delay,
        max_header_bytes=args.max_header_bytes,
        max_body_bytes=args.max_body_bytes,
        max_pipelined=max(1, args.max_pipelined),
        connect_attempts=max(1, args.connect_attempts),
        eject_seconds=args.eject_seconds,
        session_keys_secret=args.session_keys_secret,
        session_keys_file=args.session_keys_file or None,
        access_log=args.access_log,
        log_level=args.log_level,
        session_capacity=_session_capacity(args.session_capacity),
        session_window=args.session_window,
        hash_drain=args.hash_drain,
    )


def _on_off(text: str) -> bool:
    """A boolean variable's value: 1/true/yes/on or 0/false/no/off."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _session_capacity(n: int) -> int:
    """0 (off), or ``n`` rounded up to a power of two from 16 to 2^30."""
    if n < 0 or n > 1 << 30:
        raise ValueError(f"--session-capacity must be from 0 to 2^30, got {n}")
    return 0 if n == 0 else max(16, 1 << (n - 1).bit_length())


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
