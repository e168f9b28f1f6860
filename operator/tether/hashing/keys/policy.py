"""Request hash policies and their combination, as Envoy's ``http/hash_policy.cc``.

Each key evaluates to a 64-bit hash or None. ``compute_hash`` combines them in order:
``hash = rotl64(hash, 1) ^ new`` (the first contributes ``0 ^ new``); after a *terminal* key, if
a hash exists so far, evaluation stops. No hash at all means "pick at random" (caller's job).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from xxhash import xxh64_intdigest

from ..hashes import MASK64, xxh64, xxh64_chain
from .cookies import format_set_cookie
from .parse import cookie_needle, query_value, scan_cookie


class RequestView(Protocol):
    """What the hash policies read from a request (the gateway adapts its parser to this)."""

    path: bytes  # the request target as received, query string included
    remote_ip: str  # downstream address without port or brackets, "" if unknown

    def header_values(self, lname: bytes) -> list[bytes]:
        """All values of a header (lowercase name), in arrival order; [] if absent."""
        ...


AddCookie = Callable[["CookieKey"], "str | None"]


@dataclass(frozen=True, slots=True)
class HeaderKey:
    """``hash_policy.header``: all values of the header, sorted bytewise, span-chained XXH64."""

    name: str
    _lname: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lname", self.name.lower().encode())

    def evaluate(self, request: RequestView, add_cookie: AddCookie | None = None) -> int | None:
        """XXH64 of the single value, the chained hash of the sorted values, or None if absent."""
        values = request.header_values(self._lname)
        if not values:
            return None
        if len(values) == 1:
            return xxh64_intdigest(values[0])
        return xxh64_chain(sorted(values))


@dataclass(frozen=True, slots=True)
class CookieKey:
    """``hash_policy.cookie``: XXH64 of the cookie value; generate one if absent and ttl set.

    ``ttl_seconds`` None = never generate (Istio ttl omitted); 0 = session cookie.
    """

    name: str
    path: str = ""
    ttl_seconds: int | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    _needle: bytes | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_needle", cookie_needle(self.name, True))

    def evaluate(self, request: RequestView, add_cookie: AddCookie | None = None) -> int | None:
        """Envoy ``CookieHashMethod``: a non-empty cookie is hashed; else maybe generate one.

        With a ttl and a callback, the callback's value is hashed as Envoy does (even ""); a
        callback returning None (it could not generate) gives no hash.
        """
        needle = self._needle
        value = None if needle is None else scan_cookie(request.header_values(b"cookie"), needle)
        if value:
            return xxh64_intdigest(value)
        if self.ttl_seconds is None or add_cookie is None:
            return None
        generated = add_cookie(self)
        return None if generated is None else xxh64_intdigest(generated.encode())

    def set_cookie(self, value: str) -> str:
        """The ``Set-Cookie`` header value Envoy would send for a generated cookie value."""
        return format_set_cookie(
            self.name, value, self.path, self.ttl_seconds or 0, self.attributes
        )


@dataclass(frozen=True, slots=True)
class SourceIpKey:
    """``connection_properties.source_ip``: XXH64 of the bare downstream IP string."""

    def evaluate(self, request: RequestView, add_cookie: AddCookie | None = None) -> int | None:
        """None when the address is unknown (empty)."""
        ip = request.remote_ip
        return xxh64_intdigest(ip.encode()) if ip else None


@dataclass(frozen=True, slots=True)
class QueryKey:
    """``query_parameter``: XXH64 of the first value of the parameter (even ""), not decoded."""

    name: str

    def evaluate(self, request: RequestView, add_cookie: AddCookie | None = None) -> int | None:
        """None when the parameter is absent."""
        value = query_value(request.path, self.name)
        return None if value is None else xxh64(value)


HashKeySpec = HeaderKey | CookieKey | SourceIpKey | QueryKey


def combine(previous: int | None, new: int) -> int:
    """Envoy's combination step: ``rotl64(previous, 1) ^ new`` (previous None counts as 0)."""
    if previous is None:
        return new
    return (((previous << 1) | (previous >> 63)) & MASK64) ^ new


def compute_hash(
    keys: Sequence[HashKeySpec],
    request: RequestView,
    add_cookie: AddCookie | None = None,
    terminal: Sequence[bool] | None = None,
) -> int | None:
    """Envoy ``HashPolicyImpl::generateHash`` over ``keys`` in order (see module docstring)."""
    h: int | None = None
    for i, key in enumerate(keys):
        new = key.evaluate(request, add_cookie)
        if new is not None:
            h = combine(h, new)
        if terminal is not None and terminal[i] and h is not None:
            break
    return h
