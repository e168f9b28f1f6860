"""Primality exactly as Envoy (and Istio's validation, which copies it) decides it, in microseconds.

Envoy's ``Primes::isPrime`` and Istio's ``isPrime(x uint64)`` treat every non-zero x < 4 as
prime (so 1 passes), reject 0 and every other even number, and run trial division by odd
factors up to ``uint64(math.Sqrt(float64(x)))``. For x >= 4 that float64 bound never falls
below the smallest factor of a composite x (``sqrt`` is correctly rounded and monotone, and
``sqrt(float64(p*p)) == p`` for every p < 2**32), so the answer is true primality there.

Trial division of a large prime (2**61 - 1 is one, and Istio's CRD stores it) costs ~10**9
divisions, tens of seconds in Python. ``envoy_is_prime`` gives the same answers with a
deterministic Miller-Rabin test: the first twelve primes as bases are proven to decide every
n < 3.3 * 10**24 (Sorenson and Webster 2015), which covers all of uint64. Its cost is bounded
(12 modular exponentiations) whatever the input.
"""

from __future__ import annotations

import math

_UINT64_MAX = (1 << 64) - 1
# Deterministic for n < 3,317,044,064,679,887,385,961,981 > 2**64.
_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def _miller_rabin(n: int) -> bool:
    """True primality for odd 37 < n < 2**64 (deterministic bases)."""
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def envoy_is_prime(x: int) -> bool:
    """Envoy/Istio ``isPrime`` for a uint64: identical answers, including ``1 -> True``.

    Raises ValueError outside uint64 (Istio's decoder never yields such a value).
    """
    if not 0 <= x <= _UINT64_MAX:
        raise ValueError(f"{x} is not a uint64")
    if x != 0 and x < 4:
        return True
    if x & 1 == 0:
        return False
    if x in _BASES:
        return True
    if any(x % p == 0 for p in _BASES):
        return False
    return _miller_rabin(x)


def envoy_is_prime_trial(x: int) -> bool:
    """Envoy's loop as written (trial division to the float64 square root): the reference the
    fast test is held to; its cost grows with sqrt(x), so never call it on untrusted input."""
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
