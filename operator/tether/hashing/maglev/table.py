"""The Maglev lookup table: built natively (fast path) or by the pure-Python reference.

Both builds produce the same slot → host-index table (tested); indices refer to the hosts in
the order the caller gave, although the build itself sorts hosts by key as Envoy ≥ 1.27 does,
so the table for a given host *set* never depends on that order.
Lookup: ``table[h % M]``; retry attempt ``a > 0`` first XORs ``h`` with ``2^64 - a``.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from ..hashes import MASK64
from ..hosts import Host, normalized_weights, validate_hosts
from . import reference
from .config import MaglevConfig

try:
    from . import _kernel
except ImportError:  # pragma: no cover - exercised only where the extension failed to build
    _kernel = None

NATIVE: bool = _kernel is not None


def _index_typecode(n_hosts: int) -> str:
    return "H" if n_hosts <= 0xFFFF else "I"


class Maglev:
    """A Maglev table of ``size`` slots holding host indices (order of the hosts given)."""

    __slots__ = ("_counts", "n_hosts", "size", "table")

    def __init__(self, table: array, n_hosts: int, counts: list[int] | None = None) -> None:
        self.table = table
        self.size = len(table)
        self.n_hosts = n_hosts
        self._counts = counts

    @classmethod
    def build(cls, hosts: Sequence[Host], config: MaglevConfig | None = None) -> Maglev:
        """Build with the native kernel (pure-Python reference if it is not compiled)."""
        config = config or MaglevConfig()
        validate_hosts(hosts)
        if _kernel is None or not hosts:
            return cls.build_reference(hosts, config)
        m = config.table_size
        n = len(hosts)
        weights = normalized_weights(hosts)
        order = reference.sorted_entries(hosts)
        seeds = [reference.permutation_seeds(hosts[i].key, m) for i in order]
        typecode = _index_typecode(n)
        table = array(typecode, bytes(m * array(typecode).itemsize))
        counts = array("Q", bytes(8 * n))
        _kernel.fill(
            m,
            array("Q", [s[0] for s in seeds]),
            array("Q", [s[1] for s in seeds]),
            array("d", [weights[i] for i in order]),
            max(weights),
            array("I", order),
            table,
            table.itemsize,
            counts,
        )
        per_host = [0] * n
        for entry, host_index in enumerate(order):
            per_host[host_index] = counts[entry]
        return cls(table, n, per_host)

    @classmethod
    def build_reference(cls, hosts: Sequence[Host], config: MaglevConfig | None = None) -> Maglev:
        """Build with the pure-Python transcription of Envoy (the spec; ~100 ms at M=65537)."""
        config = config or MaglevConfig()
        validate_hosts(hosts)
        table, counts = reference.build_table(hosts, config.table_size)
        return cls(array(_index_typecode(len(hosts)), table), len(hosts), counts)

    @classmethod
    def from_table(cls, indices: Sequence[int], n_hosts: int) -> Maglev:
        """Adopt a decoded table; ValueError if an index is outside 0..n_hosts-1."""
        table = indices if isinstance(indices, array) else array(_index_typecode(n_hosts), indices)
        if len(table) and (max(table) >= n_hosts or min(table) < 0):
            raise ValueError("maglev table refers to a host index outside 0..n_hosts-1")
        return cls(table, n_hosts)

    def choose(self, h: int, attempt: int = 0) -> int | None:
        """Host index for request hash h (0 ≤ h < 2^64); None if the table is empty."""
        if not self.size:
            return None
        if attempt:
            h ^= (MASK64 - attempt + 1) & MASK64
        return self.table[h % self.size]

    def entries_per_host(self) -> list[int]:
        """Slots per host index (Envoy's min/max_entries_per_host gauges are min/max of this)."""
        if self._counts is None:
            counts = [0] * self.n_hosts
            for i in self.table:
                counts[i] += 1
            self._counts = counts
        return list(self._counts)
