"""The table document: the contract between the operator (writer) and the gateway (reader).

One document per published service/port/subset, stored as key ``table.json`` of a ConfigMap in
the operator's namespace, labelled ``tether.dev/table=v1`` so a gateway can list and watch all of
them with one label selector.

Invariants kept here:
- ``schemaVersion`` is checked on load; an unknown version is rejected, never guessed.
  Version 1 is a document without persistent sessions; version 2 is exactly a version-1
  document plus a ``session`` block (hard affinity). The writer picks the version from the
  content (``schema_version_for``), so documents without sessions stay byte-identical to what
  older operators wrote, and a gateway that predates sessions refuses a version-2 document
  (keeping its last good table) instead of silently routing without the session rules.
- ``checksum`` is the SHA-256 of the canonical JSON of the document *without* the checksum field,
  so any edit, truncation or partial write is detected before a gateway swaps tables.
- ``table.digest`` is the SHA-256 of the uncompressed binary table, so a table that is rebuilt
  instead of shipped (too large for a ConfigMap) is still proven identical to the operator's.
- Endpoint indices in the table refer to ``endpoints`` in document order.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import sys
import zlib
from array import array
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION = 1  # a document without a session block
SESSION_SCHEMA_VERSION = 2  # a document with a session block
SUPPORTED_SCHEMA_VERSIONS = (SCHEMA_VERSION, SESSION_SCHEMA_VERSION)
DATA_KEY = "table.json"
TABLE_LABEL = "tether.dev/table"
TABLE_LABEL_VALUE = "v1"
LABEL_SERVICE_NAMESPACE = "tether.dev/service-namespace"
LABEL_SERVICE_NAME = "tether.dev/service-name"
MANAGED_BY = {"app.kubernetes.io/managed-by": "tether"}
# ConfigMaps are limited to 1 MiB; keep headroom for metadata and other keys.
MAX_DOCUMENT_BYTES = 900 * 1024


class TableDocumentError(ValueError):
    """A document that must not be used: bad JSON, wrong schema, or failed self-checks."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class CookieAttribute(_Model):
    name: str
    value: str = ""


class HashKey(_Model):
    """What a request is hashed on; exactly Istio's ``consistentHash`` hash-key oneof."""

    kind: Literal["cookie", "header", "sourceIp", "queryParameter"]
    name: str | None = None  # cookie, header or query parameter name
    path: str = ""  # cookie only
    ttl_seconds: int | None = Field(default=None, alias="ttlSeconds")  # None = never generate
    attributes: tuple[CookieAttribute, ...] = ()

    @model_validator(mode="after")
    def _name_required(self) -> HashKey:
        if self.kind != "sourceIp" and not self.name:
            raise ValueError(f"hash key {self.kind} needs a name")
        return self


class Policy(_Model):
    """Simple load balancing, or consistent hashing with the exact table parameters."""

    type: Literal["simple", "consistentHash"]
    simple: str | None = None  # ROUND_ROBIN, RANDOM, LEAST_REQUEST, ... when type == simple
    algorithm: Literal["ring-hash", "maglev", "ketama"] | None = None
    table_size: int | None = Field(default=None, alias="tableSize")  # maglev
    min_ring_size: int | None = Field(default=None, alias="minRingSize")  # ring-hash
    max_ring_size: int | None = Field(default=None, alias="maxRingSize")  # ring-hash
    hash_function: Literal["xx-hash", "murmur-hash-2"] = Field(
        default="xx-hash", alias="hashFunction"
    )
    hash_balance_factor: int = Field(default=0, alias="hashBalanceFactor")
    hash_key: HashKey | None = Field(default=None, alias="hashKey")  # None = random pick

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        if self.type == "consistentHash" and self.algorithm is None:
            raise ValueError("consistentHash policy needs an algorithm")
        return self


class Endpoint(_Model):
    address: str
    port: int = Field(ge=1, le=65535)
    pod: str | None = None
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    weight: int = Field(default=1, ge=1)
    hash_key: str = Field(alias="hashKey")  # the string Envoy hashes for this host

    @property
    def authority(self) -> str:
        """``ip:port`` (``[v6]:port`` for IPv6), as Envoy renders the address."""
        return (
            f"[{self.address}]:{self.port}"
            if ":" in self.address
            else f"{self.address}:{self.port}"
        )


