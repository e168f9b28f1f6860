"""How much of the key space moved to another endpoint between two tables.

Exact where the geometry allows it: Maglev tables of one size compare slot by slot; rings
compare arc by arc over the whole hash space. Anything else (an algorithm or size switch) is
measured on a fixed sample of key strings, the same sample every time, each side hashing a
key the way its gateway does: XXH64 for Envoy's tables, md5 (libketama) for ketama.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from hashlib import md5
from operator import ne

from tether.hashing import xxh64
from tether.models import table as t
from tether.reconcile.tables import Lookup

SAMPLE = 20000
_SAMPLE_KEYS = [str(i) for i in range(SAMPLE)]
_SAMPLE_XXH = [xxh64(k) for k in _SAMPLE_KEYS]


def _ketama_hash(key: str) -> int:
    """libketama's 32-bit point of a key: the first 4 md5 bytes, little-endian (as uhashring)."""
    return int.from_bytes(md5(key.encode(), usedforsecurity=False).digest()[:4], "little")


def _sample_owners(lookup: Lookup) -> list[str | None]:
    """Endpoint key of every sample key under ``lookup``, hashed as its gateway hashes it.

    Ketama routes by md5 of the key string onto its 32-bit continuum (uhashring's bisect to the
    right); Envoy's tables route by XXH64. Mixing the two would compare unrelated hash spaces.
    """
    if lookup.doc.table.format != "ketama":
        return [lookup.choose(h) for h in _SAMPLE_XXH]
    hashes, keys, idx = lookup.hashes, lookup.keys, lookup.indices
    owners = []
    for k in _SAMPLE_KEYS:
        i = bisect_right(hashes, _ketama_hash(k))
        owners.append(keys[idx[0 if i == len(hashes) else i]])
    return owners


def _owner(hashes, owners: list[str], h: int) -> str:
    i = bisect_left(hashes, h)
    return owners[0 if i == len(hashes) else i]


def _rings(a: Lookup, b: Lookup, space: int) -> float:
    ha, oa = a.hashes.tolist(), [a.keys[i] for i in a.indices]
    hb, ob = b.hashes.tolist(), [b.keys[i] for i in b.indices]
    points = sorted(set(ha) | set(hb))
    moved = 0
    prev = points[-1] - space  # the wrap-around arc ends at the first point
    for p in points:
        if _owner(ha, oa, p) != _owner(hb, ob, p):
            moved += p - prev
        prev = p
    return moved / space


def moved_fraction(old: t.TableDocument | None, new: t.TableDocument) -> float | None:
    """Fraction of keys (0..1) whose endpoint changed; None when either side is not hashed.

    A table that gains its first endpoints moves nothing (no key had a home before); a table
    that loses all endpoints moves everything.
    """
    if old is None or old.policy.type != "consistentHash" or new.policy.type != "consistentHash":
        return None
    a, b = Lookup(old), Lookup(new)
    if a.empty:
        return 0.0
    if b.empty:
        return 1.0
    if a.slots is not None and b.slots is not None and len(a.slots) == len(b.slots):
        ka, kb = a.keys, b.keys
        diff = sum(map(ne, map(ka.__getitem__, a.slots), map(kb.__getitem__, b.slots)))
        return diff / len(a.slots)
    fa, fb = old.table.format, new.table.format
    if a.hashes is not None and b.hashes is not None and fa == fb:
        return _rings(a, b, 2**32 if fa == "ketama" else 2**64)
    diff = sum(map(ne, _sample_owners(a), _sample_owners(b)))
    return diff / SAMPLE
