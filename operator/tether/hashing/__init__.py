"""tether.hashing — Envoy-identical consistent hashing, pure (no Kubernetes, no network).

Everything here reproduces Envoy ≥ 1.27 bit for bit (spec and vectors:
``shared/reference/envoy-hashing.md``); the unit tests carry Envoy's own test vectors.

Hash primitives (``hashes``)::

    xxh64(data: bytes | str, seed: int = 0) -> int          # XXH64 (python-xxhash); str → UTF-8
    xxh64_chain(values: Sequence[bytes]) -> int             # Envoy span overload: seed chaining
    murmur2_64(data: bytes, seed: int = 0xC70F6907) -> int  # libstdc++/Envoy 64-bit MurmurHash2
    rotl64(x, bits=1) -> int ; MASK64

Hosts (``hosts``)::

    Host(key: str, weight: int = 1)           # key = what Envoy hashes, e.g. "10.244.0.5:8080"
    normalized_weights(hosts) -> list[float]  # w / sum(w), host order, no locality
    canonical_order(hosts) -> list[Host]      # sorted by key: the order the operator uses
    validate_hosts(hosts)                     # ValueError: empty key, weight < 1, sum > 2^32-1

Host order: Envoy's ring is host-order dependent; Maglev (≥ 1.27) sorts by key internally. Both
builders build exactly as Envoy would for the order given and return indices *into that order*.
The operator always passes ``canonical_order(hosts)``, so the mapping key → host never depends on
EndpointSlice order (for Maglev it never does anyway).

Ring hash (``ring``)::

    RingHashConfig(min_ring_size=1024, max_ring_size=8388608,
                   hash_function="xx-hash" | "murmur-hash-2")
    RingHash.build(hosts, config=RingHashConfig()) -> RingHash
    RingHash.from_arrays(hashes, indices, n_hosts) -> RingHash     # from a decoded table document
    ring.hashes: array('Q') sorted ; ring.indices: array('H'|'I') ; ring.size_stat ; len(ring)
    ring.choose(h, attempt=0) -> int | None ; ring.hashes_per_host() -> list[int]

Maglev (``maglev``)::

    MaglevConfig(table_size=65537)                  # prime, ≤ 5000011, Envoy's error messages
    auto_table_size(n_hosts, *, ladder=False) -> int  # opt-in "auto": smallest prime ≥ 100·N
    Maglev.build(hosts, config=MaglevConfig())      # native C kernel (NATIVE tells if compiled)
    Maglev.build_reference(hosts, config)           # pure Python transcription of Envoy (spec)
    Maglev.from_table(indices, n_hosts)
    maglev.table: array('H'|'I') of host indices (len M) ; maglev.size ; maglev.entries_per_host()
    maglev.choose(h, attempt=0) -> int | None

Ketama (``ketama``; libketama/memcached-compatible via uhashring, md5 on the key string)::

    Ketama.build(hosts) ; ketama.choose_key(key: str) -> int | None ; ketama.points()

Bounded load (``bounded``; ``hash_balance_factor`` with Envoy's std::mt19937 probe order)::

    BoundedLoad(inner, weights: Sequence[float], factor: int)
    bl.choose(h, attempt, active: Sequence[int], total_active: int) -> int | None
    probe_order(h, n_hosts) -> Iterator[int] ; validate_balance_factor(factor) ; mt19937(seed)

Request keys (``keys``; Envoy ``hash_policy.cc`` + ``http/utility.cc``)::

    HeaderKey(name) ; CookieKey(name, path="", ttl_seconds=None, attributes=()) ;
    SourceIpKey() ; QueryKey(name)            # each: .evaluate(request, add_cookie) -> int|None
    compute_hash(keys, request: RequestView, add_cookie=None, terminal=None) -> int | None
    cookie_value(cookie_header_values, name) -> same type | None   # quotes stripped, "" as-is
    query_value(path, name) -> same type | None                     # first occurrence, not decoded
    generate_cookie_value(remote: str, local: str) -> str           # 016x of XXH64(remote+local)
    format_set_cookie(name, value, path="", ttl_seconds=0, attributes=()) -> str
    CookieKey.set_cookie(value) -> str                              # its Set-Cookie header value
    keys.config.key_from_model(models.table.HashKey) -> key          # (imports pydantic models)

Native code: two small C extensions built by ``pip install -e .`` (``setup.py``), each held equal
to a pure-Python twin by the unit tests: the Maglev fill loop (``maglev/_kernel.c`` vs
``maglev/reference.py``; ``NATIVE``) and the per-request cookie scan (``keys/_cookie.c`` vs
``keys.parse.scan_cookie_bytes``; ``keys.parse.NATIVE_COOKIE``). Without a compiler both fall
back to the Python twins (same results, slower).

``RequestView`` is a Protocol: ``header_values(lname: bytes) -> list[bytes]``, ``path: bytes``,
``remote_ip: str`` (bare IP). ``add_cookie(CookieKey) -> str | None`` is called only for a cookie
key with a ttl whose cookie is missing or empty; the gateway returns
``generate_cookie_value(remote, local)`` and sends ``key.set_cookie(value)``.
"""

from .bounded import BoundedLoad, probe_order, validate_balance_factor
from .hashes import MASK64, murmur2_64, rotl64, xxh64, xxh64_chain
from .hosts import Host, canonical_order, normalized_weights, validate_hosts
from .ketama import Ketama
from .keys import (
    CookieKey,
    HashKeySpec,
    HeaderKey,
    QueryKey,
    RequestView,
    SourceIpKey,
    compute_hash,
    cookie_value,
    format_set_cookie,
    generate_cookie_value,
    query_value,
)
from .maglev import NATIVE, Maglev, MaglevConfig, auto_table_size, is_prime
from .ring import RingHash, RingHashConfig

__all__ = [
    "MASK64",
    "NATIVE",
    "BoundedLoad",
    "CookieKey",
    "HashKeySpec",
    "HeaderKey",
    "Host",
    "Ketama",
    "Maglev",
    "MaglevConfig",
    "QueryKey",
    "RequestView",
    "RingHash",
    "RingHashConfig",
    "SourceIpKey",
    "auto_table_size",
    "canonical_order",
    "compute_hash",
    "cookie_value",
    "format_set_cookie",
    "generate_cookie_value",
    "is_prime",
    "murmur2_64",
    "normalized_weights",
    "probe_order",
    "query_value",
    "rotl64",
    "validate_balance_factor",
    "validate_hosts",
    "xxh64",
    "xxh64_chain",
]
