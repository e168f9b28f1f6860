"""The non-load-balancing parts of an Istio ``TrafficPolicy``, decoded as Istio decodes them.

tether never acts on these (connection pools, outlier detection, client TLS, tunnelling, PROXY
protocol, retry budgets belong to a sidecar), but Istio validates them, so tether must read them
to give Istio's verdict. Fields are in proto declaration order (``destination_rule.proto``,
Istio 1.31), which decides which decoding error Istio reports first.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, StrictBool, StrictStr

from tether.models.jsonpb import (
    Duration,
    Int32,
    ProtoModel,
    Strings,
    Uint32,
    Uint32s,
    enum,
)

TLS_MODES = ("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")
H2_UPGRADE_POLICIES = ("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE")
PROXY_PROTOCOL_VERSIONS = ("V1", "V2")


class TcpKeepalive(ProtoModel):
    probes: Uint32 = 0
    time: Duration | None = None
    interval: Duration | None = None


class TCPSettings(ProtoModel):
    max_connections: Int32 = 0
    connect_timeout: Duration | None = None
    tcp_keepalive: TcpKeepalive | None = None
    max_connection_duration: Duration | None = None
    idle_timeout: Duration | None = None


class ConnectionKeepalive(ProtoModel):
    interval: Duration | None = None
    timeout: Duration | None = None


class HTTPSettings(ProtoModel):
    http1_max_pending_requests: Int32 = 0
    http2_max_requests: Int32 = 0
    max_requests_per_connection: Int32 = 0
    max_retries: Int32 = 0
    idle_timeout: Duration | None = None
    h2_upgrade_policy: Annotated[str | int, BeforeValidator(enum(H2_UPGRADE_POLICIES))] = "DEFAULT"
    use_client_protocol: StrictBool = False
    max_concurrent_streams: Int32 = 0
    http2_keep_alive: ConnectionKeepalive | None = None


class ConnectionPoolSettings(ProtoModel):
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


class OutlierDetection(ProtoModel):
    consecutive_errors: Int32 = 0
    split_external_local_origin_errors: StrictBool = False
    consecutive_local_origin_failures: Uint32 | None = None
    consecutive_gateway_errors: Uint32 | None = None
    consecutive_5xx_errors: Uint32 | None = None
    interval: Duration | None = None
    base_ejection_time: Duration | None = None
    max_ejection_percent: Int32 = 0
    min_health_percent: Int32 = 0
    outlier_detection_http_error_codes: Uint32s = ()


class ClientTLSSettings(ProtoModel):
    mode: Annotated[str | int, BeforeValidator(enum(TLS_MODES))] = "DISABLE"
    client_certificate: StrictStr = ""
    private_key: StrictStr = ""
    ca_certificates: StrictStr = ""
    credential_name: StrictStr = ""
    # None when absent: Istio tests ``SubjectAltNames != nil``, and ``[]`` decodes as nil too.
    subject_alt_names: Annotated[Strings | None, BeforeValidator(lambda v: v or None)] = None
    sni: StrictStr = ""
    insecure_skip_verify: StrictBool | None = None
    ca_crl: StrictStr = ""


class TunnelSettings(ProtoModel):
    protocol: StrictStr = ""
    target_host: StrictStr = ""
    target_port: Uint32 = 0


class ProxyProtocol(ProtoModel):
    version: Annotated[str | int, BeforeValidator(enum(PROXY_PROTOCOL_VERSIONS))] = "V1"


class RetryBudget(ProtoModel):
    percent: float | None = None
    min_retry_concurrency: Uint32 = 0
    budget_interval: Duration | None = None
