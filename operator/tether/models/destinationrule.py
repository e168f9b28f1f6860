"""Istio ``DestinationRule`` (networking.istio.io v1, v1beta1, v1alpha3 — one schema).

The models read real Istio YAML as the apiserver stores it. They mirror how Istio decodes it:

- Field presence is kept (``None`` = absent), because Istio's rules depend on it:
  ``consistentHash: {}`` is present, ``trafficPolicy: {}`` is an (invalid) empty policy,
  ``ttl`` absent means "never generate a cookie" while ``ttl: 0s`` means "session cookie".
- Empty lists behave as absent, as repeated proto fields do.
- Fields tether does not interpret (connectionPool, outlierDetection, tls, tunnel, ...) are kept
  as plain mappings, and unknown keys anywhere are preserved (``extra="allow"``), never rejected.
- uint64 fields (``tableSize``, ``minimumRingSize``) accept an integer or a decimal string, as
  jsonpb does (istio/api#3445); durations follow Go ``time.ParseDuration``.
- The two ``oneof`` groups of ``consistentHash`` and the ``lb_policy`` oneof of
  ``loadBalancer`` are enforced by key presence, like the CRD's ``oneOf``.

``parse_destination_rule`` is the only entry point that reads a raw object; it raises
``DestinationRuleParseError`` (what Istio reports as "error decoding configuration").
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from tether.models.duration import Duration

GROUP = "networking.istio.io"
KIND = "DestinationRule"
API_VERSIONS = (f"{GROUP}/v1", f"{GROUP}/v1beta1", f"{GROUP}/v1alpha3")
SIMPLE_LB = ("UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST")
_UINT64_MAX = (1 << 64) - 1
_UINT32_MAX = (1 << 32) - 1


class DestinationRuleParseError(ValueError):
    """The object cannot be decoded as a DestinationRule (never published, never half-read)."""


def _uint64(value: Any) -> int:
    """jsonpb semantics: a JSON integer, or a string of decimal digits, within uint64."""
    if isinstance(value, bool):
        raise ValueError("must be an unsigned integer, not a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise ValueError(f"must be an unsigned integer or a string of digits, got {value!r}")
    if not 0 <= number <= _UINT64_MAX:
        raise ValueError(f"{number} is out of range for uint64")
    return number


def _simple(value: Any) -> str:
    """Enum by name (CRD form) or by number (jsonpb also accepts the number)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(SIMPLE_LB):
        return SIMPLE_LB[value]
    if isinstance(value, str) and value in SIMPLE_LB:
        return value
    raise ValueError(f"unknown SimpleLB {value!r}; one of {', '.join(SIMPLE_LB)}")


def _null_empty(value: Any) -> Any:
    """A JSON null list or map decodes like an absent one (proto repeated/map semantics)."""
    return () if value is None else value


def _null_map(value: Any) -> Any:
    return {} if value is None else value


_T = TypeVar("_T")
Items = Annotated[tuple[_T, ...], BeforeValidator(_null_empty)]
Uint64 = Annotated[int, BeforeValidator(_uint64)]
Uint32 = Annotated[int, Field(ge=0, le=_UINT32_MAX, strict=True)]
SimpleLB = Annotated[str, BeforeValidator(_simple)]
StrMap = Annotated[dict[StrictStr, StrictStr], BeforeValidator(_null_map)]
Opaque = dict[str, Any]  # a sub-message tether keeps but does not interpret


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        """jsonpb treats a JSON null field as unset; so do we."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


def _present(model: BaseModel, *names: str) -> list[str]:
    """Names (camelCase) of the given fields that are present (not None)."""
    return [to_camel(n) for n in names if getattr(model, n) is not None]


class CookieAttribute(_Model):
    name: StrictStr = ""
    value: StrictStr = ""


class HTTPCookie(_Model):
    name: StrictStr = ""
    path: StrictStr = ""
    ttl: Duration | None = None  # None: never generate; 0s: generate a session cookie
    attributes: Items[CookieAttribute | None] = ()


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
    to: Annotated[dict[StrictStr, Uint32], BeforeValidator(_null_map)] = {}


class LocalityFailover(_Model):
    from_: StrictStr = Field(default="", alias="from")
    to: StrictStr = ""


class LocalityLoadBalancerSetting(_Model):
    distribute: Items[LocalityDistribute] = ()
    failover: Items[LocalityFailover] = ()
    failover_priority: Items[StrictStr] = ()
    enabled: StrictBool | None = None


class ZoneAwareLoadBalancerSetting(_Model):
    enabled: StrictBool | None = None
    failover: Items[LocalityFailover] = ()
    failover_priority: Items[StrictStr] = ()


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
    connection_pool: Opaque | None = None
    outlier_detection: Opaque | None = None
    tls: Opaque | None = None


class TrafficPolicy(_Model):
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: Opaque | None = None
    outlier_detection: Opaque | None = None
    tls: Opaque | None = None
    port_level_settings: Items[PortTrafficPolicy | None] = ()
    tunnel: Opaque | None = None
    proxy_protocol: Opaque | None = None
    retry_budget: Opaque | None = None

    def port_policy(self, port: int) -> PortTrafficPolicy | None:
        """The first port-level entry for ``port`` (Istio: first match wins), or None."""
        for entry in self.port_level_settings:
            if entry is not None and entry.port is not None and entry.port.number == port:
                return entry
        return None


class Subset(_Model):
    name: StrictStr = ""
    labels: StrMap | None = None
    traffic_policy: TrafficPolicy | None = None


class WorkloadSelector(_Model):
    match_labels: StrMap = {}


class DestinationRuleSpec(_Model):
    host: StrictStr = ""
    traffic_policy: TrafficPolicy | None = None
    subsets: Items[Subset | None] = ()
    export_to: Items[StrictStr] = ()
    workload_selector: WorkloadSelector | None = None


class ObjectMeta(_Model):
    name: StrictStr = ""
    namespace: StrictStr = "default"
    uid: StrictStr | None = None
    generation: int | None = None
    resource_version: StrictStr | None = None
    creation_timestamp: datetime | None = None
    labels: StrMap = {}
    annotations: StrMap = {}


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
        problems = [
            f"{_location(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        ]
        raise DestinationRuleParseError("; ".join(problems)) from None
