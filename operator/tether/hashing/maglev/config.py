"""Maglev configuration, validated as Envoy validates ``Maglev.table_size``, plus ``auto`` sizing.

Envoy: ``table_size`` defaults to 65537, must be ≤ 5000011 (proto validation) and prime
(``EnvoyException("The table size of maglev must be prime number")``).

``auto`` (tether's opt-in, beyond Envoy): the smallest prime ≥ 100·N, which the Maglev paper
says bounds the difference in hash-space share between hosts to about 1 %. The table size then
changes with N, and a different table size remaps almost every key, so ``auto`` trades
stability on scaling for balance. ``ladder=True`` picks from a fixed ladder of primes instead,
so the size (and the mapping) only jumps when N crosses a ladder step.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.models.primes import next_prime

DEFAULT_TABLE_SIZE = 65537
MAX_TABLE_SIZE = 5_000_011
NOT_PRIME_MESSAGE = "The table size of maglev must be prime number"


def is_prime(n: int) -> bool:
    """Deterministic primality for the table-size range (trial division up to √n)."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    i = 3
    while i * i <= n:
        if n % i == 0:
            return False
        i += 2
    return True


# The smallest primes at or above 65537·2^k (k = 0..6), then Envoy's maximum.
LADDER: tuple[int, ...] = (*(next_prime(DEFAULT_TABLE_SIZE << k) for k in range(7)), MAX_TABLE_SIZE)


def auto_table_size(n_hosts: int, *, ladder: bool = False) -> int:
    """Smallest prime ≥ 100·n_hosts (≥ 2), capped at 5000011; ladder: first LADDER step ≥ 100·N.

    The result is always a valid Envoy ``table_size``.
    """
    if n_hosts < 0:
        raise ValueError(f"number of hosts must be >= 0, got {n_hosts}")
    want = 100 * n_hosts
    if ladder:
        return next((p for p in LADDER if p >= want), MAX_TABLE_SIZE)
    return min(next_prime(want), MAX_TABLE_SIZE)


@dataclass(frozen=True, slots=True)
class MaglevConfig:
    """``table_size``: prime, 2 ≤ M ≤ 5000011; ValueError with Envoy's message otherwise."""

    table_size: int = DEFAULT_TABLE_SIZE

    def __post_init__(self) -> None:
        m = self.table_size
        if isinstance(m, bool) or not isinstance(m, int):
            raise ValueError(f"table_size must be an integer, got {m!r}")
        if m > MAX_TABLE_SIZE:
            raise ValueError(f"table_size must be <= {MAX_TABLE_SIZE}, got {m}")
        if not is_prime(m):
            raise ValueError(NOT_PRIME_MESSAGE)
