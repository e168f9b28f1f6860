"""The transition matrix, checked against brute-force lookups of the tables the gateway uses."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.models import table as t
from tether.reconcile.moved import moved_fraction
from tether.reconcile.tables import Lookup
from tether.reconcile.transition import (
    NOBODY,
    optimum_moved,
    shares,
    transition,
)

from .table_docs import doc, docs_for, endpoint, ips, policy


def _brute(old, new, hashes) -> dict[tuple[str, str], float]:
    """Fraction of ``hashes`` per (old owner, new owner), by the gateway's own lookup."""
    a, b = Lookup(old), Lookup(new)
    counts = Counter((a.choose(h) or NOBODY, b.choose(h) or NOBODY) for h in hashes)
    return {k: v / len(hashes) for k, v in counts.items()}


def _sample(n: int = 100_000, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(64) for _ in range(n)]


def _close_to_sample(exact: dict, sampled: dict, n: int) -> None:
    """Each cell within 5 binomial standard deviations of the sampled fraction."""
    for key in exact.keys() | sampled.keys():
        p = exact.get(key, 0.0)
        sd = math.sqrt(max(p * (1 - p), 1e-9) / n)
        assert abs(sampled.get(key, 0.0) - p) <= 5 * sd + 1e-9, (key, p, sampled.get(key))


def test_maglev_same_size_is_exact_slot_by_slot():
    # every residue class mod M is one slot: enumerating h = 0..M-1 is the exact brute force
    pol = policy("maglev", 4099)
    old, new = docs_for(3, pol), docs_for(5, pol)
    tr = transition(old, new)
    assert tr.error_bound == 0.0
    brute = _brute(old, new, range(4099))
    assert tr.cells == pytest.approx(brute, abs=1e-12)
    assert tr.moved == pytest.approx(moved_fraction(old, new), abs=1e-12)
    assert tr.optimum == pytest.approx(2 / 5)


def test_maglev_size_change_is_exact_by_crt():
    # h mod (M1·M2) enumerates every (slot, slot) pair once: exact brute force for two primes
    old, new = docs_for(3, policy("maglev", 101)), docs_for(4, policy("maglev", 103))
    tr = transition(old, new)
    brute = _brute(old, new, range(101 * 103))
    assert tr.cells == pytest.approx(brute, abs=1e-12)
    assert 0 < tr.error_bound < 1e-15
    # a new table size remaps nearly every key: 1 − Σ share_old·share_new
    assert tr.moved > 0.6


def test_ring_to_ring_matches_sampled_lookup_and_the_operators_figure():
    old, new = docs_for(3, policy("ring-hash")), docs_for(5, policy("ring-hash"))
    tr = transition(old, new)
    assert tr.error_bound == 0.0
    hashes = _sample()
    _close_to_sample(tr.cells, _brute(old, new, hashes), len(hashes))
    assert tr.moved == pytest.approx(moved_fraction(old, new), abs=1e-12)
    assert sum(tr.cells.values()) == pytest.approx(1.0, abs=1e-12)


def test_ring_boundaries_belong_to_the_point_they_end_at():
    old, new = docs_for(2, policy("ring-hash", 16)), docs_for(3, policy("ring-hash", 16))
    a, b = Lookup(old), Lookup(new)
    # a hash exactly on a point, and just after it, are owned as the gateway owns them
    probes = [h + d for h in list(a.hashes) + list(b.hashes) for d in (0, 1) if h + d < 2**64]
    tr = transition(old, new)
    for h in probes:
        assert tr.cells.get((a.choose(h), b.choose(h)), 0) > 0


def test_maglev_to_ring_switch_matches_sampled_lookup():
    eps = [endpoint(ip) for ip in ips(4)]
    old, new = doc(eps, policy("maglev")), doc(eps, policy("ring-hash"))
    tr = transition(old, new)
    assert 0 < tr.error_bound < 1e-8
    hashes = _sample()
    _close_to_sample(tr.cells, _brute(old, new, hashes), len(hashes))
    assert tr.optimum == 0.0  # same endpoints: a perfect switch would move nothing


