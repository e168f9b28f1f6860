"""Pure-Python Maglev table build: a literal transcription of Envoy ≥ 1.27, and the spec.

``maglev_lb.cc`` ``constructMaglevTableInternal`` + ``OriginalMaglevTable::
constructImplementationInternals``: entries sorted by key; ``offset = XXH64(key, 0) % M``,
``skip = XXH64(key, 1) % (M - 1) + 1``; fill rounds ``iteration = 1, 2, …``; an entry is skipped
in a round while ``iteration * weight < target_weight`` (doubles), otherwise it advances
``target_weight`` by the maximum normalized weight and claims the first free slot of its
permutation ``(offset + skip * next) % M``. The native kernel must produce identical tables.
"""

from __future__ import annotations

from collections.abc import Sequence

from xxhash import xxh64_intdigest

from ..hosts import Host, normalized_weights


def sorted_entries(hosts: Sequence[Host]) -> list[int]:
    """Host indices in Envoy's build order: by key bytes; equal keys by index (Envoy: pointer)."""
    return sorted(range(len(hosts)), key=lambda i: (hosts[i].key, i))


def permutation_seeds(key: str, table_size: int) -> tuple[int, int]:
    """(offset, skip) of one host key for a table of the given prime size."""
    data = key.encode()
    offset = xxh64_intdigest(data, 0) % table_size
    skip = xxh64_intdigest(data, 1) % (table_size - 1) + 1
    return offset, skip


def build_table(hosts: Sequence[Host], table_size: int) -> tuple[list[int], list[int]]:
    """Return (table, counts): slot → host index (given order) and slots per host index.

    Hosts must be validated; an empty host list gives an empty table.
    """
    if not hosts:
        return [], []
    weights = normalized_weights(hosts)
    max_weight = max(0.0, *weights)
    order = sorted_entries(hosts)
    seeds = [permutation_seeds(hosts[i].key, table_size) for i in order]
    entry_weights = [weights[i] for i in order]
    target = [0.0] * len(order)
    nxt = [0] * len(order)
    counts = [0] * len(hosts)
    table: list[int | None] = [None] * table_size
    filled = 0
    iteration = 1
    while filled < table_size:
        for e, host_index in enumerate(order):
            if filled >= table_size:
                break
            if iteration * entry_weights[e] < target[e]:
                continue
            target[e] += max_weight
            offset, skip = seeds[e]
            c = (offset + skip * nxt[e]) % table_size
            while table[c] is not None:
                nxt[e] += 1
                c = (offset + skip * nxt[e]) % table_size
            table[c] = host_index
            nxt[e] += 1
            counts[host_index] += 1
            filled += 1
        iteration += 1
    return table, counts  # type: ignore[return-value]
