"""Ring hash: Envoy's ring_hash_lb_test.cc vectors, config validation, lookup edge cases."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.hashing import Host, RingHash, RingHashConfig

from .envoy_vectors import HOSTNAMES_90_95, PORTS_80_85, PORTS_90_95, U64_MAX, spread

BASIC_RING = [  # (port, position) from the test's comment, sorted
    (94, 833437586790550860),
    (92, 928266305478181108),
    (90, 1033482794131418490),
    (95, 3551244743356806947),
    (93, 3851675632748031481),
    (91, 5583722120771150861),
    (91, 6311230543546372928),
    (93, 7700377290971790572),
    (95, 13144177310400110813),
    (92, 13444792449719432967),
    (94, 15516499411664133160),
    (90, 16117243373044804889),
]


def _pairs(ring):
    return list(zip(ring.hashes, ring.indices, strict=True))


def test_basic_ring_matches_envoy():
    ring = RingHash.build(PORTS_90_95, RingHashConfig(min_ring_size=12))
    assert _pairs(ring) == [(h, port - 90) for port, h in BASIC_RING]
    assert ring.size_stat == 12
    assert ring.hashes_per_host() == [2] * 6


@pytest.mark.parametrize(
    ("h", "host"),
    [
        (0, 4),
        (U64_MAX, 4),  # above the last entry: wraps to index 0
        (3551244743356806947, 5),  # exact match
        (3551244743356806948, 3),
        (16117243373044804880, 0),
    ],
)
def test_basic_ring_lookups(h, host):
    ring = RingHash.build(PORTS_90_95, RingHashConfig(min_ring_size=12))
    assert ring.choose(h) == host


def test_retry_attempts_walk_ring_positions_and_wrap():
    # BasicWithRetryHostPredicate: h=0 → :94, attempts 1, 2 → :92, :90; 13 wraps (13 % 12 = 1)
    ring = RingHash.build(PORTS_90_95, RingHashConfig(min_ring_size=12))
    assert [ring.choose(0, a) for a in (0, 1, 2, 13)] == [4, 2, 0, 2]


def test_murmur2_ring_matches_envoy():
    ring = RingHash.build(
        PORTS_80_85, RingHashConfig(min_ring_size=12, hash_function="murmur-hash-2")
    )
    expected = [
        (1358027074129602068, 5),
        (4361834613929391114, 3),
        (7224494972555149682, 4),
        (7701421856454313576, 1),
        (8649315368077433379, 2),
        (8739448859063030639, 4),
        (9887544217113020895, 1),
        (10150910876324007731, 2),
        (15168472011420622455, 3),
        (15427156902705414897, 0),
        (16375050414328759093, 5),
        (17613279263364193813, 0),
    ]
    assert _pairs(ring) == expected
    lookups = [0, U64_MAX, 1358027074129602068, 1358027074129602069, 10150910876324007730]
    assert [ring.choose(h) for h in lookups] == [5, 5, 5, 3, 2]


def test_hostname_keys_ring_matches_envoy():
    ring = RingHash.build(HOSTNAMES_90_95, RingHashConfig(min_ring_size=12))
    expected = [
        (1975508444536362413, 5),
        (2376063919839173711, 5),
        (2386806903309390596, 3),
        (6749904478991551885, 4),
        (6803900775736438537, 3),
        (7225015537174310577, 2),
        (8787465352164086522, 0),
        (11282020843382717940, 2),
        (13723418369486627818, 1),
        (13776502110861797421, 0),
        (14338313586354474791, 1),
        (15364271037087512980, 4),
    ]
    assert _pairs(ring) == expected


def test_uneven_hosts_round_up_to_whole_entries():
    # UnevenHosts: 2 hosts, min 3 → 2 entries each, ring size 4
    ring = RingHash.build([Host("127.0.0.1:80"), Host("127.0.0.1:81")], RingHashConfig(3))
    assert list(ring.hashes) == [
        5454692015285649509,
        7859399908942313493,
        13838424394637650569,
        16064866803292627174,
    ]
    assert list(ring.indices) == [0, 1, 0, 1]
    ring2 = RingHash.build([Host("127.0.0.1:81"), Host("127.0.0.1:82")], RingHashConfig(3))
    assert list(ring2.hashes) == [
        7859399908942313493,
        8241336090459785962,
        12882406409176325258,
        16064866803292627174,
    ]
    assert ring2.choose(0) == 0


def test_weighted_tiny_ring():
    # HostWeightedTinyRing: weights 1, 2, 3 and exactly 6 entries
    hosts = [Host("127.0.0.1:90", 1), Host("127.0.0.1:91", 2), Host("127.0.0.1:92", 3)]
    ring = RingHash.build(hosts, RingHashConfig(min_ring_size=6, max_ring_size=6))
    assert ring.hashes_per_host() == [1, 2, 3]
    expected = {
        928266305478181108: 2,
        4443673547860492590: 2,
        5583722120771150861: 1,
        6311230543546372928: 1,
        13444792449719432967: 2,
        16117243373044804889: 0,
    }
    assert {h: ring.choose(h) for h in expected} == expected


def test_weighted_large_ring_distribution():
    # HostWeightedLargeRing: min 6144 → 1024/2048/3072 entries; 6000 spread hashes → 987/1932/3081
    hosts = [Host("127.0.0.1:90", 1), Host("127.0.0.1:91", 2), Host("127.0.0.1:92", 3)]
    ring = RingHash.build(hosts, RingHashConfig(min_ring_size=6144))
    assert ring.size_stat == 6144
    assert ring.hashes_per_host() == [1024, 2048, 3072]
    counts = [0, 0, 0]
    for i in range(6000):
        counts[ring.choose(spread(i, 6000))] += 1
    assert counts == [987, 1932, 3081]


def test_fractional_scales():
    # LargeFractionalScale: 2 hosts, exactly 1023 entries → 511/512 and 526/497 spread hits
    ring = RingHash.build([Host("127.0.0.1:90"), Host("127.0.0.1:91")], RingHashConfig(1023, 1023))
    assert sorted(ring.hashes_per_host()) == [511, 512]
    counts = [0, 0]
    for i in range(1023):
        counts[ring.choose(spread(i, 1023))] += 1
    assert counts == [526, 497]
    # SmallFractionalScale: 4 hosts, 2 entries → two hosts get none
    small = RingHash.build([Host(f"127.0.0.1:{p}") for p in range(90, 94)], RingHashConfig(2, 2))
    assert sorted(small.hashes_per_host()) == [0, 0, 1, 1]


def test_config_validation_messages():
    with pytest.raises(
        ValueError, match=r"ring hash: minimum_ring_size \(20\) > maximum_ring_size \(10\)"
    ):
        RingHashConfig(min_ring_size=20, max_ring_size=10)
    with pytest.raises(ValueError, match="8388608"):
        RingHashConfig(min_ring_size=8388609)
    with pytest.raises(ValueError, match="hash_function"):
        RingHashConfig(hash_function="md5")
    assert RingHashConfig() == RingHashConfig(1024, 8388608, "xx-hash")


def test_empty_ring_chooses_nothing_and_bad_hosts_are_refused():
    assert RingHash.build([]).choose(123) is None
    with pytest.raises(ValueError, match="weight"):
        RingHash.build([Host("a", 0)])
    with pytest.raises(ValueError, match="key"):
        RingHash.build([Host("")])


def test_from_arrays_round_trips_and_rejects_inconsistent_rings():
    ring = RingHash.build(PORTS_90_95, RingHashConfig(min_ring_size=12))
    again = RingHash.from_arrays(list(ring.hashes), list(ring.indices), 6)
    assert [again.choose(h) for h, _ in BASIC_RING] == [ring.choose(h) for h, _ in BASIC_RING]
    with pytest.raises(ValueError, match="sorted"):
        RingHash.from_arrays([2, 1], [0, 0], 1)
    with pytest.raises(ValueError, match="index"):
        RingHash.from_arrays([1, 2], [0, 1], 1)
    with pytest.raises(ValueError, match="length"):
        RingHash.from_arrays([1, 2], [0], 1)


def _ketama_search(ring: list[int], h: int) -> int:
    """Envoy's signed-integer ketama search (ring_hash_lb.cc chooseHost), written out as is."""
    lowp, highp = 0, len(ring)
    while True:
        midp = (lowp + highp) // 2  # operands are never negative here, so // equals C's /
        if midp == len(ring):
            return 0
        midval = ring[midp]
        midval1 = 0 if midp == 0 else ring[midp - 1]
        if midval1 < h <= midval:
            return midp
        if midval < h:
            lowp = midp + 1
        else:
            highp = midp - 1
        if lowp > highp:
            return 0


