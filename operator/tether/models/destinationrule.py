"""Istio ``DestinationRule`` (networking.istio.io v1, v1beta1, v1alpha3 — one schema).

The models read real Istio YAML as the apiserver stores it. They mirror how Istio decodes it:

- Field presence is kept (``None`` = absent), because Istio's rules depend on it:
  ``consistentHash: {}`` is present, ``trafficPolicy: {}`` is an (invalid) empty policy,
  ``ttl`` absent means "never generate a cookie" while ``ttl: 0s`` means "session cookie".
- Empty lists behave as absent, as repeated proto fields do; a ``null`` list item is the zero
  value (an empty message, ``""``), as jsonpb decodes it (``tether.models.jsonpb``).
- The sub-messages tether does not act on (connectionPool, outlierDetection, tls, tunnel, ...)
  are decoded too (``istio_policy_types``), because Istio validates them; unknown keys anywhere
  are preserved (``extra="allow"``), never rejected.
- Fields are declared in proto order, so the first decoding failure is the one Istio reports,
  with Go's text (``bad Duration: ...``, ``json: cannot unmarshal number ...``).
- uint64 fields (``tableSize``, ``minimumRingSize``) accept an integer or a decimal string, as
  jsonpb does (istio/api#3445); durations follow Go ``time.ParseDuration``.
- The two ``oneof`` groups of ``consistentHash`` and the ``lb_policy`` oneof of
  ``loadBalancer`` are enforced by key presence, like the CRD's ``oneOf``.

``parse_destination_rule`` is the only entry point that reads a raw object; it raises
``DestinationRuleParseError`` (what Istio reports as "error decoding configuration").
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)

from tether.models.istio_policy_types import (
    ClientTLSSettings,
    ConnectionPoolSettings,
    OutlierDetection,
    ProxyProtocol,
    RetryBudget,
    TunnelSettings,
)
from tether.models.jsonpb import (
    GO_DECODE,
    Duration,
    Messages,
    ProtoModel,
    Strings,
    StrMap,
    Uint32,
    Uint32Map,
    Uint64,
    enum,
    present,
)

GROUP = "networking.istio.io"
KIND = "DestinationRule"
API_VERSIONS = (f"{GROUP}/v1", f"{GROUP}/v1beta1", f"{GROUP}/v1alpha3")
SIMPLE_LB = ("UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST")


class DestinationRuleParseError(ValueError):
    """The object cannot be decoded as a DestinationRule (never published, never half-read)."""


def _simple(value: Any) -> str:
    """Enum by name (CRD form) or by number (jsonpb also accepts the number)."""
    try:
        name = enum(SIMPLE_LB)(value)
    except ValueError:
        name = value
    if not isinstance(name, str) or name not in SIMPLE_LB:
        raise ValueError(f"unknown SimpleLB {value!r}; one of {', '.join(SIMPLE_LB)}")
    return name


SimpleLB = Annotated[str, BeforeValidator(_simple)]
Opaque = dict[str, Any]  # a sub-message tether keeps but does not interpret
_Model = ProtoModel
_present = present


class CookieAttribute(_Model):
    name: StrictStr = ""
    value: StrictStr = ""


class HTTPCookie(_Model):
    name: StrictStr = ""
    path: StrictStr = ""
    ttl: Duration | None = None  # None: never generate; 0s: generate a session cookie
    attributes: Messages[CookieAttribute] = ()


class RingHash(_Model):
    minimum_ring_size: Uint64 = 0


class MagLev(_Model):
    table_size: Uint64 = 0


HASH_KEYS = ("http_header_name", "http_cookie", "use_source_ip", "http_query_parameter_name")
HASH_ALGORITHMS = ("ring_hash", "maglev")


class ConsistentHashLB(_Model):
    http_header_name: StrictStr | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: StrictBool | None = None
    http_query_parameter_name: StrictStr | None = None
    ring_hash: RingHash | None = None
    maglev: MagLev | None = None
    minimum_ring_size: Uint64 = 0  # deprecated, outside both oneofs

    @model_validator(mode="after")
    def _oneofs(self) -> ConsistentHashLB:
        for group in (HASH_KEYS, HASH_ALGORITHMS):
            set_ = _present(self, *group)
            if len(set_) > 1:
                raise ValueError(f"only one of {', '.join(set_)} may be set")
        return self

    @property
    def hash_key_field(self) -> str | None:
        """camelCase name of the hash key set, or None (Istio then hashes nothing: random)."""
        present = _present(self, *HASH_KEYS)
        return present[0] if present else None


class LocalityDistribute(_Model):
    from_: StrictStr = Field(default="", alias="from")
    to: Uint32Map = Field(default_factory=dict)


class LocalityFailover(_Model):
    from_: StrictStr = Field(default="", alias="from")
    to: StrictStr = ""


class LocalityLoadBalancerSetting(_Model):
    distribute: Messages[LocalityDistribute] = ()
    failover: Messages[LocalityFailover] = ()
    failover_priority: Strings = ()
    enabled: StrictBool | None = None


class ZoneAwareLoadBalancerSetting(_Model):
    enabled: StrictBool | None = None
    failover: Messages[LocalityFailover] = ()
    failover_priority: Strings = ()
    min_cluster_size: Uint32 | None = None


class WarmupConfiguration(_Model):
    duration: Duration | None = None
    minimum_percent: float | None = None
    aggression: float | None = None


LB_POLICIES = ("simple", "consistent_hash", "backend_utilization")


class LoadBalancerSettings(_Model):
    simple: SimpleLB | None = None
    consistent_hash: ConsistentHashLB | None = None
    backend_utilization: Opaque | None = None  # ORCA-weighted; Istio master only
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    zone_aware_lb_setting: ZoneAwareLoadBalancerSetting | None = None
    warmup_duration_secs: Duration | None = None
    warmup: WarmupConfiguration | None = None

    @model_validator(mode="after")
    def _lb_policy_oneof(self) -> LoadBalancerSettings:
        set_ = _present(self, *LB_POLICIES)
        if len(set_) > 1:
            raise ValueError(f"only one of {', '.join(set_)} may be set")
        return self


class PortSelector(_Model):
    number: Uint32 = 0


class PortTrafficPolicy(_Model):
    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


class TrafficPolicy(_Model):
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: Messages[PortTrafficPolicy] = ()
    tunnel: TunnelSettings | None = None
    proxy_protocol: ProxyProtocol | None = None
    retry_budget: RetryBudget | None = None

    def port_policy(self, port: int) -> PortTrafficPolicy | None:
        """The first port-level entry for ``port`` (Istio: first match wins), or None."""
        for entry in self.port_level_settings:
            if entry is not None and entry.port is not None and entry.port.number == port:
                return entry
        return None


class Subset(_Model):
    name: StrictStr = ""
    labels: StrMap = Field(default_factory=dict)
    traffic_policy: TrafficPolicy | None = None


class WorkloadSelector(_Model):
    match_labels: StrMap = Field(default_factory=dict)


class DestinationRuleSpec(_Model):
    host: StrictStr = ""
    traffic_policy: TrafficPolicy | None = None
    subsets: Messages[Subset] = ()
    export_to: Strings = ()
    workload_selector: WorkloadSelector | None = None


class ObjectMeta(_Model):
    name: StrictStr = ""
    namespace: StrictStr = "default"
    uid: StrictStr | None = None
    generation: int | None = None
    resource_version: StrictStr | None = None
    creation_timestamp: datetime | None = None
    labels: StrMap = Field(default_factory=dict)
    annotations: StrMap = Field(default_factory=dict)


class DestinationRule(_Model):
    api_version: Literal[
        "networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"
    ] = "networking.istio.io/v1"
    kind: Literal["DestinationRule"] = KIND
    metadata: ObjectMeta = ObjectMeta()
    spec: DestinationRuleSpec
    status: Opaque | None = None

    @property
    def namespace(self) -> str:
        """The rule's namespace: short hosts resolve in it."""
        return self.metadata.namespace

    @property
    def name(self) -> str:
        """The rule's name (second sort key when rules for one host are merged)."""
        return self.metadata.name

    @property
    def key(self) -> str:
        """``namespace/name``: unique per DestinationRule."""
        return f"{self.metadata.namespace}/{self.metadata.name}"


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def parse_destination_rule(obj: Any) -> DestinationRule:
    """Decode a raw object (``apiVersion``, ``kind``, ``metadata``, ``spec``) of any served version.

    Raises DestinationRuleParseError with every problem as ``path: message`` so an operator can
    report it verbatim; never returns a partially decoded rule.
    """
    if not isinstance(obj, dict):
        raise DestinationRuleParseError("object is not a mapping")
    if obj.get("kind") != KIND:
        raise DestinationRuleParseError(f"kind {obj.get('kind')!r} is not {KIND}")
    if obj.get("apiVersion") not in API_VERSIONS:
        raise DestinationRuleParseError(
            f"apiVersion {obj.get('apiVersion')!r} is not one of {', '.join(API_VERSIONS)}"
        )
    if not isinstance(obj.get("spec"), dict):
        raise DestinationRuleParseError("spec: required")
    try:
        return DestinationRule.model_validate(obj)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        if first["type"] == GO_DECODE and first["loc"][:1] == ("spec",):
            # Istio's decoder stops at its first failure and reports Go's text alone.
            raise DestinationRuleParseError(first["ctx"]["go"]) from None
        problems = [
            f"{_location(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in errors
        ]
        raise DestinationRuleParseError("; ".join(problems)) from None
