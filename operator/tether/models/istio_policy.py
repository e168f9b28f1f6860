"""Istio's checks of the non-load-balancing parts of a ``TrafficPolicy`` (Istio 1.31).

``validateOutlierDetection``, ``validateConnectionPool``, ``agent.ValidateTLS``,
``validateTunnelSettings`` and ``validateProxyProtocol`` of ``pkg/config/validation``: same
rules, order, messages and error/warning split. ``retryBudget`` has no check in Istio.
Invariant: each function returns Istio's value for the same input (nil -> empty ``Err``).
"""

from __future__ import annotations

import ipaddress

from tether.models.duration import GoDuration
from tether.models.go_errors import Err, Validation, append_errors, append_validation, warning
from tether.models.istio_names import go_quote, validate_fqdn
from tether.models.istio_policy_types import (
    ClientTLSSettings,
    ConnectionPoolSettings,
    OutlierDetection,
    ProxyProtocol,
    TunnelSettings,
)

_MS = 1_000_000
CONFIGMAP_URI = "configmap://"
DEPRECATED_CONSECUTIVE_ERRORS = (
    "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or "
    "consecutive5xxErrors instead"
)


def validate_duration(duration: GoDuration) -> str | None:
    """Istio ``agent.ValidateDuration``: at least 1ms, whole milliseconds."""
    if duration.nanoseconds < _MS:
        return "duration must be greater than 1ms"
    if duration.nanoseconds % _MS:
        return "only durations to ms precision are supported"
    return None


def _percent(value: int) -> str | None:
    return None if 0 <= value <= 100 else f"percentage {value} is not in range 0..100"


def validate_outlier_detection(outlier: OutlierDetection | None) -> Validation:
    """Istio ``validateOutlierDetection``."""
    v = Validation()
    if outlier is None:
        return v
    if outlier.base_ejection_time is not None:
        v = append_validation(v, validate_duration(outlier.base_ejection_time))
    if outlier.consecutive_errors != 0:
        v = append_validation(v, warning(DEPRECATED_CONSECUTIVE_ERRORS))
    if not outlier.split_external_local_origin_errors and (
        outlier.consecutive_local_origin_failures or 0
    ):
        v = append_validation(
            v,
            "outlier detection consecutive local origin failures is specified, but split "
            "external local origin errors is set to false",
        )
    if outlier.interval is not None:
        v = append_validation(v, validate_duration(outlier.interval))
    return append_validation(
        v, _percent(outlier.max_ejection_percent), _percent(outlier.min_health_percent)
    )


def _non_negative(value: int, what: str) -> str | None:
    return f"{what} must be non-negative" if value < 0 else None


def validate_connection_pool(pool: ConnectionPoolSettings | None) -> Err:
    """Istio ``validateConnectionPool``."""
    err = Err()
    if pool is None:
        return err
    if pool.http is None and pool.tcp is None:
        return Err.of("connection pool must have at least one field")
    http = pool.http
    if http is not None:
        err = append_errors(
            err,
            _non_negative(http.http1_max_pending_requests, "http1 max pending requests"),
            _non_negative(http.http2_max_requests, "http2 max requests"),
            _non_negative(http.max_requests_per_connection, "max requests per connection"),
            _non_negative(http.max_retries, "max retries"),
        )
        if http.idle_timeout is not None:
            err = append_errors(err, validate_duration(http.idle_timeout))
        if http.h2_upgrade_policy == "UPGRADE" and http.use_client_protocol:
            err = append_errors(
                err, "use client protocol must not be true when H2UpgradePolicy is UPGRADE"
            )
        err = append_errors(
            err, _non_negative(http.max_concurrent_streams, "max concurrent streams")
        )
        keepalive = http.http2_keep_alive
        if keepalive is not None:
            for name, value in (("interval", keepalive.interval), ("timeout", keepalive.timeout)):
                if value is None:
                    err = append_errors(err, f"http2 keepalive {name} is required")
                else:
                    err = append_errors(err, validate_duration(value))
    tcp = pool.tcp
    if tcp is not None:
        err = append_errors(err, _non_negative(tcp.max_connections, "max connections"))
        for value in (tcp.connect_timeout, tcp.max_connection_duration):
            if value is not None:
                err = append_errors(err, validate_duration(value))
        # Istio skips a tcp idleTimeout whose whole milliseconds are 0 (it disables the timeout).
        if tcp.idle_timeout is not None and abs(tcp.idle_timeout.nanoseconds) >= _MS:
            err = append_errors(err, validate_duration(tcp.idle_timeout))
        keepalive = tcp.tcp_keepalive
        if keepalive is not None:
            for value in (keepalive.time, keepalive.interval):
                if value is not None:
                    err = append_errors(err, validate_duration(value))
    return err