@settings(max_examples=300)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40).map(sorted),
    st.lists(st.integers(0, 2**64 - 1), max_size=10),
)
def test_lookup_equals_envoys_binary_search(ring_hashes, probes):
    ring = RingHash.from_arrays(ring_hashes, list(range(len(ring_hashes))), len(ring_hashes))
    edge = [0, 2**64 - 1, *ring_hashes, *(x + 1 for x in ring_hashes if x < 2**64 - 1)]
    for h in probes + edge:
        assert ring.choose(h) == _ketama_search(ring_hashes, h)


@settings(max_examples=300)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=60).map(sorted),
    st.sampled_from([7, 70_000]),  # uint16 and uint32 host-index arrays
    st.lists(st.integers(0, 2**64 - 1), max_size=10),
    st.integers(0, 200),
    st.randoms(use_true_random=False),
)
def test_native_search_equals_the_reference(ring_hashes, n_hosts, probes, attempt, rnd):
    indices = [rnd.randrange(n_hosts) for _ in ring_hashes]
    ring = RingHash.from_arrays(ring_hashes, indices, n_hosts)
    edge = [0, 2**64 - 1, *ring_hashes, *(x + 1 for x in ring_hashes if x < 2**64 - 1)]
    for h in probes + edge:
        for a in (0, 1, attempt):
            assert ring.choose(h, a) == ring.choose_reference(h, a)


def test_native_search_is_in_use_and_refuses_hashes_outside_64_bits():
    from tether.hashing.ring import ring as ring_module

    assert ring_module.NATIVE, "the native ring search was not built (setup.py)"
    ring = RingHash.build(PORTS_90_95, RingHashConfig(min_ring_size=12))
    for bad in (-1, 2**64):
        with pytest.raises(OverflowError):
            ring.choose(bad)
    with pytest.raises(ValueError, match="attempt"):
        ring.choose(5, -1)
