"""Which pods a ReplicaSet scale-down deletes: Kubernetes v1.34's ranking, ties made explicit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tether.reconcile.scaledown import DELETION_COST, PodFacts, pod_facts, removal

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _pod(name, ready_ago=100.0, created_ago=None, **kw) -> PodFacts:
    created_ago = ready_ago + 2 if created_ago is None else created_ago
    return PodFacts(
        name=name,
        uid=kw.pop("uid", f"uid-{name}"),
        node=kw.pop("node", "node-1"),
        ready_since=NOW - timedelta(seconds=ready_ago),
        created=NOW - timedelta(seconds=created_ago),
        **kw,
    )


def test_pods_ready_more_recently_go_first():
    # 100 s (2^36.5 ns) vs 10 s (2^33.2 ns): different log2 buckets
    pods = [_pod("old-a", 100), _pod("old-b", 100), _pod("new-c", 10), _pod("new-d", 10)]
    rm = removal(pods, 2, NOW)
    # new-c and new-d tie with each other, but both go: no choice is left
    assert set(rm.certain) == {"new-c", "new-d"} and rm.choose == 0
    rm = removal(pods, 1, NOW)
    assert rm.certain == () and set(rm.tied) == {"new-c", "new-d"} and rm.choose == 1


def test_same_bucket_is_ordered_by_uid_not_a_tie():
    # 100 s and 120 s are both in bucket 36 (2^36 ns ≈ 68.7 s .. 137 s): lower UID goes first
    pods = [_pod("a", 100, uid="b-uid"), _pod("b", 120, uid="a-uid"), _pod("c", 10)]
    rm = removal(pods, 2, NOW, horizon=0)
    assert rm.certain == ("c", "b") and rm.choose == 0


def test_equal_timestamps_are_a_tie():
    pods = [_pod("a", 50), _pod("b", 50), _pod("c", 50)]
    rm = removal(pods, 1, NOW)
    assert rm.certain == () and set(rm.tied) == {"a", "b", "c"} and rm.choose == 1


def test_a_bucket_boundary_within_the_horizon_is_a_tie():
    # 68 s is just below 2^36 ns (68.72 s); within 5 s it joins the other pod's bucket
    pods = [_pod("young", 68.0, uid="z"), _pod("older", 100.0, uid="a")]
    assert removal(pods, 1, NOW, horizon=0).certain == ("young",)
    rm = removal(pods, 1, NOW, horizon=5)
    assert rm.certain == () and set(rm.tied) == {"young", "older"}


def test_rules_before_times():
    pods = [
        _pod("ready", 10),
        _pod("notready", 500, ready=False),
        _pod("costly", 10, deletion_cost=100),
        _pod("unassigned", 500, node=""),
    ]
    rm = removal(pods, 3, NOW, horizon=0)
    assert rm.certain == ("unassigned", "notready", "ready")


def test_doubled_up_nodes_lose_pods_first():
    pods = [_pod("a", 10, node="n1"), _pod("b", 500, node="n2"), _pod("c", 500, node="n2")]
    rm = removal(pods, 1, NOW, horizon=0)
    assert rm.certain in (("b",), ("c",)) or set(rm.tied) == {"b", "c"}
    assert "a" not in rm.certain


def test_removing_everything_or_nothing():
    pods = [_pod("a"), _pod("b")]
    assert removal(pods, 0, NOW).certain == ()
    assert set(removal(pods, 2, NOW).certain) == {"a", "b"}


def test_pod_facts_from_an_api_object():
    obj = {
        "metadata": {
            "name": "httpbin-1",
            "uid": "u1",
            "creationTimestamp": "2026-01-01T11:59:00Z",
            "annotations": {DELETION_COST: "7"},
        },
        "spec": {"nodeName": "lab-node-1"},
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T11:59:30Z"}
            ],
            "containerStatuses": [{"restartCount": 2}, {"restartCount": 5}],
        },
    }
    f = pod_facts(obj)
    assert (f.name, f.uid, f.node, f.phase, f.ready, f.restarts, f.deletion_cost) == (
        "httpbin-1",
        "u1",
        "lab-node-1",
        "Running",
        True,
        5,
        7,
    )
    assert f.ready_since == NOW - timedelta(seconds=30)


def test_a_pod_between_two_tied_pods_may_go_either_way():
    """a and c tie (the same second for ready and creation); b, ready a second later in the
    same log2 bucket, sorts between them by UID. The relation is not transitive, so Go's sort
    may delete b first (from the input order [c, b, a] its insertion sort does): all three are
    candidates, not only the two that tie."""
    pods = [
        _pod("a", 100, created_ago=110, uid="uid-1"),
        _pod("b", 99, created_ago=110, uid="uid-2"),
        _pod("c", 100, created_ago=110, uid="uid-3"),
    ]
    for order in (pods, pods[::-1]):
        rm = removal(order, 1, NOW, horizon=0)
        assert rm.certain == () and set(rm.tied) == {"a", "b", "c"} and rm.choose == 1