def test_terminating_endpoint_owns_nothing_and_its_keys_are_spread():
    eps = [endpoint(ip) for ip in ips(4)]
    old = doc(eps)
    new = doc([*eps[:3], endpoint(eps[3].address, ready=False)])
    tr = transition(old, new)
    gone = eps[3].hash_key
    assert gone not in tr.after
    assert sum(tr.row(gone).values()) == pytest.approx(tr.before[gone])
    # every key of the gone endpoint moves, and Maglev moves only a little more than those
    assert tr.before[gone] <= tr.moved < tr.before[gone] + 0.01
    assert tr.optimum == pytest.approx(1 / 4)


def test_scale_down_5_to_2_optimum_and_rows():
    old = docs_for(5)
    new = doc([endpoint(ip) for ip in ips(2)])
    tr = transition(old, new)
    assert tr.optimum == pytest.approx(3 / 5)
    assert tr.moved >= tr.optimum - 1e-12
    for key, share in tr.before.items():
        assert sum(tr.row(key).values()) == pytest.approx(share, abs=1e-12)


def test_empty_tables_and_simple_policies():
    full = docs_for(3)
    empty = doc([endpoint(ip, ready=False) for ip in ips(3)])
    first = transition(empty, full)
    assert first.moved == 0.0 and first.optimum == 0.0
    assert {a for a, _ in first.cells} == {NOBODY}
    last = transition(full, empty)
    assert last.moved == pytest.approx(1.0) and last.optimum == 1.0
    rr = doc([endpoint(ip) for ip in ips(3)], t.Policy(type="simple", simple="ROUND_ROBIN"))
    assert transition(rr, full) is None and transition(None, full) is None
    assert shares(rr) == {}


def test_optimum_generalises_one_over_n_plus_one():
    for n in range(1, 12):
        before = {str(i): 1 / n for i in range(n)}
        after = {str(i): 1 / (n + 1) for i in range(n + 1)}
        assert optimum_moved(before, after) == pytest.approx(1 / (n + 1))
    assert optimum_moved({"a": 0.5, "b": 0.5}, {"c": 1.0}) == 1.0  # full replacement
    assert optimum_moved({}, {"a": 1.0}) == 0.0


def test_weighted_shares_follow_weights():
    eps = [endpoint("10.244.0.2", weight=3), endpoint("10.244.0.3", weight=1)]
    got = shares(doc(eps))
    assert got["10.244.0.2:8080"] == pytest.approx(0.75, abs=0.01)


@settings(max_examples=25, deadline=None)
@given(
    n_old=st.integers(1, 7),
    n_new=st.integers(1, 7),
    start=st.integers(2, 200),
    algos=st.sampled_from(
        [("maglev", "maglev"), ("ring-hash", "ring-hash"), ("maglev", "ring-hash")]
    ),
)
def test_rows_and_columns_sum_to_the_shares(n_old, n_new, start, algos):
    old = docs_for(n_old, policy(algos[0], 257 if algos[0] == "maglev" else 64), start)
    new = docs_for(n_new, policy(algos[1], 257 if algos[1] == "maglev" else 64), start + 1)
    tr = transition(old, new)
    assert sum(tr.cells.values()) == pytest.approx(1.0, abs=1e-9)
    for key, share in tr.before.items():
        assert sum(tr.row(key).values()) == pytest.approx(share, abs=1e-9)
    for key, share in tr.after.items():
        col = sum(v for (_, b), v in tr.cells.items() if b == key)
        assert col == pytest.approx(share, abs=1e-9)
    # no coupling of the two share distributions moves less than their total variation
    tv = 1 - sum(min(v, tr.after.get(k, 0.0)) for k, v in tr.before.items())
    assert tr.moved >= tv - 1e-9
