"""``std::mt19937`` seeded as the C++ constructor seeds it (``init_genrand``), in pure Python.

CPython's ``random.Random`` *is* MT19937, but ``seed(int)`` uses ``init_by_array``; we compute
the ``init_genrand`` state ourselves and install it with ``setstate``, after which
``getrandbits(32)`` returns exactly the C++ engine's outputs.
"""

from __future__ import annotations

import random

_N = 624
_M32 = 0xFFFFFFFF


def mt19937(seed: int) -> random.Random:
    """A Random whose getrandbits(32) sequence equals ``std::mt19937(seed)()`` (seed mod 2^32)."""
    state = [0] * _N
    x = seed & _M32
    state[0] = x
    for i in range(1, _N):
        x = (1812433253 * (x ^ (x >> 30)) + i) & _M32
        state[i] = x
    rng = random.Random()
    rng.setstate((3, (*state, _N), None))
    return rng


def uniform_below(rng: random.Random, k: int) -> int:
    """Envoy's ``uniform_int``: repeat ``x = rng() / (2^32 / k)`` (integer division) until x < k."""
    bucket = (1 << 32) // k
    while True:
        x = rng.getrandbits(32) // bucket
        if x < k:
            return x
