"""`watch --sessions` and `plan --sessions` from the gateways' summaries: each table change is
matched with every replica's swap by checksum and summed; the current sessions per pod; plan's
expectation from the transition matrix."""

from __future__ import annotations

import json

import pytest

from tether.cli.plan_sessions import expected_moves, sessions_report
from tether.cli.watch_sessions import WAIT_SECONDS, Sessions
from tether.cli.watch_sessions_render import sessions_json, sessions_plain, sessions_text
from tether.reconcile.transition import transition
from tether.reconcile.whatif import predict

from ..reconcile.table_docs import docs_for, policy
from .kube_fakes import event

ROUTE = "default/httpbin:8000"


def cell(a, b, n):
    return {"from": a, "fromEndpoint": f"{a}:80", "to": b, "toEndpoint": f"{b}:80", "sessions": n}


def summary(checksum, swaps=(), pods=(), active=0, away=0):
    return {
        "windowSeconds": 300,
        "effectiveWindowSeconds": 300,
        "routes": [
            {
                "route": ROUTE,
                "checksum": checksum,
                "active": active,
                "away": away,
                "podsBy": "owner",
                "pods": [{"pod": p, "endpoint": f"{p}:80", "active": n} for p, n in pods],
                "swaps": list(swaps),
            }
        ],
    }


def swap(before, after, matrix, away_matrix):
    return {
        "fromChecksum": before,
        "toChecksum": after,
        "countable": True,
        "active": sum(c["sessions"] for c in matrix),
        "moved": sum(c["sessions"] for c in matrix if c["from"] != c["to"]),
        "away": sum(c["sessions"] for c in away_matrix),
        "matrix": matrix,
        "awayMatrix": away_matrix,
    }


def poll(seen: float, **gateways):
    items = [
        {"pod": pod, "error": s} if isinstance(s, str) else {"pod": pod, "summary": s}
        for pod, s in gateways.items()
    ]
    return event("sessions", "POLL", {"route": ROUTE}, items, seen)


def test_current_sessions_are_summed_over_the_gateways_per_pod():
    s = Sessions()
    (u,) = s.feed(
        poll(
            1.0,
            gw1=summary("c0", pods=[("a", 3), ("b", 1)], active=4),
            gw2=summary("c0", pods=[("a", 2), ("c", 5)], active=7, away=1),
            gw3="403 Forbidden",
        )
    )
    d = sessions_json(u)
    assert d["change"] is None and d["active"] == 11 and d["away"] == 1
    assert {(p["pod"], p["active"]) for p in d["pods"]} == {("a", 5), ("b", 1), ("c", 5)}
    assert [g["status"] for g in d["gateways"]] == ["counted", "counted", "error: 403 Forbidden"]
    assert not d["complete"]
    assert "active=11" in sessions_plain(u) and "11 on 2 gateways" in sessions_text(u)
    assert s.feed(poll(2.0, gw1=summary("c0"))) == []  # the current sessions are shown once


def test_a_change_waits_for_every_replica_and_sums_their_swaps():
    s = Sessions()
    s.feed(poll(1.0, gw1=summary("c0"), gw2=summary("c0")))
    s.expect("c0", "c1", seen=2.0)
    one = swap("c0", "c1", [cell("a", "a", 4), cell("a", "d", 2)], [cell("a", "d", 2)])
    # gw2 has not swapped yet: nothing to show
    assert s.feed(poll(3.0, gw1=summary("c1", [one]), gw2=summary("c0"))) == []
    two = swap("c0", "c1", [cell("b", "b", 1), cell("a", "d", 3)], [cell("a", "d", 3)])
    (u,) = s.feed(poll(4.0, gw1=summary("c1", [one]), gw2=summary("c1", [two])))
    d = sessions_json(u)
    assert d["change"] == {"fromChecksum": "c0", "toChecksum": "c1"} and d["complete"]
    assert (d["active"], d["moved"], d["away"]) == (10, 5, 5)
    assert {(c["from"], c["to"]): c["sessions"] for c in d["matrix"]} == {
        ("a", "a"): 4,
        ("a", "d"): 5,
        ("b", "b"): 1,
    }
    assert d["awayMatrix"] == [cell("a", "d", 5)]
    assert json.loads(json.dumps(d)) == d
    assert "moved=5" in sessions_plain(u) and "flows=a>d:5" in sessions_plain(u)


def test_a_replica_at_the_new_table_without_a_record_had_no_active_session():
    s = Sessions()
    s.feed(poll(1.0, gw1=summary("c0")))
    s.expect("c0", "c1", seen=2.0)
    s.expect("c1", "c2", seen=2.5)
    rec = swap("c1", "c2", [cell("a", "e", 1)], [cell("a", "e", 1)])
    first, second = s.feed(poll(3.0, gw1=summary("c2", [rec])))  # passed through c1
    assert sessions_json(first)["moved"] == 0 and sessions_json(first)["complete"]
    assert sessions_json(first)["gateways"][0]["status"] == "no active sessions"
    assert sessions_json(second)["moved"] == 1


def test_a_replica_that_never_reports_is_shown_as_such_after_the_wait():
    s = Sessions()
    s.feed(poll(1.0, gw1=summary("c0"), gw2=summary("c0")))
    s.expect("c0", "c1", seen=2.0)
    rec = swap("c0", "c1", [cell("a", "d", 2)], [cell("a", "d", 2)])
    assert s.feed(poll(2.0 + WAIT_SECONDS - 1, gw1=summary("c1", [rec]), gw2=summary("c0"))) == []
    (u,) = s.feed(poll(2.0 + WAIT_SECONDS, gw1=summary("c1", [rec]), gw2=summary("c0")))
    d = sessions_json(u)
    assert d["moved"] == 2 and not d["complete"]
    assert [g["status"] for g in d["gateways"]] == ["counted", "not reported"]


@pytest.mark.parametrize("algorithm", ["maglev", "ring-hash"])
def test_plan_expects_active_sessions_times_each_pods_moved_share(algorithm):
    three = docs_for(3, policy(algorithm))
    pred = predict(three, 5, three.policy, None, samples=4)
    eps = [e.authority for e in three.endpoints]
    active = {eps[0]: 30, eps[1]: 10, eps[2]: 0}
    values = expected_moves(active, three, pred, current=True)
    for s, value in zip(pred.scenarios, values, strict=True):
        tr = transition(three, s.doc)
        want = 0.0
        for ep, n in active.items():
            key = next(e.hash_key for e in three.endpoints if e.authority == ep)
            row = tr.row(key)
            want += n * sum(v for b, v in row.items() if b != key) / sum(row.values())
        assert value == pytest.approx(want, rel=1e-9)
    other = expected_moves(active, three, pred, current=False)
    assert other == pytest.approx([40 * s.transition.moved for s in pred.scenarios])
    pods = [{"pod": "p", "endpoint": ep, "active": n} for ep, n in active.items()]
    route = {"route": three.key, "active": 40, "podsBy": "owner", "pods": pods}
    gateways = [
        {"pod": "gw1", "summary": {"routes": [route]}},
        {"pod": "gw2", "error": "403 Forbidden"},
    ]
    report = sessions_report(gateways, three, [pred])
    assert report["active"] == 40 and report["predictions"][0]["scenarios"] == values
    assert [g["status"] for g in report["gateways"]] == ["counted", "error: 403 Forbidden"]