class Service(_Model):
    namespace: str
    name: str
    host: str  # FQDN, e.g. httpbin.default.svc.cluster.local
    port: int = Field(ge=1, le=65535)  # the Service port clients address
    port_name: str | None = Field(default=None, alias="portName")


class Source(_Model):
    kind: Literal["DestinationRule"] = "DestinationRule"
    namespace: str
    name: str
    generation: int | None = None
    uid: str | None = None


class Table(_Model):
    """The consistent-hash table in a compact encoding.

    ``format`` ``maglev``: ``size`` endpoint indices, one per slot.
    ``format`` ``ring``: ``size`` little-endian uint64 hashes (sorted ascending) followed by
    ``size`` endpoint indices. Indices are ``dtype`` little-endian. ``data`` is base64 of the
    zlib-compressed bytes, or absent when the table is too large to ship and must be rebuilt
    from ``policy`` and ``endpoints`` (``digest`` still proves the rebuild identical).
    """

    format: Literal["maglev", "ring", "ketama"]
    size: int = Field(ge=0)
    dtype: Literal["u16", "u32"] = "u16"
    compression: Literal["zlib"] = "zlib"
    data: str | None = None
    digest: str  # sha256 hex of the uncompressed binary layout


class SessionSource(_Model):
    """Where the session settings come from: the Service's labels or a BackendLBPolicy."""

    kind: Literal["Service", "BackendLBPolicy"]
    namespace: str
    name: str
    generation: int | None = None


class SessionPolicy(_Model):
    """Hard affinity: the session value names the endpoint (Envoy stateful sessions).

    ``kind`` cookie: Envoy's cookie state (``path`` with Envoy's path rules, ``Set-Cookie``
    with ``cookieMaxAgeSeconds`` as Max-Age, None = a session cookie). ``kind`` header: Envoy's
    header state (``path`` unused). ``absoluteTimeoutSeconds``: the value's absolute deadline
    (Envoy's ``expires``), None = none; ``idleTimeoutSeconds``: the sliding validity of signed
    values, None = tether's default window. ``signing``: ``signed`` (only tether-signed values
    are honoured), ``compat`` (unsigned Envoy values are honoured too and re-issued signed),
    ``unsigned`` (Envoy's format exactly). ``strict``: 503 instead of falling back when the named
    endpoint is unavailable. ``drain``: a terminating endpoint that still serves keeps its
    existing sessions.
    """

    kind: Literal["cookie", "header"]
    name: str = Field(min_length=1)
    path: str = ""
    cookie_max_age_seconds: int | None = Field(default=None, ge=1, alias="cookieMaxAgeSeconds")
    absolute_timeout_seconds: int | None = Field(default=None, ge=1, alias="absoluteTimeoutSeconds")
    idle_timeout_seconds: int | None = Field(default=None, ge=1, alias="idleTimeoutSeconds")
    attributes: tuple[CookieAttribute, ...] = ()
    strict: bool = False
    signing: Literal["signed", "compat", "unsigned"] = "signed"
    drain: bool = True
    source: SessionSource

    @model_validator(mode="after")
    def _consistent(self) -> SessionPolicy:
        if self.kind == "header" and (self.path or self.cookie_max_age_seconds or self.attributes):
            raise ValueError("a header session has no cookie path, Max-Age or attributes")
        if self.signing == "unsigned" and self.idle_timeout_seconds is not None:
            raise ValueError("an idle timeout needs signed values (Envoy's format has no field)")
        return self


_B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_HOLE = "\x00"  # what canonical_json puts in place of a table's data
_HOLE_JSON = json.dumps(_HOLE)  # the six characters \u0000 in quotes


def _writes_as_itself(text: str) -> bool:
    """True when ``json.dumps(text)`` is ``'"' + text + '"'``: only base64 characters, which
    JSON never escapes (``isascii`` is O(1); the translation is one C pass)."""
    return text.isascii() and not text.encode("ascii").translate(None, _B64_CHARS)