def _configmap_error(credential: str, namespace: str) -> str | None:
    """Istio's check of a ``configmap://namespace/name`` credential (``ParseResourceName``)."""
    parts = credential.removeprefix(CONFIGMAP_URI).split("/")
    if len(parts) <= 1:
        problem = f"invalid resource name {go_quote(credential)}. Expected namespace and name"
    elif not parts[0]:
        problem = f"invalid resource name {go_quote(credential)}. Expected namespace"
    elif not parts[1]:
        problem = f"invalid resource name {go_quote(credential)}. Expected name"
    elif parts[0] != namespace or not namespace:
        return (
            "invalid configmap:// credentialName: namespace must match the configuration "
            f"namespace {go_quote(namespace)}"
        )
    else:
        return None
    return f"invalid configmap:// credentialName: {problem}"


def validate_tls(namespace: str, tls: ClientTLSSettings | None) -> Err:
    """Istio ``agent.ValidateTLS`` for a client TLS setting of a rule in ``namespace``."""
    err = Err()
    if tls is None:
        return err
    if tls.credential_name.startswith(CONFIGMAP_URI):
        err = append_errors(err, _configmap_error(tls.credential_name, namespace))
    sans = tls.subject_alt_names is not None
    if tls.insecure_skip_verify:
        if tls.mode == "SIMPLE" and (tls.ca_certificates or tls.credential_name or sans):
            err = append_errors(
                err,
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when "
                "InsecureSkipVerify is set true",
            )
        if tls.mode == "MUTUAL" and (tls.ca_certificates or sans):
            err = append_errors(
                err,
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is "
                "set true",
            )
    if tls.mode in ("SIMPLE", "MUTUAL") and tls.credential_name:
        if tls.client_certificate or tls.ca_certificates or tls.private_key or tls.ca_crl:
            err = append_errors(
                err,
                "cannot specify client certificates or CA certificate or CA CRL If "
                "credentialName is set",
            )
        return err
    if tls.mode == "MUTUAL":
        if not tls.client_certificate:
            err = append_errors(err, "client certificate required for mutual tls")
        if not tls.private_key:
            err = append_errors(err, "private key required for mutual tls")
    return err


def _ip_error(host: str) -> str | None:
    """Go ``netip.ParseAddr`` succeeds (IPv4, IPv6 with an optional zone)."""
    address, _, zone = host.partition("%")
    try:
        parsed = ipaddress.ip_address(address)
        if (zone == "" and "%" in host) or (zone and parsed.version == 4):
            raise ValueError(host)
    except ValueError:
        return f"{host} is not a valid IP"
    return None


def validate_tunnel(tunnel: TunnelSettings | None) -> Err:
    """Istio ``validateTunnelSettings``."""
    err = Err()
    if tunnel is None:
        return err
    if tunnel.protocol not in ("", "CONNECT", "POST"):
        err = append_errors(err, 'tunnel protocol must be "CONNECT" or "POST"')
    fqdn_error, ip_error = validate_fqdn(tunnel.target_host), _ip_error(tunnel.target_host)
    if fqdn_error and ip_error:
        err = append_errors(
            err, f"tunnel target host must be valid FQDN or IP address: {fqdn_error}; {ip_error}"
        )
    if not 1 <= tunnel.target_port <= 65535:
        err = append_errors(
            err,
            f"tunnel target port is invalid: port number {tunnel.target_port} must be in the "
            "range 1..65535",
        )
    return err


def validate_proxy_protocol(proxy: ProxyProtocol | None) -> Err:
    """Istio ``validateProxyProtocol``: version V1 (0) or V2 (1)."""
    if proxy is None or proxy.version in ("V1", "V2"):
        return Err()
    return Err.of(f"proxy protocol version is invalid: {proxy.version}")
