"""Maglev: Envoy's maglev_lb_test.cc tables, retries, config rules, native == reference."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.hashing import NATIVE, Host, Maglev, MaglevConfig, auto_table_size, is_prime
from tether.hashing.maglev import LADDER, MAX_TABLE_SIZE

from .envoy_vectors import HOSTNAMES_90_95, PORTS_90_95

BOTH_BUILDS = pytest.mark.parametrize("build", [Maglev.build, Maglev.build_reference])


def test_native_kernel_is_compiled():
    # `pip install -e .` builds it; without it builds fall back to the ~100x slower reference
    assert NATIVE


@BOTH_BUILDS
def test_basic_table(build):
    maglev = build(PORTS_90_95, MaglevConfig(7))
    assert list(maglev.table) == [2, 4, 0, 1, 5, 0, 3]
    assert (min(maglev.entries_per_host()), max(maglev.entries_per_host())) == (1, 2)
    assert [maglev.choose(h) for h in range(21)] == [2, 4, 0, 1, 5, 0, 3] * 3


@BOTH_BUILDS
def test_hostname_keys_table(build):
    assert list(build(HOSTNAMES_90_95, MaglevConfig(7)).table) == [2, 5, 0, 3, 4, 1, 0]


def test_retry_attempts_xor_the_hash():
    # BasicWithRetryHostPredicate, h = 10: slot 3 → :91, then (10 ^ ~0) % 7 = 5 → :90, then :95
    maglev = Maglev.build(PORTS_90_95, MaglevConfig(7))
    assert [maglev.choose(10, attempt) for attempt in (0, 1, 2)] == [1, 0, 5]


def test_table_does_not_depend_on_host_order():
    # BasicStability: Envoy ≥ 1.27 sorts hosts by key; indices still follow the order given
    shuffled = [PORTS_90_95[i] for i in (3, 0, 5, 1, 4, 2)]
    maglev = Maglev.build(shuffled, MaglevConfig(7))
    assert [shuffled[i].key for i in maglev.table] == [
        PORTS_90_95[i].key for i in (2, 4, 0, 1, 5, 0, 3)
    ]


@BOTH_BUILDS
@pytest.mark.parametrize(
    ("weights", "expected", "min_max"),
    [
        # Weighted: weights 1 and 2
        ((1, 2), [1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1], (6, 11)),
        # LocalityWeightedSameLocalityWeights: both hosts end with normalized weight 0.5
        ((1, 1), [1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1], (8, 9)),
        # LocalityWeightedDifferentLocalityWeights: normalized weights 0.8 and 0.2
        ((4, 1), [1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0], (4, 13)),
    ],
)
def test_weighted_tables(build, weights, expected, min_max):
    hosts = [Host("127.0.0.1:90", weights[0]), Host("127.0.0.1:91", weights[1])]
    maglev = build(hosts, MaglevConfig(17))
    assert list(maglev.table) == expected
    assert (min(maglev.entries_per_host()), max(maglev.entries_per_host())) == min_max


def test_single_host_and_empty():
    single = Maglev.build([Host("127.0.0.1:90", 7)], MaglevConfig(17))
    assert {single.choose(h) for h in range(17)} == {0}
    assert Maglev.build([], MaglevConfig(7)).choose(0) is None


def test_config_rules():
    with pytest.raises(ValueError, match="The table size of maglev must be prime number"):
        MaglevConfig(8)
    with pytest.raises(ValueError, match="5000011"):
        MaglevConfig(5000077)  # prime, but above Envoy's maximum
    assert MaglevConfig().table_size == 65537
    assert MaglevConfig(MAX_TABLE_SIZE).table_size == 5000011


def test_auto_table_size():
    assert auto_table_size(3) == 307  # smallest prime >= 300
    assert auto_table_size(100) == 10007
    assert auto_table_size(1000) == 100003
    assert auto_table_size(10**6) == MAX_TABLE_SIZE
    assert auto_table_size(1000, ladder=True) == LADDER[1]
    assert all(is_prime(p) for p in LADDER)
    assert all(LADDER[i] >= 65537 << i for i in range(7))


def test_from_table_validates_indices():
    maglev = Maglev.from_table([2, 4, 0, 1, 5, 0, 3], 6)
    assert maglev.choose(10) == 1
    with pytest.raises(ValueError, match="index"):
        Maglev.from_table([0, 6], 6)


PRIMES = [7, 17, 101, 251, 1009, 4099, 10007]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=12), st.integers(1, 9)), min_size=1, max_size=40
    ),
    st.sampled_from(PRIMES),
)
def test_native_build_equals_reference(spec, table_size):
    hosts = [Host(key, weight) for key, weight in spec]
    fast = Maglev.build(hosts, MaglevConfig(table_size))
    ref = Maglev.build_reference(hosts, MaglevConfig(table_size))
    assert fast.table == ref.table
    assert fast.entries_per_host() == ref.entries_per_host()


@pytest.mark.parametrize(
    "hosts",
    [
        [Host(f"10.0.{i // 256}.{i % 256}:8080") for i in range(300)],
        [Host(f"10.1.0.{i}:80", 1 + i % 7) for i in range(50)],
        [Host("heavy:1", 100), Host("light:1", 1), Host("light:2", 1)],
    ],
    ids=["300-equal", "50-weighted", "skewed"],
)
def test_native_build_equals_reference_at_default_size(hosts):
    assert Maglev.build(hosts).table == Maglev.build_reference(hosts).table


def test_native_kernel_rejects_a_table_size_whose_byte_size_overflows():
    import struct

    from tether.hashing.maglev import _kernel

    one = struct.pack("<Q", 1)
    for m, width in [(2**62, 4), (2**62 + 3, 4), (2**63, 2), (2**63 + 1, 2)]:
        # m * width wraps to a small number: it must not pass as the size of an empty buffer
        out = bytearray((m * width) % 2**64)
        with pytest.raises(ValueError, match="inconsistent"):
            _kernel.fill(m, one, one, struct.pack("<d", 1.0), 1.0, b"\0" * 4, out, width,
                         bytearray(8))  # fmt: skip


def test_native_kernel_refuses_inputs_that_would_never_finish_filling():
    import struct

    from tether.hashing.maglev import _kernel

    def fill(m: int, weight: float, max_weight: float) -> None:
        one = struct.pack("<Q", 1)
        _kernel.fill(m, one, one, struct.pack("<d", weight), max_weight, b"\0" * 4,
                     bytearray(2 * m), 2, bytearray(8))  # fmt: skip

    fill(7, 1.0, 1.0)  # the smallest sane call works
    with pytest.raises(ValueError, match="prime"):
        fill(9, 1.0, 1.0)  # skip 3 would cycle over 3 of 9 slots forever
    for weight, max_weight in [(0.0, 1.0), (-1.0, 1.0), (float("nan"), 1.0), (2.0, 1.0)]:
        with pytest.raises(ValueError, match="weights"):
            fill(7, weight, max_weight)
