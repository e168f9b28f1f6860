"""Graceful drain for consistent hashing: keys stay on a terminating pod while it serves,
the pod gets no new keys, and without draining pods the pick is exactly the current table's."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.hashing import Host, Maglev, MaglevConfig, canonical_order
from tether.hashing.session import DrainStack, TableView

M = 65537
_RNG = random.Random(7)
KEYS = [_RNG.getrandbits(64) for _ in range(4000)]


def table(addresses) -> TableView:
    hosts = canonical_order([Host(a) for a in addresses])
    maglev = Maglev.build(hosts, MaglevConfig(table_size=M))
    keys = [h.key for h in hosts]
    return TableView(lambda h: keys[maglev.choose(h)], frozenset(keys))


def pods(*ids) -> list[str]:
    return [f"10.244.0.{i}:8080" for i in ids]


def test_a_terminating_pod_keeps_its_keys_and_gets_no_new_ones():
    before = table(pods(1, 2, 3, 4))
    after = table(pods(1, 2, 4))  # pod 3 is terminating, still serving
    stack = DrainStack.start(before).advance(after, frozenset(pods(3)))
    for h in KEYS:
        old, new = before.pick(h), after.pick(h)
        assert stack.pick(h) == (old if old == pods(3)[0] else new)
    assert any(before.pick(h) == pods(3)[0] for h in KEYS)
    # It stops serving: every key goes where the current table says; the old table is dropped.
    done = stack.with_draining(frozenset())
    assert len(done.tables) == 1 and all(done.pick(h) == after.pick(h) for h in KEYS)


def test_rolling_update_keeps_each_draining_pods_keys_across_later_tables():
    t1 = table(pods(1, 2, 3))
    t2 = table(pods(2, 3, 11))  # 1 replaced by 11; 1 drains
    t3 = table(pods(3, 11, 12))  # 2 replaced by 12; 1 and 2 drain
    stack = DrainStack.start(t1).advance(t2, frozenset(pods(1))).advance(t3, frozenset(pods(1, 2)))
    for h in KEYS:
        if t1.pick(h) == pods(1)[0]:
            assert stack.pick(h) == pods(1)[0]
        elif t2.pick(h) == pods(2)[0]:
            assert stack.pick(h) == pods(2)[0]
        else:
            assert stack.pick(h) == t3.pick(h)
    # Pod 1 is gone, pod 2 still drains: pod 1's keys go where the current table says, never to
    # pod 2 (which never had them), and pod 2 keeps exactly its own.
    later = stack.with_draining(frozenset(pods(2)))
    for h in KEYS:
        if t1.pick(h) != pods(1)[0] and t2.pick(h) == pods(2)[0]:
            assert later.pick(h) == pods(2)[0]
        else:
            assert later.pick(h) == t3.pick(h)
    assert any(t1.pick(h) == pods(1)[0] and t2.pick(h) == pods(2)[0] for h in KEYS)
    # Both gone: one table again.
    done = later.with_draining(frozenset())
    assert done.tables == (t3,)


def test_scale_up_moves_keys_as_envoy_does():
    # A ready pod that loses keys to a new pod keeps none of them: drain is for leaving pods.
    t1, t2 = table(pods(1, 2, 3)), table(pods(1, 2, 3, 4, 5))
    stack = DrainStack.start(t1).advance(t2, frozenset())
    assert len(stack.tables) == 1 and all(stack.pick(h) == t2.pick(h) for h in KEYS[:500])


small = st.lists(st.integers(1, 6), min_size=1, max_size=5, unique=True)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(small, st.lists(st.integers(1, 6), max_size=3)), min_size=1, max_size=4))
def test_without_draining_pods_the_pick_is_the_current_tables(steps):
    stack = DrainStack.start(table(pods(9)))
    for ready, draining in steps:
        draining = frozenset(pods(*draining)) - frozenset(pods(*ready))
        stack = stack.advance(table(pods(*ready)), draining)
        for h in KEYS[:200]:
            got = stack.pick(h)
            assert got == stack.current.pick(h) or got in draining
    stack = stack.with_draining(frozenset())
    assert len(stack.tables) == 1


def test_the_stack_is_bounded():
    stack = DrainStack.start(table(pods(1)), max_tables=3)
    for i in range(2, 8):
        stack = stack.advance(table(pods(i)), frozenset(pods(*range(1, i))))
    assert len(stack.tables) == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(small, st.lists(st.integers(1, 6), max_size=3)), min_size=1, max_size=6))
def test_pick_follows_each_keys_history_exactly(steps):
    """Against a per-key replay of the history: a key stays on its pod while that pod drains and
    is missing from the newer table, else takes the newer table's pick; within max_tables the
    stack (pruning included) gives exactly that, so a draining pod only ever has its own keys."""
    first = table(pods(9))
    stack = DrainStack.start(first)
    homes = {h: first.pick(h) for h in KEYS[:300]}
    for ready, draining in steps:
        draining = frozenset(pods(*draining)) - frozenset(pods(*ready))
        t = table(pods(*ready))
        stack = stack.advance(t, draining)
        for h, home in homes.items():
            if not (home in draining and home not in t.ready):
                homes[h] = t.pick(h)
        assert all(stack.pick(h) == home for h, home in homes.items())
