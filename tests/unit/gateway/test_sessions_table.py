"""The recent-sessions table: fixed memory, one entry per session, the window, overwriting the
session seen longest ago, the effective window; the native table equal to the Python one."""

from __future__ import annotations

import random
import tracemalloc
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.gateway.seen_table import (
    BYTES_PER_ENTRY,
    RECORD,
    WAYS,
    PySessionTable,
    py_session_cells,
    spec_pins,
)
from tether.gateway.wire import _wire
from tether.hashing import Host, Maglev, MaglevConfig, RingHash, RingHashConfig

TABLES = {"native": _wire.SessionTable, "python": PySessionTable}
M64 = (1 << 64) - 1


@pytest.fixture(params=sorted(TABLES))
def make(request):
    return TABLES[request.param]


def records(snap: bytes) -> list[tuple[int, int, int]]:
    return list(RECORD.iter_unpack(snap))


def set_of(capacity: int, route: int, h: int) -> int:
    """The set a session lands in (the table's own mix, written out)."""
    bits = (capacity - 1).bit_length()
    mix = ((h ^ (route * 0x9E3779B97F4A7C15 & M64)) * 0xFF51AFD7ED558CCD) & M64
    return mix >> (64 - (bits - 3))


def same_set(capacity: int, route: int, n: int, seed: int = 1) -> list[int]:
    """n distinct hashes that land in one set."""
    rnd, want, out = random.Random(seed), None, []
    while len(out) < n:
        h = rnd.getrandbits(64)
        s = set_of(capacity, route, h)
        if want is None:
            want = s
        if s == want and h not in out:
            out.append(h)
    return out


def test_capacity_must_be_a_power_of_two_from_16(make):
    for bad in (8, 24, 100, -1):
        with pytest.raises((ValueError, OverflowError, SystemError)):
            make(bad)
    assert make(0).capacity == 0 and make(16).capacity == 16


def test_one_entry_per_session_whatever_its_rate(make):
    t = make(1024, 0.0)
    for i in range(5000):
        t.store(7, 0xABCDEF, 3 if i < 4000 else 4, 10.0 + i / 1000)
    assert t.used == 1 and t.stores == 5000
    assert records(t.snapshot(None, 15.0, 300)) == [(0xABCDEF, 7, 4)]  # the last pod served


def test_memory_is_bounded_whatever_the_traffic(make):
    t = make(256, 0.0)
    rnd = random.Random(3)
    for i in range(20000):
        t.store(1 + i % 3, rnd.getrandbits(64), 1, 100.0)
    capacity, used, active, _, evictions, _ = t.stats(100.0, 300)
    assert capacity == 256 and used == 256 and active == 256
    assert evictions == 20000 - 256
    assert len(t.snapshot(None, 100.0, 300)) == 256 * RECORD.size


def test_native_table_allocates_20_bytes_per_entry_once():
    """The stated bound: the native table's heap is capacity x 20 bytes, allocated when it is
    made; 200,000 stores of distinct sessions (three times its capacity) allocate nothing."""
    rnd = random.Random(5)
    hashes = [rnd.getrandbits(64) for _ in range(1000)]

    def traffic(t) -> None:
        for i in range(200):
            for h in hashes:
                t.store(1 + i % 4, h ^ i, 2, float(i))

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        t = _wire.SessionTable(65536, 0.0)
        made = tracemalloc.get_traced_memory()[0] - before
        before = tracemalloc.get_traced_memory()[0]
        traffic(t)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert BYTES_PER_ENTRY == 20 and 65536 * 20 <= made < 65536 * 20 + 512
    assert t.stores == 200_000 and t.used <= 65536 and t.evictions > 100_000
    assert grown < 256  # interpreter noise; a byte per store would be 200,000


def test_window_keeps_sessions_seen_within_it(make):
    t = make(1024, 0.0)
    t.store(1, 11, 1, 0.0)  # second 1
    t.store(1, 22, 1, 100.0)  # second 101
    t.store(2, 33, 1, 250.0)  # second 251
    assert {h for h, _, _ in records(t.snapshot(None, 250.0, 300))} == {11, 22, 33}
    assert {h for h, _, _ in records(t.snapshot(None, 350.0, 300))} == {22, 33}
    assert t.stats(350.0, 300)[2] == 2
    assert records(t.snapshot(array("I", [2]), 350.0, 300)) == [(33, 2, 1)]
    assert records(t.snapshot(array("I", [1]), 500.0, 300)) == []  # 22 was 400 s ago


def test_a_full_set_overwrites_the_session_seen_longest_ago(make):
    t = make(64, 0.0)
    hashes = same_set(64, 5, WAYS + 2)
    for i, h in enumerate(hashes[:WAYS]):
        t.store(5, h, 1, 10.0 + i)  # seconds 11..18
    t.store(5, hashes[0], 2, 30.0)  # the first session comes back: now the freshest
    assert t.stats(30.0, 300)[3] is None  # nothing evicted yet: the window is whole
    t.store(5, hashes[WAYS], 1, 31.0)  # evicts hashes[1], last seen at second 12
    t.store(5, hashes[WAYS + 1], 1, 40.0)  # evicts hashes[2], second 13
    seen = {h for h, _, _ in records(t.snapshot(None, 40.0, 300))}
    assert seen == set(hashes) - {hashes[1], hashes[2]}
    # every session seen after second 13 is in the table: at second 41 that is the last 27 s
    assert t.stats(40.0, 300)[3] == 41 - 13
    assert t.evictions == 2


