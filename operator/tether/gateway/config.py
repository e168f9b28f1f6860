"""Gateway settings: one frozen value object built from flags/env, shared by every component.

Invariants: every timeout is > 0 seconds; ``trusted_proxies`` holds parsed networks so the hot
path never parses text; ``default_service`` is ``(namespace, name, port | None)`` or None.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """The TLS listener and its certificate source: a directory, named Secrets, or a label
    selector over the Secrets of ``namespace`` (exactly one of the three)."""

    listen_host: str = "0.0.0.0"
    listen_port: int = 8443
    cert_dir: str | None = None
    secrets: tuple[str, ...] = ()
    secret_selector: str = ""
    namespace: str = "tether-system"
    min_version: str = "1.2"  # "1.2" or "1.3"

    def __post_init__(self) -> None:
        sources = [bool(self.cert_dir), bool(self.secrets), bool(self.secret_selector)]
        if sum(sources) != 1:
            raise ValueError(
                "TLS needs exactly one certificate source: --tls-dir, --tls-secrets or "
                "--tls-secret-selector"
            )
        if self.min_version not in ("1.2", "1.3"):
            raise ValueError(f"--tls-min-version must be 1.2 or 1.3, got {self.min_version!r}")


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Everything the gateway needs to run; defaults suit a pod (0.0.0.0:8080, admin 9901)."""

    listen_host: str = "0.0.0.0"
    listen_port: int = 8080
    admin_host: str = "0.0.0.0"
    admin_port: int = 9901  # 0 disables the admin listener
    tables_dir: str | None = None  # directory of *.json table documents (non-Kubernetes use)
    tables_namespace: str | None = "tether-system"  # ConfigMaps watched when tables_dir is None
    poll_interval: float = 1.0  # directory source re-scan period
    cluster_domain: str = "cluster.local"
    home_namespace: str = "default"  # bare `svc` Hosts resolve here first
    default_service: tuple[str, str, int | None] | None = None
    trusted_proxies: tuple[Network, ...] = ()
    connect_timeout: float = 2.0
    header_timeout: float = 10.0  # client must send a complete request head within this
    # Client inactivity, each direction on its own: no request byte while idle between requests
    # or while a request body is owed; no response byte taken while the gateway holds some.
    idle_timeout: float = 60.0
    # Upstream inactivity: from the last request byte sent to the response head, then between
    # response reads (not while the gateway itself stopped reading because the client is slow).
    upstream_timeout: float = 30.0
    upstream_idle_timeout: float = 15.0  # pooled upstream connection unused this long is closed
    max_header_bytes: int = 65536
    max_body_bytes: int = 0  # 0 = unlimited (streamed, never buffered whole)
    max_pipelined: int = 16  # requests queued behind the one being answered; reading pauses
    connect_attempts: int = 3  # endpoints tried on connect failure (Envoy retry semantics)
    eject_seconds: float = 5.0  # an endpoint that refused a connection is skipped this long
    # A tunnel (after 101 Switching Protocols) closes when one side sent nothing this long, or
    # did not take what the gateway holds for it this long: far above WebSocket ping periods.
    tunnel_idle_timeout: float = 300.0
    upgrade_protocols: frozenset[bytes] = frozenset((b"websocket",))  # tunnelled Upgrades
    drain_timeout: float = 25.0  # SIGTERM: in-flight requests and tunnels get at most this long
    shutdown_delay: float = 0.0  # SIGTERM: keep serving (not ready) this long before draining
    tls: TLSConfig | None = None  # a TLS listener and where its certificates come from
    https_redirect_port: int = 0  # > 0: the plain listener redirects to https on this port
    # Session-signing keys: the Secret of that name in tables_namespace (ConfigMap tables only),
    # or a keyring.json file; "" / None = none (signed session values cannot be issued).
    session_keys_secret: str = "tether-session-keys"
    session_keys_file: str | None = None
    access_log: str = "stdout"  # off | stdout | a file path
    session_capacity: int = 65536  # recent sessions kept (20 bytes each; 0: off)
    session_window: float = 300.0  # a session seen within this many seconds is active
    # Consistent-hash keys of a terminating pod that still serves stay on it (gateway.hashdrain);
    # False = Envoy-exact (they move at once).
    hash_drain: bool = False
    log_level: str = "info"
    backlog: int = 1024
    extra: dict[str, str] = field(default_factory=dict)

    def tick(self) -> float:
        """Period of the single timeout sweeper: fine enough for the shortest timeout."""
        shortest = min(
            self.connect_timeout,
            self.header_timeout,
            self.idle_timeout,
            self.upstream_timeout,
            self.upstream_idle_timeout,
            self.tunnel_idle_timeout,
        )
        return max(0.01, min(1.0, shortest / 4))


def parse_cidrs(text: str) -> tuple[Network, ...]:
    """Parse a comma-separated CIDR list (``10.0.0.0/8,::1/128``); raise ValueError if bad."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if part:
            out.append(ipaddress.ip_network(part, strict=False))
    return tuple(out)


def parse_upgrade_protocols(text: str) -> frozenset[bytes]:
    """Parse the comma-separated Upgrade protocol names that may be tunnelled (lower-cased).

    ``h2c`` is refused: HTTP/2 is out of scope, and forwarding its upgrade would let a client
    speak HTTP/2 to an upstream past the gateway's checks (h2c smuggling).
    """
    names = frozenset(p.strip().lower().encode() for p in text.split(",") if p.strip())
    if b"h2c" in names:
        raise ValueError("h2c cannot be tunnelled: HTTP/2 is out of scope")
    return names


def parse_service_ref(text: str) -> tuple[str, str, int | None]:
    """Parse ``ns/name[:port]``; raise ValueError when the namespace or name is missing."""
    ref, _, port = text.partition(":")
    ns, _, name = ref.partition("/")
    if not ns or not name:
        raise ValueError(f"expected ns/name[:port], got {text!r}")
    return ns, name, int(port) if port else None
