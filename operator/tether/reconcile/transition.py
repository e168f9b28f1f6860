"""Who owns which share of the key space, and how it flows between two tables.

A key hash ``h`` is uniform over the 64-bit space. Its owner is a Maglev slot ``h % M`` or the
first ring point ``>= h`` (wrapping). From two table documents this module computes:

- ``shares(doc)``: each ready endpoint's fraction of the key space (exact: slot counts over M,
  arc lengths over 2^64; 2^32 for ketama);
- ``transition(old, new)``: the matrix ``(old endpoint, new endpoint) -> fraction of keys``.
  Its off-diagonal sum is the moved fraction, and it agrees with ``reconcile.moved``.

How exact each case is (``Transition.error_bound``, an absolute bound on every cell):
- Maglev → Maglev of one size: slot by slot, exact (0).
- ring → ring, ketama → ketama: arcs merged over the whole space, exact (0).
- Maglev of size M1 → size M2 (distinct primes): by the Chinese remainder theorem every slot
  pair is equally likely, so a cell is ``share_old × share_new``, within ``M1·M2 / 2^64``.
- Maglev ↔ ring: residues mod M are spread evenly inside every arc, so again the product of
  shares, within ``points·M / 2^64``.
- ketama ↔ another algorithm: the key is hashed by another function (md5, not xxh64); the
  product of shares is the expectation for independent hashes (bound ``None``).

Endpoints are identified by their hash key (``ip:port``), as the operator's moved fraction does.
``NOBODY`` stands for "no endpoint" when one side's table is empty.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from tether.models import table as t
from tether.reconcile.tables import Lookup

NOBODY = ""
SPACE_64 = 2**64
SPACE_32 = 2**32


def _space(doc: t.TableDocument) -> int:
    return SPACE_32 if doc.table is not None and doc.table.format == "ketama" else SPACE_64


def _ring_arcs(look: Lookup, space: int) -> Counter:
    """Arc length per endpoint index: point i owns (point i-1, point i], point 0 wraps."""
    hashes, indices = look.hashes, look.indices
    arcs: Counter = Counter()
    prev = hashes[-1] - space
    for h, i in zip(hashes, indices, strict=True):
        arcs[i] += h - prev
        prev = h
    return arcs


def _shares(doc: t.TableDocument, look: Lookup) -> dict[str, float]:
    if look.slots is not None:
        counts, total = Counter(look.slots), len(look.slots)
    elif look.hashes is not None:
        total = _space(doc)
        counts = _ring_arcs(look, total)
    else:
        return {}
    return {look.keys[i]: c / total for i, c in sorted(counts.items()) if c}


def shares(doc: t.TableDocument | None) -> dict[str, float]:
    """Fraction of the key space per ready endpoint (hash key); {} when nothing is hashed.

    The values sum to 1 for any non-empty consistent-hash table.
    """
    if doc is None or doc.policy.type != "consistentHash":
        return {}
    return _shares(doc, Lookup(doc))


@dataclass(frozen=True)
class KeySpace:
    """A consistent-hash document decoded once: its lookup and its shares (for reuse)."""

    doc: t.TableDocument
    look: Lookup
    shares: dict[str, float]

    @classmethod
    def of(cls, doc: t.TableDocument) -> KeySpace:
        """Decode ``doc`` (a consistent-hash document) once."""
        look = Lookup(doc)
        return cls(doc, look, _shares(doc, look))


def ideal_shares(doc: t.TableDocument | None) -> dict[str, float]:
    """Each ready endpoint's weight over the total weight: the share a perfect table gives."""
    if doc is None:
        return {}
    ready = [e for e in doc.endpoints if e.ready]
    total = sum(e.weight for e in ready)
    return {e.hash_key: e.weight / total for e in ready} if total else {}


def optimum_moved(before: Mapping[str, float], after: Mapping[str, float]) -> float:
    """The least fraction of keys any table must move from ideal shares ``before`` to ``after``.

    It is the total variation distance ``1 − Σ min(before[p], after[p])`` over endpoints in
    both: 1/(n+1) when one of n+1 equal endpoints is added, (n−m)/n when n shrink to m, and
    ``1 − n/max(n, m)`` in general for equal weights. Nothing had a home before an empty table:
    0 then.
    """
    if not before:
        return 0.0
    return max(0.0, 1.0 - sum(min(v, after.get(k, 0.0)) for k, v in before.items()))


