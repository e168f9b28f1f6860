"""Build the encoded table of a document from its policy and endpoints.

Invariants:
- Only ``ready`` endpoints are hashed; table indices point into the document's full endpoint
  list (so flags of non-ready endpoints stay visible without shifting anything).
- Hosts are passed to the builders in canonical order (the document's order, sorted by hash
  key), so the same endpoints always give the same table.
- ``lookup(doc)`` rebuilds or decodes exactly the table the gateway will use; the planner uses
  it to measure how many keys moved between two documents.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Sequence

from tether.hashing import Host, Ketama, Maglev, MaglevConfig, RingHash, RingHashConfig
from tether.models import table as t

EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()


def _hosts(endpoints: Sequence[t.Endpoint]) -> tuple[list[int], list[Host]]:
    ready = [i for i, e in enumerate(endpoints) if e.ready]
    return ready, [Host(endpoints[i].hash_key, endpoints[i].weight) for i in ready]


def _remap(indices: Sequence[int], ready: list[int], n: int) -> Sequence[int]:
    if len(ready) == n:  # every endpoint is ready: indices already point into the full list
        return indices
    return [ready[j] for j in indices]


def build(
    policy: t.Policy, endpoints: Sequence[t.Endpoint], *, ship: bool = True
) -> t.Table | None:
    """The encoded table for a consistent-hash policy (None for simple policies).

    ``ship=False`` leaves the data out (the gateway rebuilds it and checks ``digest``).
    """
    if policy.type != "consistentHash":
        return None
    n = len(endpoints)
    ready, hosts = _hosts(endpoints)
    if policy.algorithm == "maglev":
        m = Maglev.build(hosts, MaglevConfig(table_size=policy.table_size or 65537))
        if not hosts:
            return t.Table(format="maglev", size=0, digest=EMPTY_DIGEST, data=None)
        return t.encode_maglev(_remap(m.table, ready, n), n, ship=ship)
    if policy.algorithm == "ring-hash":
        config = RingHashConfig(
            min_ring_size=policy.min_ring_size or 1024,
            max_ring_size=policy.max_ring_size or 8388608,
            hash_function=policy.hash_function,
        )
        r = RingHash.build(hosts, config)
        return t.encode_ring(r.hashes, _remap(r.indices, ready, n), n, ship=ship)
    # ketama: the continuum is shipped in ring layout; the gateway rebuilds it with uhashring
    if not hosts:
        return t.Table(format="ketama", size=0, digest=EMPTY_DIGEST, data=None)
    points, idx = Ketama.build(hosts).points()
    ring = t.encode_ring(points, _remap(idx, ready, n), n, ship=ship)
    return ring.model_copy(update={"format": "ketama"})


class Lookup:
    """The table of one document as the gateway will see it, for comparing two documents.

    ``slots`` (Maglev: endpoint index per slot) or ``hashes``/``indices`` (rings) point into
    ``keys``, the endpoint hash keys in document order.
    """

    def __init__(self, doc: t.TableDocument) -> None:
        self.doc = doc
        self.keys = [e.hash_key for e in doc.endpoints]
        self.slots: Sequence[int] | None = None
        self.hashes: Sequence[int] | None = None
        self.indices: Sequence[int] | None = None
        tab = doc.table
        if doc.policy.type != "consistentHash" or tab is None or tab.size == 0:
            return
        if tab.data is None:  # not shipped: rebuild exactly as the gateway would
            tab = build(doc.policy, doc.endpoints, ship=True)
        n = len(doc.endpoints)
        if tab.format == "maglev":
            self.slots = t.decode_maglev(tab, n)
        else:
            self.hashes, self.indices = t.decode_ring(tab.model_copy(update={"format": "ring"}), n)

    @property
    def empty(self) -> bool:
        """True when the document carries no table to route with."""
        return self.slots is None and self.hashes is None

    def choose(self, h: int) -> str | None:
        """Endpoint key for key hash ``h`` (attempt 0), or None for an empty table."""
        if self.slots is not None:
            return self.keys[self.slots[h % len(self.slots)]]
        if self.hashes is not None:
            i = bisect_left(self.hashes, h)
            return self.keys[self.indices[0 if i == len(self.hashes) else i]]
        return None
