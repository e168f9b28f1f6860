"""The moved fraction across an algorithm switch is measured in each side's own hash space."""

from __future__ import annotations

import pytest

from tether.hashing import xxh64
from tether.hashing.hosts import Host
from tether.hashing.ketama import Ketama
from tether.reconcile.moved import moved_fraction
from tether.reconcile.tables import Lookup

from .table_docs import doc, endpoint, ips, policy

KEYS = [f"user-{i}" for i in range(8000)]  # not the module's own sample


def _weighted(pol, weights=(1, 1, 8)):
    return doc([endpoint(ip, weight=w) for ip, w in zip(ips(3), weights, strict=True)], pol)


def _owners(d) -> list[str]:
    """What the gateway would pick per key: ketama by md5 of the string, others by XXH64."""
    if d.policy.algorithm == "ketama":
        k = Ketama.build([Host(e.hash_key, e.weight) for e in d.endpoints])
        return [d.endpoints[k.choose_key(key)].hash_key for key in KEYS]
    lookup = Lookup(d)
    return [lookup.choose(xxh64(key)) for key in KEYS]


@pytest.mark.parametrize(
    ("old_alg", "new_alg"),
    [("ketama", "maglev"), ("maglev", "ketama"), ("ketama", "ring-hash"), ("ring-hash", "maglev")],
)
def test_switch_moves_what_the_gateways_pick_differently(old_alg, new_alg):
    """Skewed weights make the answer depend on per-key lookups: a ketama side looked up with
    64-bit XXH64 hashes lands every key past its 32-bit points, on one pod, and reads 20 % or
    90 % instead of the ~34 % that really change pod."""
    old, new = _weighted(policy(old_alg)), _weighted(policy(new_alg))
    truth = sum(a != b for a, b in zip(_owners(old), _owners(new), strict=True)) / len(KEYS)
    assert 0.25 < truth < 0.45  # independent hash spaces: 1 - (0.1² + 0.1² + 0.8²) ≈ 0.34
    assert moved_fraction(old, new) == pytest.approx(truth, abs=0.02)


def test_ketama_to_ketama_scale_is_exact_arc_measure():
    """Same format: compared arc by arc over the 32-bit continuum, and agrees with lookups."""
    old = doc([endpoint(ip) for ip in ips(3)], policy("ketama"))
    new = doc([endpoint(ip) for ip in ips(4)], policy("ketama"))
    truth = sum(a != b for a, b in zip(_owners(old), _owners(new), strict=True)) / len(KEYS)
    assert moved_fraction(old, new) == pytest.approx(truth, abs=0.02)
    assert moved_fraction(old, old) == 0.0