@dataclass(frozen=True)
class Transition:
    """Key flow between two tables: ``cells[(old key, new key)]`` is a fraction of all keys."""

    before: dict[str, float]
    after: dict[str, float]
    cells: dict[tuple[str, str], float]
    optimum: float
    error_bound: float | None  # absolute bound on each cell; None: a model (see module doc)

    @property
    def moved(self) -> float:
        """Fraction of keys whose endpoint changed (keys that had no endpoint do not count)."""
        return sum(v for (a, b), v in self.cells.items() if a != b and a != NOBODY)

    def row(self, old: str) -> dict[str, float]:
        """Where the keys of one old endpoint went, as fractions of all keys."""
        return {b: v for (a, b), v in self.cells.items() if a == old}


def _product(before: Mapping[str, float], after: Mapping[str, float]) -> dict:
    return {(a, b): va * vb for a, va in before.items() for b, vb in after.items()}


def _merged_rings(a: Lookup, b: Lookup, space: int) -> dict[tuple[str, str], float]:
    ha, hb = a.hashes, b.hashes
    oa = [a.keys[i] for i in a.indices]
    ob = [b.keys[i] for i in b.indices]
    points = sorted(set(ha) | set(hb))
    cells: Counter = Counter()
    prev = points[-1] - space  # the wrap-around interval ends at the first point
    na, nb = len(ha), len(hb)
    for p in points:
        i, j = bisect_left(ha, p), bisect_left(hb, p)
        cells[(oa[i if i < na else 0], ob[j if j < nb else 0])] += p - prev
        prev = p
    return {k: v / space for k, v in cells.items() if v}


def _cells(old: KeySpace, new: KeySpace):
    """(cells, error bound) for two non-empty tables."""
    a, b = old.look, new.look
    if a.slots is not None and b.slots is not None:
        m1, m2 = len(a.slots), len(b.slots)
        if m1 == m2:
            pairs = Counter(zip(a.slots, b.slots, strict=True))
            return {(a.keys[i], b.keys[j]): c / m1 for (i, j), c in pairs.items()}, 0.0
        return _product(old.shares, new.shares), m1 * m2 / SPACE_64
    ketama = (old.doc.table.format == "ketama", new.doc.table.format == "ketama")
    if a.hashes is not None and b.hashes is not None and ketama[0] == ketama[1]:
        return _merged_rings(a, b, _space(old.doc)), 0.0
    if any(ketama):
        return _product(old.shares, new.shares), None
    points = len(a.hashes) if a.hashes is not None else len(b.hashes)
    slots = len(a.slots) if a.slots is not None else len(b.slots)
    return _product(old.shares, new.shares), points * slots / SPACE_64


def transition(
    old: t.TableDocument | KeySpace | None, new: t.TableDocument | KeySpace
) -> Transition | None:
    """The key flow from ``old`` to ``new``; None unless both are consistent-hash tables.

    Invariants: the cells sum to 1 whenever either table is non-empty; ``moved`` equals
    ``reconcile.moved.moved_fraction`` wherever that one is exact. A KeySpace may stand for a
    document that is compared many times.
    """
    docs = [x.doc if isinstance(x, KeySpace) else x for x in (old, new)]
    if any(d is None or d.policy.type != "consistentHash" for d in docs):
        return None
    a, b = (x if isinstance(x, KeySpace) else KeySpace.of(x) for x in (old, new))
    if a.look.empty or b.look.empty:
        cells = (
            {(NOBODY, k): v for k, v in b.shares.items()}
            if a.look.empty
            else {(k, NOBODY): v for k, v in a.shares.items()}
        )
        bound: float | None = 0.0
    else:
        cells, bound = _cells(a, b)
    ideal_old = {} if a.look.empty else ideal_shares(a.doc)
    return Transition(
        before=a.shares,
        after=b.shares,
        cells={k: v for k, v in cells.items() if v > 0},
        optimum=optimum_moved(ideal_old, {} if b.look.empty else ideal_shares(b.doc)),
        error_bound=bound,
    )