def test_other_sets_and_routes_are_untouched(make):
    t = make(64, 0.0)
    for h in same_set(64, 5, 20):
        t.store(5, h, 1, 1.0)
    assert t.used == WAYS
    t.store(6, 1234, 1, 1.0)  # another route: its own entry (set chosen with the route)
    assert (1234, 6, 1) in records(t.snapshot(None, 1.0, 300))


def test_off_stores_nothing(make):
    t = make(0, 0.0)
    t.store(1, 2, 3, 4.0)
    assert t.stats(4.0, 300)[:3] == (0, 0, 0) and t.snapshot(None, 4.0, 300) == b""


ops = st.lists(
    st.tuples(
        st.integers(1, 4),  # route
        st.integers(0, 40),  # key (a few: re-use and collisions)
        st.integers(0, 5),  # pod
        st.floats(0, 50),  # clock advance
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(ops, st.integers(0, 3), st.floats(1, 60))
def test_native_equals_python(steps, spread, window):
    tables = [_wire.SessionTable(16, 5.0), PySessionTable(16, 5.0)]
    clock = 5.0
    for route, key, pod, dt in steps:
        clock += dt
        h = (key * 0x9E3779B97F4A7C15 >> spread) & M64
        for t in tables:
            t.store(route, h, pod, clock)
    a, b = tables
    assert a.snapshot(None, clock, window) == b.snapshot(None, clock, window)
    assert a.snapshot(array("I", [2, 3]), clock, window) == b.snapshot([2, 3], clock, window)
    assert a.stats(clock, window) == b.stats(clock, window)


# -- counting: owners under a table, moved and away -----------------------------------------


def _spec(chooser, pods, pins=None):
    if isinstance(chooser, Maglev):
        return array("I", pods), 1, chooser.table, None, spec_pins(pins)
    return array("I", pods), 2, chooser.hashes, chooser.indices, spec_pins(pins)


def _hosts(n):
    return [Host(f"10.0.0.{i}:80") for i in range(n)]


def _choosers():
    return [
        (Maglev.build(_hosts(3), MaglevConfig(251)), Maglev.build(_hosts(5), MaglevConfig(251))),
        (RingHash.build(_hosts(3), RingHashConfig()), RingHash.build(_hosts(5), RingHashConfig())),
    ]


@pytest.mark.parametrize("kind", ["maglev", "ring"])
def test_cells_count_owner_changes_and_sessions_away(kind):
    old, new = _choosers()[kind == "ring"]
    rnd = random.Random(9)
    old_pods, new_pods = [11, 12, 13], [11, 12, 13, 14, 15]
    sessions = [(rnd.getrandbits(64), rnd.choice(old_pods)) for _ in range(400)]
    snap = b"".join(RECORD.pack(h, 3, pod) for h, pod in sessions)
    snap += RECORD.pack(1, 4, 11)  # another route's session: not counted
    expect_moves, expect_away = {}, {}
    for h, pod in sessions:
        a, b = old_pods[old.choose(h)], new_pods[new.choose(h)]
        expect_moves[(a, b)] = expect_moves.get((a, b), 0) + 1
        if b != pod:
            expect_away[(pod, b)] = expect_away.get((pod, b), 0) + 1
    for cells in (_wire.session_cells, py_session_cells):
        moves, away, total = cells(snap, 3, _spec(old, old_pods), _spec(new, new_pods))
        assert (moves, away, total) == (expect_moves, expect_away, 400)
        served, _, _ = cells(snap, 3, None, _spec(new, new_pods))  # old = the pod that served
        assert served == {
            k: v for k, v in _sum((pod, new_pods[new.choose(h)]) for h, pod in sessions).items()
        }


def _sum(pairs):
    out = {}
    for p in pairs:
        out[p] = out.get(p, 0) + 1
    return out


def test_pins_keep_sessions_on_the_pod_that_served_them():
    old, new = _choosers()[0]
    rnd = random.Random(4)
    sessions = [(rnd.getrandbits(64), rnd.choice([11, 12, 13])) for _ in range(300)]
    snap = b"".join(RECORD.pack(h, 3, pod) for h, pod in sessions)
    # 13 is gone in the new table: its sessions fall back to the new table, the rest stay
    new_spec = _spec(new, [11, 12, 14, 15, 16], pins=[11, 12])
    old_spec = _spec(old, [11, 12, 13], pins=[11, 12, 13])
    for cells in (_wire.session_cells, py_session_cells):
        moves, away, total = cells(snap, 3, old_spec, new_spec)
        gone = [(h, p) for h, p in sessions if p == 13]
        assert total == 300
        assert sum(n for (a, b), n in moves.items() if a != b) == len(gone)
        assert sum(away.values()) == len(gone)
        assert {a for a, _ in away} == {13}


def test_uncountable_tables_give_owner_zero():
    snap = RECORD.pack(5, 1, 7)
    none = (array("I", [7]), 0, None, None, None)
    for cells in (_wire.session_cells, py_session_cells):
        assert cells(snap, 1, none, none)[:2] == ({(0, 0): 1}, {(7, 0): 1})
    with pytest.raises(TypeError):
        _wire.session_cells(snap, 1, none, None)