def schema_version_for(session: SessionPolicy | None) -> int:
    """The schemaVersion a document with (or without) a session block must carry."""
    return SCHEMA_VERSION if session is None else SESSION_SCHEMA_VERSION


class TableDocument(_Model):
    schema_version: int = Field(alias="schemaVersion")
    service: Service
    subset: str | None = None
    subset_labels: dict[str, str] | None = Field(default=None, alias="subsetLabels")
    source: Source | None = None
    policy: Policy
    endpoints: tuple[Endpoint, ...] = ()
    table: Table | None = None
    session: SessionPolicy | None = None
    generated_at: str | None = Field(default=None, alias="generatedAt")
    checksum: str | None = None

    @model_validator(mode="after")
    def _version_matches_content(self) -> TableDocument:
        want = schema_version_for(self.session)
        if self.schema_version != want:
            has = "with" if self.session else "without"
            raise ValueError(
                f"schemaVersion {self.schema_version} for a document {has} a session"
                f" block (want {want})"
            )
        return self

    def canonical_json(self) -> str:
        """Canonical JSON without the checksum: sorted keys, no spaces, by alias, no Nones.

        Always exactly ``json.dumps(body, sort_keys=True, separators=(",", ":"))``; a table's
        base64 ``data`` (most of the text) is spliced in rather than scanned for escapes again
        when every character of it is one that JSON writes as itself.
        """
        body = self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"checksum"})
        data = self.table.data if self.table is not None else None
        if data is not None and _writes_as_itself(data):
            body["table"]["data"] = _HOLE
            text = json.dumps(body, sort_keys=True, separators=(",", ":"))
            if text.count(_HOLE_JSON) == 1:  # the hole, and nothing else, wrote this
                return text.replace(_HOLE_JSON, f'"{data}"')
            body["table"]["data"] = data
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    def compute_checksum(self) -> str:
        """SHA-256 over canonical_json(); equal documents always give equal checksums."""
        return "sha256:" + hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def sealed(self) -> TableDocument:
        """Return a copy carrying its own checksum (what the operator publishes)."""
        return self.model_copy(update={"checksum": self.compute_checksum()})

    def dumps(self) -> str:
        """Serialise with the checksum of the content; the result always passes loads()."""
        canonical = self.canonical_json()
        checksum = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
        body = json.loads(canonical)
        body["checksum"] = checksum
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @property
    def key(self) -> str:
        """``ns/name:port[/subset]``: unique per published table."""
        base = f"{self.service.namespace}/{self.service.name}:{self.service.port}"
        return f"{base}/{self.subset}" if self.subset else base


def loads(text: str | bytes) -> TableDocument:
    """Parse and verify a document; raise TableDocumentError if it must not be used."""
    try:
        raw = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise TableDocumentError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise TableDocumentError("document is not a JSON object")
    version = raw.get("schemaVersion")
    if version not in SUPPORTED_SCHEMA_VERSIONS or isinstance(version, bool):
        raise TableDocumentError(
            f"unsupported schemaVersion {version!r} (want one of {SUPPORTED_SCHEMA_VERSIONS})"
        )
    try:
        doc = TableDocument.model_validate(raw)
    except ValidationError as exc:
        raise TableDocumentError(f"invalid document: {exc}") from None
    if doc.checksum is None:
        raise TableDocumentError("document has no checksum")
    if doc.checksum != doc.compute_checksum():
        raise TableDocumentError("checksum mismatch: document altered or truncated")
    n = len(doc.endpoints)
    if doc.policy.type == "consistentHash" and doc.table is None and n:
        raise TableDocumentError("consistentHash document without a table")
    return doc


# -- binary table encoding ---------------------------------------------------------------------

_LE = sys.byteorder == "little"


def _indices_bytes(indices: array) -> bytes:
    if _LE:
        return indices.tobytes()
    swapped = array(indices.typecode, indices)
    swapped.byteswap()
    return swapped.tobytes()


def _dtype_for(n_endpoints: int) -> tuple[str, str]:
    return ("u16", "H") if n_endpoints <= 0xFFFF else ("u32", "I")


