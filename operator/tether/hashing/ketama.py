"""A libketama/memcached-compatible ring (via uhashring), for clients that need that mapping.

This is *not* an Envoy algorithm: points are md5-derived (40 × weight-share × 4 per host, as
libketama computes them) and requests are hashed by md5 of the key string, not by XXH64.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from uhashring import HashRing

from .hosts import Host, validate_hosts


class Ketama:
    """Ketama ring over the given hosts; ``choose_key`` returns an index into that order."""

    __slots__ = ("_index", "_ring", "n_hosts")

    def __init__(self, ring: HashRing, index: dict[str, int]) -> None:
        self._ring = ring
        self._index = index
        self.n_hosts = len(index)

    @classmethod
    def build(cls, hosts: Sequence[Host]) -> Ketama:
        """Build the ring; host keys must be unique (ketama identifies servers by name)."""
        validate_hosts(hosts)
        index = {h.key: i for i, h in enumerate(hosts)}
        if len(index) != len(hosts):
            raise ValueError("ketama needs unique host keys")
        nodes = {h.key: {"weight": h.weight} for h in hosts}
        return cls(HashRing(nodes=nodes, hash_fn="ketama"), index)

    def choose_key(self, key: str) -> int | None:
        """Host index for a request key string (md5 ketama point lookup); None if empty."""
        node = self._ring.get_node(key)
        return None if node is None else self._index[node]

    def points(self) -> tuple[array, array]:
        """(sorted 32-bit point hashes, host indices): the continuum, for tables and debugging."""
        pts = self._ring.get_points()
        code = "H" if self.n_hosts <= 0xFFFF else "I"
        return array("Q", [p for p, _ in pts]), array(code, [self._index[n] for _, n in pts])
