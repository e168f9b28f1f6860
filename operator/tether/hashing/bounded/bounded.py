"""Envoy's bounded-load wrapper (``hash_balance_factor``), ``BoundedLoadHashingLoadBalancer``.

A host is acceptable while ``active / slots <= 1`` where
``total_slots = ceil((total_active + 1) * factor / 100)`` (uint32 arithmetic) and
``slots = max(ceil(total_slots * weight), 1)``. If the inner table's choice is not acceptable,
hosts are probed in a Fisher–Yates order drawn from ``std::mt19937(hash)`` over the
normalized-weight vector (host order); the first acceptable one wins, else the least loaded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Protocol

from .mt19937 import mt19937, uniform_below

_M32 = 0xFFFFFFFF


class Chooser(Protocol):
    def choose(self, h: int, attempt: int = 0) -> int | None:
        """Host index for hash h at retry `attempt`, None when there is no host."""


def validate_balance_factor(factor: int) -> int:
    """Envoy's proto rule: 0 (off) or ≥ 100; returns the factor or raises ValueError."""
    if isinstance(factor, bool) or not isinstance(factor, int) or (factor != 0 and factor < 100):
        raise ValueError(f"hash_balance_factor must be 0 (off) or >= 100, got {factor!r}")
    return factor


def probe_order(h: int, n_hosts: int) -> Iterator[int]:
    """Host indices in the order Envoy probes them for hash h (a seeded Fisher–Yates shuffle)."""
    rng = mt19937(h)
    idx = list(range(n_hosts))
    for i in range(n_hosts):
        j = uniform_below(rng, n_hosts - i)
        idx[i], idx[i + j] = idx[i + j], idx[i]
        yield idx[i]


class BoundedLoad:
    """Wraps a ring/Maglev chooser; ``weights`` are the normalized weights in host order.

    ``factor`` is used as given (Envoy's class accepts any value; config enforces ≥ 100 via
    ``validate_balance_factor``).
    """

    __slots__ = ("factor", "inner", "weights")

    def __init__(self, inner: Chooser, weights: Sequence[float], factor: int) -> None:
        if factor < 1:
            raise ValueError(f"hash_balance_factor must be >= 1 here, got {factor}")
        self.inner = inner
        self.weights = list(weights)
        self.factor = factor

    def overload_factor(self, index: int, active: Sequence[int], total_active: int) -> float:
        """``active[index] / slots`` exactly as Envoy's ``hostOverloadFactor`` computes it."""
        overall = total_active & _M32  # Envoy reads the gauge into a uint32
        # uint32 arithmetic wraps at every step; one final mask is the same modulo 2^32.
        total_slots = (((overall + 1) * self.factor + 99) & _M32) // 100
        slots = max(math.ceil(total_slots * self.weights[index]) & _M32, 1)
        return active[index] / slots

    def choose(self, h: int, attempt: int, active: Sequence[int], total_active: int) -> int | None:
        """Host index honouring the bound; ``active`` are in-flight counts per host index."""
        if not self.weights:
            return None
        host = self.inner.choose(h, attempt)
        if host is None:
            return None
        least = self.overload_factor(host, active, total_active)
        if least <= 1.0:
            return host
        best = host
        for k in probe_order(h, len(self.weights)):
            if k == host:
                continue
            factor = self.overload_factor(k, active, total_active)
            if factor <= 1.0:
                return k
            if least > factor:
                best, least = k, factor
        return best