def encode_maglev(indices: array | list[int], n_endpoints: int, *, ship: bool = True) -> Table:
    """Encode a Maglev slot→endpoint-index table; digest covers the uncompressed bytes."""
    dtype, code = _dtype_for(n_endpoints)
    raw = _indices_bytes(array(code, indices))
    data = base64.b64encode(zlib.compress(raw, 1)).decode() if ship else None
    return Table(
        format="maglev",
        size=len(indices),
        dtype=dtype,
        data=data,
        digest=hashlib.sha256(raw).hexdigest(),
    )


def encode_ring(
    hashes: list[int] | array, indices: list[int] | array, n_endpoints: int, *, ship: bool = True
) -> Table:
    """Encode a sorted ring as (uint64 hashes, endpoint indices); digest covers the raw bytes."""
    if len(hashes) != len(indices):
        raise ValueError("ring hashes and indices differ in length")
    dtype, code = _dtype_for(n_endpoints)
    raw = struct.pack(f"<{len(hashes)}Q", *hashes) + _indices_bytes(array(code, indices))
    data = base64.b64encode(zlib.compress(raw, 1)).decode() if ship else None
    return Table(
        format="ring",
        size=len(hashes),
        dtype=dtype,
        data=data,
        digest=hashlib.sha256(raw).hexdigest(),
    )


def _raw(table: Table) -> bytes:
    if table.data is None:
        raise TableDocumentError("table is not shipped; rebuild it from policy and endpoints")
    try:
        raw = zlib.decompress(base64.b64decode(table.data, validate=True))
    except (ValueError, zlib.error) as exc:
        raise TableDocumentError(f"table data undecodable: {exc}") from None
    if hashlib.sha256(raw).hexdigest() != table.digest:
        raise TableDocumentError("table digest mismatch")
    return raw


def _indices(raw: bytes, table: Table, n_endpoints: int) -> array:
    code = "H" if table.dtype == "u16" else "I"
    out = array(code)
    out.frombytes(raw)
    if not _LE:
        out.byteswap()
    if out and max(out) >= n_endpoints:
        raise TableDocumentError("table refers to an endpoint that is not listed")
    return out


def decode_maglev(table: Table, n_endpoints: int) -> array:
    """Return the slot→endpoint-index array; raise TableDocumentError on any inconsistency."""
    raw = _raw(table)
    width = 2 if table.dtype == "u16" else 4
    if table.format != "maglev" or len(raw) != table.size * width:
        raise TableDocumentError("maglev table has the wrong size")
    return _indices(raw, table, n_endpoints)


def decode_ring(table: Table, n_endpoints: int) -> tuple[array, array]:
    """Return (sorted uint64 hashes, endpoint indices); raise TableDocumentError if bad."""
    raw = _raw(table)
    width = 2 if table.dtype == "u16" else 4
    if table.format != "ring" or len(raw) != table.size * (8 + width):
        raise TableDocumentError("ring table has the wrong size")
    hashes = array("Q")
    hashes.frombytes(raw[: table.size * 8])
    if not _LE:
        hashes.byteswap()
    return hashes, _indices(raw[table.size * 8 :], table, n_endpoints)


def raw_digest_maglev(indices: array | list[int], n_endpoints: int) -> str:
    """Digest a locally rebuilt Maglev table exactly as encode_maglev() would."""
    return encode_maglev(indices, n_endpoints, ship=False).digest


def raw_digest_ring(hashes: list[int] | array, indices: list[int] | array, n_endpoints: int) -> str:
    """Digest a locally rebuilt ring exactly as encode_ring() would."""
    return encode_ring(hashes, indices, n_endpoints, ship=False).digest


# -- ConfigMap naming --------------------------------------------------------------------------

_NAME_BAD = re.compile(r"[^a-z0-9-]+")


def configmap_name(namespace: str, service: str, port: int, subset: str | None = None) -> str:
    """Deterministic, unique, DNS-1123-valid ConfigMap name for one table (≤ 63 chars)."""
    ident = f"{namespace}/{service}:{port}/{subset or ''}"
    suffix = hashlib.sha256(ident.encode()).hexdigest()[:10]
    readable = _NAME_BAD.sub(
        "-", f"{service}-{namespace}-{port}" + (f"-{subset}" if subset else "")
    )
    return f"tt-{readable.strip('-')[:48]}-{suffix}"
