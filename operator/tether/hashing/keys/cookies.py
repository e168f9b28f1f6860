"""Affinity-cookie generation exactly as Envoy's router does it (``router.h``, ``utility.cc``)."""

from __future__ import annotations

from collections.abc import Sequence

from xxhash import xxh64_intdigest


def generate_cookie_value(remote: str, local: str) -> str:
    """16 lowercase hex digits of XXH64(remote + local), both ``ip:port`` (``[v6]:port``).

    Same value for every request on one downstream connection, as in Envoy.
    """
    return format(xxh64_intdigest((remote + local).encode()), "016x")


def format_set_cookie(
    name: str,
    value: str,
    path: str = "",
    ttl_seconds: int = 0,
    attributes: Sequence[tuple[str, str]] = (),
) -> str:
    """Envoy ``makeSetCookieValue(..., httponly=true, attributes)``.

    ``name="value"``, then ``; Max-Age=<s>`` only if ttl ≠ 0, ``; Path=<p>`` only if path is
    non-empty, each attribute as ``; n`` (empty value) or ``; n=v``, and ``; HttpOnly`` last.
    """
    parts = [f'{name}="{value}"']
    if ttl_seconds != 0:
        parts.append(f"Max-Age={ttl_seconds}")
    if path:
        parts.append(f"Path={path}")
    for attr_name, attr_value in attributes:
        parts.append(f"{attr_name}={attr_value}" if attr_value else attr_name)
    parts.append("HttpOnly")
    return "; ".join(parts)
