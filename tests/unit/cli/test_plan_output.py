"""`kubectl tether plan`: the policy it compares with, its JSON and its text."""

from __future__ import annotations

import json

import pytest

from tether.cli.plan import alternative
from tether.cli.plan_report import Report, print_text, to_json
from tether.cli.watch_state import view_of
from tether.reconcile.scaledown import Removal
from tether.reconcile.whatif import predict, switch

from ..reconcile.table_docs import docs_for, policy
from .kube_fakes import configmap


def test_the_compared_policy_keeps_the_hash_key():
    ring = policy("ring-hash", 2048)
    m = alternative(ring, None, None)
    assert (m.algorithm, m.table_size, m.hash_key) == ("maglev", 65537, ring.hash_key)
    assert alternative(policy("maglev", 257), None, None).min_ring_size == 1024
    assert alternative(ring, "ring-hash", None) == ring  # the same: nothing to compare
    assert alternative(ring, None, "auto").table_size is None
    assert alternative(ring, "maglev", "131101").table_size == 131101
    with pytest.raises(ValueError, match="The table size of maglev must be prime number"):
        alternative(ring, "maglev", "65536")
    with pytest.raises(ValueError, match="applies to maglev"):
        alternative(ring, "ring-hash", "7")


def _report(current, replicas, rm=None):
    other = alternative(current.policy, None, None)
    preds = [predict(current, replicas, p, rm, samples=8) for p in (current.policy, other)]
    view = view_of(configmap(current))
    return Report(view, replicas, len(current.endpoints), rm, preds, switch(current, other))


def test_json_compares_both_algorithms():
    r = _report(docs_for(3, policy("ring-hash")), 5)
    d = json.loads(to_json(r))
    assert d["replicas"] == 5 and d["newPods"] == 2 and d["removal"] is None
    assert d["addressNetwork"] == "10.244.0.0/16" and d["sessions"] is None
    current, other = d["predictions"]
    assert current["isCurrent"] and current["label"] == "ring-hash (min ring 1024)"
    assert other["label"] == "maglev (table 65537)" and other["tableSize"] == [65537]
    assert other["moved"]["mean"] == pytest.approx(0.4, abs=0.01)
    assert current["moved"]["min"] <= current["moved"]["mean"] <= current["moved"]["max"]
    assert len(current["scenarioList"]) == current["moved"]["scenarios"] == 8
    assert sum(current["shares"].values()) == pytest.approx(1.0)
    assert 0.5 < d["switchCost"] < 0.8


def test_text_says_what_the_other_algorithm_would_move(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps cells to the terminal width
    r = _report(docs_for(5), 2, Removal(("pod-2",), ("pod-3", "pod-4"), 2))
    print_text(r)
    out = " ".join(capsys.readouterr().out.split())
    assert "maglev (table 65537) (current)" in out
    assert "ring-hash (min ring 1024) would move" in out and "instead of" in out
    assert "the ReplicaSet deletes pod-2 and 2 of pod-3, pod-4 (a tie" in out
    assert "expected shares after" in out
