"""Properties users rely on: order independence, minimal disruption, weights, total coverage."""

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tether.hashing import (
    Host,
    Maglev,
    MaglevConfig,
    RingHash,
    RingHashConfig,
    canonical_order,
    normalized_weights,
)

U64 = st.integers(0, 2**64 - 1)
ADDRESSES = st.builds(
    "{}.{}.{}.{}:{}".format,
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(1, 65535),
)


UNIT_WEIGHT = st.just(1)


def host_sets(min_size=1, max_size=30, weights=UNIT_WEIGHT):
    return st.lists(ADDRESSES, min_size=min_size, max_size=max_size, unique=True).flatmap(
        lambda keys: st.lists(weights, min_size=len(keys), max_size=len(keys)).map(
            lambda ws: [Host(k, w) for k, w in zip(keys, ws, strict=True)]
        )
    )


def owners(chooser, hosts, probes):
    return [hosts[chooser.choose(h)].key for h in probes]


@settings(max_examples=40, deadline=None)
@given(host_sets(weights=st.integers(1, 5)), st.randoms(use_true_random=False), st.lists(U64))
def test_maglev_mapping_ignores_endpoint_order(hosts, rnd, probes):
    shuffled = list(hosts)
    rnd.shuffle(shuffled)
    config = MaglevConfig(1009)
    a, b = Maglev.build(hosts, config), Maglev.build(shuffled, config)
    assert [hosts[i].key for i in a.table] == [shuffled[i].key for i in b.table]
    assert owners(a, hosts, probes) == owners(b, shuffled, probes)


@settings(max_examples=40, deadline=None)
@given(host_sets(weights=st.integers(1, 5)), st.randoms(use_true_random=False), st.lists(U64))
def test_ring_mapping_ignores_endpoint_order_in_canonical_order(hosts, rnd, probes):
    shuffled = list(hosts)
    rnd.shuffle(shuffled)
    config = RingHashConfig(min_ring_size=256)
    a = RingHash.build(canonical_order(hosts), config)
    b = RingHash.build(canonical_order(shuffled), config)
    assert list(a.hashes) == list(b.hashes) and list(a.indices) == list(b.indices)
    assert owners(a, canonical_order(hosts), probes) == owners(b, canonical_order(shuffled), probes)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_ring_removal_moves_only_the_removed_hosts_keys(data):
    hosts = canonical_order(data.draw(host_sets(min_size=3, max_size=30)))
    n = len(hosts)
    # Envoy gives each host ceil(min_ring_size / N) entries; with min = c·(N-1), c < N, the
    # survivors keep their entry count, which is the condition for minimal disruption.
    per_host = data.draw(st.integers(1, n - 1))
    config = RingHashConfig(min_ring_size=per_host * (n - 1))
    gone = data.draw(st.integers(0, n - 1))
    rest = hosts[:gone] + hosts[gone + 1 :]
    before, after = RingHash.build(hosts, config), RingHash.build(rest, config)
    counts_before = before.hashes_per_host()
    assume(counts_before[:gone] + counts_before[gone + 1 :] == after.hashes_per_host())
    # Ownership is constant between consecutive ring points, so probing h = 0 and every point
    # of both rings checks every key in the 64-bit space.
    for h in {0, *before.hashes, *after.hashes}:
        owner = hosts[before.choose(h)].key
        if owner != hosts[gone].key:
            assert rest[after.choose(h)].key == owner


@settings(max_examples=25, deadline=None)
@given(host_sets(min_size=2, max_size=60), st.data())
def test_maglev_removal_moves_close_to_one_nth(hosts, data):
    n = len(hosts)
    gone = data.draw(st.integers(0, n - 1))
    rest = hosts[:gone] + hosts[gone + 1 :]
    before, after = Maglev.build(hosts), Maglev.build(rest)
    moved = 0
    for x, y in zip(before.table, after.table, strict=True):
        if x == gone:
            assert rest[y].key != hosts[gone].key  # every key of the removed host moves
        if hosts[x].key != rest[y].key:
            moved += 1
    share = moved / before.size
    assert 1 / n - 0.01 <= share <= 2 / n  # at least its own share, at most twice the optimum


@settings(max_examples=40, deadline=None)
@given(host_sets(max_size=30, weights=st.integers(1, 10)), st.sampled_from([4099, 65537]))
def test_maglev_respects_weights(hosts, table_size):
    counts = Maglev.build(hosts, MaglevConfig(table_size)).entries_per_host()
    total = sum(h.weight for h in hosts)
    assert sum(counts) == table_size
    for host, count in zip(hosts, counts, strict=True):
        # Every host claims its first slot in round 1, so counts sit within a few slots of the
        # exact weight share.
        assert abs(count - table_size * host.weight / total) <= 3


@settings(max_examples=40, deadline=None)
@given(host_sets(max_size=30, weights=st.integers(1, 10)), st.sampled_from([64, 1024, 4096]))
def test_ring_respects_weights(hosts, min_ring_size):
    ring = RingHash.build(hosts, RingHashConfig(min_ring_size=min_ring_size))
    weights = normalized_weights(hosts)
    min_w = min(weights)
    scale = math.ceil(min_w * min_ring_size) / min_w
    for count, w in zip(ring.hashes_per_host(), weights, strict=True):
        assert abs(count - scale * w) <= 1 + 1e-9  # running sums spread the fractions


@settings(max_examples=40, deadline=None)
@given(host_sets(max_size=20, weights=st.integers(1, 4)), st.lists(U64, min_size=1))
def test_every_hash_maps_to_an_endpoint(hosts, probes):
    probes += [0, 2**64 - 1]
    tables = [Maglev.build(hosts, MaglevConfig(251)), RingHash.build(hosts, RingHashConfig(64))]
    for table in tables:
        for h in probes:
            for attempt in (0, 1, 5):
                assert 0 <= table.choose(h, attempt) < len(hosts)
