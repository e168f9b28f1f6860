"""Exact disruption and balance figures for ring hash and Maglev (no key sampling).

Ring ownership is constant between consecutive ring points, so shares and moved fractions are
sums of exact arc lengths over the union of both rings' points. Maglev slots are ``h % M``; for
two different table sizes the pair (h % M1, h % M2) is uniform over M1 × M2 (CRT), so the moved
fraction is ``1 - Σ_host share1 · share2``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tether.hashing import Host, Maglev, RingHash

SPACE = 1 << 64


def ring_shares(ring: RingHash, hosts: Sequence[Host]) -> dict[str, float]:
    """Fraction of the 64-bit hash space each host key owns."""
    shares = {h.key: 0.0 for h in hosts}
    points = list(ring.hashes)
    if not points:
        return shares
    previous = points[-1] - SPACE  # the wrap arc (last, 2^64) ∪ [0, first] belongs to entry 0
    for point, index in zip(points, ring.indices, strict=True):
        shares[hosts[index].key] += (point - previous) / SPACE
        previous = point
    return shares


def maglev_shares(maglev: Maglev, hosts: Sequence[Host]) -> dict[str, float]:
    """Fraction of slots (≈ hash space) per host key."""
    return {h.key: c / maglev.size for h, c in zip(hosts, maglev.entries_per_host(), strict=True)}


def ring_moved(a: RingHash, hosts_a: Sequence[Host], b: RingHash, hosts_b: Sequence[Host]) -> float:
    """Exact fraction of the hash space whose owner (by key) differs between two rings."""
    cuts = sorted(set(a.hashes) | set(b.hashes))
    moved = 0
    previous = cuts[-1] - SPACE
    for cut in cuts:
        if hosts_a[a.choose(cut)].key != hosts_b[b.choose(cut)].key:
            moved += cut - previous
        previous = cut
    return moved / SPACE


def maglev_moved(a: Maglev, hosts_a: Sequence[Host], b: Maglev, hosts_b: Sequence[Host]) -> float:
    """Fraction of keys whose owner differs: slot by slot for equal sizes, CRT formula otherwise."""
    if a.size == b.size:
        keys_a = [hosts_a[i].key for i in a.table]
        keys_b = [hosts_b[i].key for i in b.table]
        return sum(x != y for x, y in zip(keys_a, keys_b, strict=True)) / a.size
    share_a, share_b = maglev_shares(a, hosts_a), maglev_shares(b, hosts_b)
    return 1.0 - sum(share * share_b.get(key, 0.0) for key, share in share_a.items())


def balance(shares: dict[str, float]) -> tuple[float, float]:
    """(max/avg, min/avg) of the shares."""
    avg = 1.0 / len(shares)
    return max(shares.values()) / avg, min(shares.values()) / avg
