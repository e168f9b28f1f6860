"""Pod addresses: unique, stable per pod, rotating, never the network or .1 address."""

import pytest

from tether.lab.kubelet.ipam import Ipam, PoolExhausted


def test_addresses_are_unique_and_stable():
    pool = Ipam("10.244.0.0/28")
    a, b = pool.allocate("uid-a"), pool.allocate("uid-b")
    assert a != b
    assert pool.allocate("uid-a") == a
    assert a not in ("10.244.0.0", "10.244.0.1", "10.244.0.15")


def test_released_address_is_not_reused_at_once():
    pool = Ipam("10.244.0.0/28")
    first = pool.allocate("a")
    pool.release("a")
    assert pool.allocate("b") != first


def test_preferred_address_is_kept_when_free():
    pool = Ipam("10.244.0.0/24")
    assert pool.allocate("a", prefer="10.244.0.77") == "10.244.0.77"
    assert pool.allocate("b", prefer="10.244.0.77") != "10.244.0.77"
    assert pool.allocate("c", prefer="10.9.9.9") != "10.9.9.9"


def test_exhaustion_is_reported():
    pool = Ipam("10.244.0.0/29")  # hosts .1-.6, .1 kept free: 5 usable
    for i in range(5):
        pool.allocate(f"p{i}")
    with pytest.raises(PoolExhausted):
        pool.allocate("one-too-many")
    pool.release("p3")
    assert pool.allocate("again")
