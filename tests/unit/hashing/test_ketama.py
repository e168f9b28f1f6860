"""The libketama-compatible ring: stable, weighted, and minimally disruptive."""

import random
from bisect import bisect_right

import pytest

from tether.hashing import Host, Ketama

HOSTS = [Host(f"10.0.0.{i}:11211") for i in range(1, 9)]
KEYS = [f"user-{random.Random(i).getrandbits(40)}" for i in range(4000)]


def test_points_are_160_per_equal_host_and_lookups_follow_them():
    ring = Ketama.build(HOSTS)
    hashes, _ = ring.points()
    assert len(hashes) == 160 * len(HOSTS)
    assert list(hashes) == sorted(hashes)
    for key in KEYS[:200]:
        assert ring.choose_key(key) in range(len(HOSTS))
    again = Ketama.build(list(reversed(HOSTS)))
    assert [HOSTS[ring.choose_key(k)] for k in KEYS] == [
        HOSTS[7 - again.choose_key(k)] for k in KEYS
    ]
    assert bisect_right(hashes, 2**32) == len(hashes)  # points are 32-bit


def test_removing_a_host_moves_only_its_keys():
    before = Ketama.build(HOSTS)
    rest = HOSTS[:3] + HOSTS[4:]
    after = Ketama.build(rest)
    for key in KEYS:
        owner = HOSTS[before.choose_key(key)].key
        if owner != HOSTS[3].key:
            assert rest[after.choose_key(key)].key == owner


def test_weights_scale_points():
    ring = Ketama.build([Host("a:1", 1), Host("b:1", 3)])
    _, indices = ring.points()
    assert (list(indices).count(0), list(indices).count(1)) == (80, 240)


def test_duplicate_keys_are_refused():
    with pytest.raises(ValueError, match="unique"):
        Ketama.build([Host("a:1"), Host("a:1")])
