"""Primality exactly as Envoy (and Istio's validation, which copies it) decides it.

Envoy's ``isPrime`` treats every non-zero x < 4 as prime, so 1 passes; even numbers fail; odd
numbers use trial division up to ``floor(sqrt(x))`` computed in float64. Istio rejects a Maglev
``tableSize`` that fails this test, so tether must accept and reject the same sizes.
"""

from __future__ import annotations

import math


def envoy_is_prime(x: int) -> bool:
    """Envoy/Istio ``isPrime`` for a uint64: identical answers, including ``1 -> True``."""
    if x != 0 and x < 4:
        return True
    if x & 1 == 0:
        return False
    limit = int(math.sqrt(float(x)))
    return all(x % factor for factor in range(3, limit + 1, 2))


def next_prime(n: int) -> int:
    """The smallest true prime >= max(n, 2)."""
    candidate = max(n, 2)
    while not (candidate == 2 or (candidate > 2 and envoy_is_prime(candidate))):
        candidate += 1
    return candidate


def previous_prime(n: int) -> int:
    """The largest true prime <= n (n >= 2)."""
    candidate = n
    while not (candidate == 2 or (candidate > 2 and envoy_is_prime(candidate))):
        candidate -= 1
    return candidate
