"""plan's predictions: scale-downs are exact, scale-ups are a spread over unknown addresses."""

from __future__ import annotations

import pytest

from tether.models import table as t
from tether.reconcile.scaledown import Removal
from tether.reconcile.transition import transition
from tether.reconcile.whatif import predict, switch

from .table_docs import doc, docs_for, endpoint, ips, policy


def test_scale_up_maglev_is_near_optimal_with_a_narrow_spread():
    pred = predict(docs_for(3), 5, samples=16)
    assert len(pred.scenarios) == 16
    assert pred.optimum == pytest.approx(0.4)
    assert pred.mean == pytest.approx(0.4, abs=0.01) and pred.sd < 0.005
    for s in pred.scenarios:
        assert len(s.transition.after) == 5 and len(s.added) == 2
        assert not {k.split(":")[0] for k in s.added} & set(ips(3))
        assert all(k.startswith("10.244.") for k in s.added)


def test_scale_up_ring_moves_more_and_varies_with_the_addresses():
    pred = predict(docs_for(3, policy("ring-hash")), 5, samples=16)
    assert 0.42 < pred.mean < 0.65 and pred.sd > 0.005
    shares = pred.shares()
    assert set(shares) == {"pod-2", "pod-3", "pod-4", "new-1", "new-2"}
    assert sum(shares.values()) == pytest.approx(1.0)


def test_predictions_are_reproducible():
    a = predict(docs_for(3, policy("ring-hash")), 4, samples=8)
    b = predict(docs_for(3, policy("ring-hash")), 4, samples=8)
    assert a.moved == b.moved


def test_scale_down_of_known_pods_is_exact():
    current = docs_for(5)
    gone = ("pod-4", "pod-5", "pod-6")
    pred = predict(current, 2, rm=Removal(gone, (), 0))
    (s,) = pred.scenarios
    after = doc([endpoint(ip) for ip in ips(2)])
    assert s.removed == gone
    assert s.transition.moved == pytest.approx(transition(current, after).moved, abs=1e-12)
    assert pred.sd == 0.0 and pred.optimum == pytest.approx(0.6)


def test_a_tied_scale_down_enumerates_every_choice():
    pred = predict(docs_for(4), 2, rm=Removal(("pod-5",), ("pod-2", "pod-3", "pod-4"), 1))
    assert sorted(s.removed for s in pred.scenarios) == [
        ("pod-5", "pod-2"),
        ("pod-5", "pod-3"),
        ("pod-5", "pod-4"),
    ]
    with pytest.raises(ValueError, match="scale-down"):
        predict(docs_for(4), 2)


def test_pods_that_exist_but_are_not_ready_keep_their_address():
    waiting = t.Endpoint(
        address="10.244.0.9", port=8080, pod="slow", ready=False, hashKey="10.244.0.9:8080"
    )
    current = doc([*(endpoint(ip) for ip in ips(3)), waiting])
    pred = predict(current, 4)
    (s,) = pred.scenarios
    assert s.added == () and "10.244.0.9:8080" in s.transition.after


def test_another_algorithm_is_compared_on_its_own_tables():
    ring = docs_for(3, policy("ring-hash"))
    as_maglev = predict(ring, 5, policy("maglev"), samples=8)
    assert as_maglev.mean == pytest.approx(0.4, abs=0.01)  # not the switch's own cost
    cost = switch(ring, policy("maglev"))
    assert cost.optimum == 0.0 and 0.5 < cost.moved < 0.8  # ≈ 1 − Σ share² = 2/3


def test_auto_table_size_resolves_for_the_new_count():
    auto = t.Policy(type="consistentHash", algorithm="maglev", tableSize=None)
    pred = predict(docs_for(3), 5, auto, samples=2)
    assert pred.scenarios[0].doc.policy.table_size == 65537


def test_simple_policies_have_no_key_space():
    rr = doc([endpoint(ip) for ip in ips(3)], t.Policy(type="simple", simple="ROUND_ROBIN"))
    with pytest.raises(ValueError, match="ROUND_ROBIN"):
        predict(rr, 5)
    assert predict(rr, 5, policy("maglev"), samples=2).mean == pytest.approx(0.4, abs=0.01)
