"""Translate the table document's ``policy.hashKey`` into a hash key (config apart from logic)."""

from __future__ import annotations

from tether.models.table import HashKey

from .policy import CookieKey, HashKeySpec, HeaderKey, QueryKey, SourceIpKey


def key_from_model(spec: HashKey) -> HashKeySpec:
    """One Istio ``consistentHash`` hash key → the equivalent Envoy hash policy key."""
    if spec.kind == "cookie":
        return CookieKey(
            name=spec.name or "",
            path=spec.path,
            ttl_seconds=spec.ttl_seconds,
            attributes=tuple((a.name, a.value) for a in spec.attributes),
        )
    if spec.kind == "header":
        return HeaderKey(spec.name or "")
    if spec.kind == "queryParameter":
        return QueryKey(spec.name or "")
    return SourceIpKey()
