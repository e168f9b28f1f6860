"""Envoy's ring hash ("ketama"), bit for bit (``ring_hash_lb.cc`` ``Ring::Ring``/``chooseHost``).

Build: ``scale = min(ceil(minw * min_ring_size) / minw, max_ring_size)``; walking hosts in the
given order with running double sums, each host gets entries ``"<key>_<i>"`` hashed with XXH64
(or murmur2) until ``current >= target``; then the entries are sorted by hash.
Lookup: the first entry with ``hash >= h`` (wrapping to index 0), plus ``attempt`` positions.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Sequence

from xxhash import xxh64_intdigest

from ..hashes import murmur2_64
from ..hosts import Host, normalized_weights, validate_hosts
from .config import RingHashConfig

try:  # the native search (_search.c); the bisect below is its reference and fallback
    from ._search import choose as _native_choose
except ImportError:  # pragma: no cover - only without a compiler at install time
    _native_choose = None

NATIVE: bool = _native_choose is not None


def _index_array(n_hosts: int, values: Sequence[int] = ()) -> array:
    return array("H" if n_hosts <= 0xFFFF else "I", values)


class RingHash:
    """A sorted ring of (hash, host index); indices refer to the hosts in the order given.

    ``hashes`` is ascending (ties keep host order; Envoy's ``std::sort`` leaves them
    unspecified, and XXH64 ties between distinct keys are practically impossible).
    """

    __slots__ = ("_hash_list", "hashes", "indices", "n_hosts", "size_stat")

    def __init__(self, hashes: array, indices: array, n_hosts: int, size_stat: int = 0) -> None:
        self.hashes = hashes
        self.indices = indices
        self.n_hosts = n_hosts
        self.size_stat = size_stat  # Envoy's ``ring_hash_lb.size`` gauge: ceil(scale)
        # bisect on a list avoids creating an int object per probe (arrays box on access).
        self._hash_list = hashes.tolist()

    @classmethod
    def build(cls, hosts: Sequence[Host], config: RingHashConfig | None = None) -> RingHash:
        """Build exactly as Envoy does for hosts in the given order (see module docstring)."""
        config = config or RingHashConfig()
        validate_hosts(hosts)
        if not hosts:
            return cls(array("Q"), _index_array(0), 0)
        weights = normalized_weights(hosts)
        min_w = min(1.0, *weights)
        scale = min(
            float(math.ceil(min_w * config.min_ring_size)) / min_w, float(config.max_ring_size)
        )
        hash_fn = murmur2_64 if config.hash_function == "murmur-hash-2" else xxh64_intdigest
        entries: list[tuple[int, int]] = []
        current = 0.0
        target = 0.0
        for index, (host, weight) in enumerate(zip(hosts, weights, strict=True)):
            prefix = host.key + "_"
            target += scale * weight
            i = 0
            while current < target:
                entries.append((hash_fn(f"{prefix}{i}".encode()), index))
                i += 1
                current += 1
        entries.sort()
        hashes = array("Q", [e[0] for e in entries])
        indices = _index_array(len(hosts), [e[1] for e in entries])
        return cls(hashes, indices, len(hosts), math.ceil(scale))

    @classmethod
    def from_arrays(cls, hashes: Sequence[int], indices: Sequence[int], n_hosts: int) -> RingHash:
        """Adopt a ring decoded from a table document; ValueError if unsorted or inconsistent."""
        hashes = (
            hashes if isinstance(hashes, array) and hashes.typecode == "Q" else array("Q", hashes)
        )
        if len(hashes) != len(indices):
            raise ValueError("ring hashes and indices differ in length")
        if any(hashes[i] > hashes[i + 1] for i in range(len(hashes) - 1)):
            raise ValueError("ring hashes are not sorted ascending")
        if len(indices) and (max(indices) >= n_hosts or min(indices) < 0):
            raise ValueError("ring refers to a host index outside 0..n_hosts-1")
        return cls(hashes, _index_array(n_hosts, indices), n_hosts)

    def choose(self, h: int, attempt: int = 0) -> int | None:
        """Host index for request hash h (0 ≤ h < 2^64); None if the ring is empty.

        Always equal to ``choose_reference`` (the unit tests hold the native search to it).
        """
        if _native_choose is not None:
            return _native_choose(self.hashes, self.indices, h, attempt)
        return self.choose_reference(h, attempt)

    def choose_reference(self, h: int, attempt: int = 0) -> int | None:
        """Envoy's chooseHost in plain Python: first entry with hash ≥ h, wrapping, + attempt."""
        ring = self._hash_list
        n = len(ring)
        if not n:
            return None
        i = bisect_left(ring, h)
        if i == n:
            i = 0
        if attempt:
            i = (i + attempt) % n
        return self.indices[i]

    def __len__(self) -> int:
        return len(self._hash_list)

    def hashes_per_host(self) -> list[int]:
        """Number of ring entries per host index (Envoy's min/max_hashes_per_host gauges)."""
        counts = [0] * self.n_hosts
        for i in self.indices:
            counts[i] += 1
        return counts
