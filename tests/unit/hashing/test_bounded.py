"""Bounded load: Envoy's bounded_load_hlb_test.cc probe orders and choices, std::mt19937."""

import pytest

from tether.hashing import BoundedLoad, Maglev, MaglevConfig, probe_order, validate_balance_factor
from tether.hashing.bounded import mt19937

from .envoy_vectors import PORTS_90_95


class ListChooser:
    """Envoy's TestHashingLoadBalancer: the hash is an index into a fixed host list."""

    def __init__(self, ring):
        self.ring = ring

    def choose(self, h, attempt=0):
        return self.ring[h] if self.ring else None


def test_mt19937_matches_the_cpp_standard():
    rng = mt19937(5489)  # the default seed; [rand.predef] fixes the 10000th output
    outputs = [rng.getrandbits(32) for _ in range(10000)]
    assert outputs[0] == 3499211612
    assert outputs[-1] == 4123659995
    assert mt19937(2**32 + 7).getrandbits(32) == mt19937(7).getrandbits(32)  # seed mod 2^32


@pytest.mark.parametrize(
    ("seed", "order"), [(2, [2, 1, 0, 4, 3]), (6, [4, 0, 2, 3, 1]), (7, [0, 1, 4, 3, 2])]
)
def test_probe_order_matches_envoy_comments(seed, order):
    assert list(probe_order(seed, 5)) == order


def five_equal(active, ring=None):
    weights = [0.2] * 5
    return BoundedLoad(ListChooser(ring or list(range(5))), weights, factor=1), active


def test_no_host_overloaded_keeps_the_inner_choice():
    lb, active = five_equal([0, 0, 0, 0, 0])
    assert [lb.choose(i, 0, active, 0) for i in range(5)] == [0, 1, 2, 3, 4]


def test_overloaded_host_yields_to_next_in_probe_order():
    # ActualHostOverloaded / OneHostOverloaded: factor 1 → one slot each; host 2 has 2 active
    lb, active = five_equal([0, 0, 2, 0, 0])
    assert lb.choose(2, 0, active, 0) == 1


def test_several_overloaded_hosts_are_passed_over():
    # MultipleHostOverloaded: hosts 0, 1, 2 overloaded, order 2 1 0 4 3 → host 4
    lb, active = five_equal([2, 3, 4, 0, 0])
    assert lb.choose(2, 0, active, 0) == 4


def test_same_overloaded_host_from_different_hashes():
    # MultipleHashSameHostOverloaded: ring 0 0 1 1 2 2 3 3 4 4; hashes 6, 7 → host 3 (overloaded)
    lb, active = five_equal([0, 0, 0, 2, 0], ring=[0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    assert (lb.choose(6, 0, active, 0), lb.choose(7, 0, active, 0)) == (4, 0)


def test_all_overloaded_returns_least_overloaded():
    # AllHostsOverloaded: factors 1.03 / 1.02 / 1.04 for hosts 0/1/2 → host 1
    # factor 100, 299 in flight → 300 total slots, 100 per host: overload = active / 100
    lb = BoundedLoad(ListChooser([0, 1, 2]), [1 / 3] * 3, factor=100)
    assert lb.overload_factor(0, [103, 102, 104], 299) == pytest.approx(1.03)
    assert lb.choose(0, 0, [103, 102, 104], 299) == 1


def test_slots_follow_envoys_formula():
    lb = BoundedLoad(ListChooser([0, 1]), [0.25, 0.75], factor=150)
    # total_slots = ceil((9 + 1) * 150 / 100) = 15; slots = ceil(15 * 0.25) = 4 → 4 / 4
    assert lb.overload_factor(0, [4, 0], 9) == 1.0
    assert lb.overload_factor(0, [5, 0], 9) == 1.25


def test_empty_and_wrapping_a_real_table():
    assert BoundedLoad(ListChooser([]), [], factor=150).choose(1, 0, [], 0) is None
    maglev = Maglev.build(PORTS_90_95, MaglevConfig(7))
    lb = BoundedLoad(maglev, [1 / 6] * 6, factor=150)
    assert lb.choose(10, 0, [0] * 6, 0) == maglev.choose(10)
    busy = [0] * 6
    busy[maglev.choose(10)] = 50
    assert lb.choose(10, 0, busy, 50) != maglev.choose(10)


def test_balance_factor_validation():
    assert validate_balance_factor(0) == 0
    assert validate_balance_factor(150) == 150
    with pytest.raises(ValueError, match=">= 100"):
        validate_balance_factor(99)
