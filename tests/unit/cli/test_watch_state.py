"""The watch's state machine: which table it shows, what counts as a change, slice→table time."""

from __future__ import annotations

import pytest

from tether.cli.watch_state import Tracker
from tether.reconcile.moved import moved_fraction

from ..reconcile.table_docs import doc, docs_for, endpoint, ips, policy
from .kube_fakes import configmap, endpointslice, event

RING = policy("ring-hash")


def _ready(n: int) -> list[tuple[str, bool]]:
    return [(ip, True) for ip in ips(n)]


def test_snapshot_then_changes_with_the_matrix_and_the_operators_figure():
    three, five = docs_for(3, RING), docs_for(5, RING)
    tr = Tracker()
    (snap,) = tr.feed(event("tables", "SYNC", items=[configmap(three)]))
    assert snap.type == "snapshot" and snap.view.ready == 3 and snap.transition is None
    moved = moved_fraction(three, five)
    (ch,) = tr.feed(event("tables", "MODIFIED", configmap(five, moved)))
    assert ch.type == "change" and (ch.previous.ready, ch.view.ready) == (3, 5)
    assert ch.transition.moved == pytest.approx(moved, abs=1e-12)
    assert ch.view.operator_moved == pytest.approx(moved, abs=1e-6)
    assert ch.transition.optimum == pytest.approx(0.4)
    # a second write (5 → 4) is one change, and the watch also keeps 3 → 4 as a whole
    four = docs_for(4, RING)
    (ch2,) = tr.feed(event("tables", "MODIFIED", configmap(four, moved_fraction(five, four))))
    assert ch2.transition.moved == pytest.approx(moved_fraction(five, four), abs=1e-12)
    assert ch2.first.ready == 3 and ch2.since_start.moved == pytest.approx(
        moved_fraction(three, four), abs=1e-12
    )


def test_same_checksum_is_no_change_and_deletion_is_reported():
    three = docs_for(3)
    tr = Tracker()
    tr.feed(event("tables", "SYNC", items=[configmap(three)]))
    assert tr.feed(event("tables", "MODIFIED", configmap(three, 0.1))) == []
    (gone,) = tr.feed(event("tables", "DELETED", configmap(three)))
    assert gone.type == "removed" and gone.view is None and gone.previous.ready == 3


def test_a_table_that_appears_later_is_a_change_from_nothing():
    tr = Tracker()
    assert tr.feed(event("tables", "SYNC", items=[])) == []
    (ch,) = tr.feed(event("tables", "ADDED", configmap(docs_for(2))))
    assert ch.type == "change" and ch.previous is None and ch.transition is None


def test_port_and_subset_selection():
    low, high = (
        doc([endpoint(ip) for ip in ips(2)]),
        doc([endpoint(ip) for ip in ips(3)], port=9000),
    )
    canary = doc([endpoint(ips(1)[0])], subset="canary")
    items = [configmap(high), configmap(low), configmap(canary)]
    assert Tracker().feed(event("tables", "SYNC", items=items))[0].view.doc.service.port == 8000
    by_num = Tracker("9000").feed(event("tables", "SYNC", items=items))[0]
    by_name = Tracker("p9000").feed(event("tables", "SYNC", items=items))[0]
    assert by_num.view.ready == by_name.view.ready == 3
    sub = Tracker(subset="canary").feed(event("tables", "SYNC", items=items))[0]
    assert sub.view.doc.subset == "canary"
    # another port's table changing is not this table's change
    tr = Tracker()
    tr.feed(event("tables", "SYNC", items=items))
    assert tr.feed(event("tables", "MODIFIED", configmap(docs_for(4)))) != []
    assert (
        tr.feed(event("tables", "MODIFIED", configmap(doc([endpoint("10.244.0.9")], port=9000))))
        == []
    )


def test_a_corrupt_table_is_ignored():
    tr = Tracker()
    tr.feed(event("tables", "SYNC", items=[configmap(docs_for(3))]))
    bad = configmap(docs_for(4))
    bad["data"]["table.json"] = bad["data"]["table.json"].replace('"port":8000', '"port":8001')
    assert tr.feed(event("tables", "MODIFIED", bad)) == []
    assert tr.view.ready == 3


def test_slice_to_table_clock_runs_from_the_first_unreflected_slice_change():
    tr = Tracker()
    tr.feed(event("slices", "SYNC", items=[endpointslice("s1", _ready(3))]))
    tr.feed(event("tables", "SYNC", items=[configmap(docs_for(3))]))
    # two pods appear (not ready), then become ready: the clock starts at the first event
    starting = [*_ready(3), ("10.244.0.5", False), ("10.244.0.6", False)]
    tr.feed(event("slices", "MODIFIED", endpointslice("s1", starting), seen=10.0))
    tr.feed(event("slices", "MODIFIED", endpointslice("s1", _ready(5)), seen=10.4))
    (ch,) = tr.feed(event("tables", "MODIFIED", configmap(docs_for(5)), seen=10.55))
    assert ch.slice_to_table == pytest.approx(0.55)
    assert tr.pending == {}


def test_a_slice_change_the_table_already_shows_starts_no_clock():
    tr = Tracker()
    tr.feed(event("slices", "SYNC", items=[endpointslice("s1", _ready(3))]))
    tr.feed(event("tables", "SYNC", items=[configmap(docs_for(3))]))
    # the table event raced ahead of the slice event
    (ch,) = tr.feed(event("tables", "MODIFIED", configmap(docs_for(4)), seen=5.0))
    assert ch.slice_to_table is None
    tr.feed(event("slices", "MODIFIED", endpointslice("s1", _ready(4)), seen=5.1))
    assert tr.pending == {}
    # a slice of another port is not this table's business
    tr.feed(event("slices", "ADDED", endpointslice("s2", [("10.1.0.1", True)], "grpc"), seen=6))
    assert tr.pending == {}


def test_a_removed_endpoint_is_unreflected_until_the_table_drops_it():
    tr = Tracker()
    tr.feed(event("slices", "SYNC", items=[endpointslice("s1", _ready(3))]))
    tr.feed(event("tables", "SYNC", items=[configmap(docs_for(3))]))
    tr.feed(event("slices", "MODIFIED", endpointslice("s1", _ready(2)), seen=1.0))
    assert "s1" in tr.pending
    (ch,) = tr.feed(event("tables", "MODIFIED", configmap(docs_for(2)), seen=1.2))
    assert ch.slice_to_table == pytest.approx(0.2)


def test_an_endpoint_moving_between_slices_starts_no_clock():
    tr = Tracker()
    tr.feed(event("slices", "SYNC", items=[endpointslice("s1", _ready(3))]))
    tr.feed(event("tables", "SYNC", items=[configmap(docs_for(3))]))
    tr.feed(event("slices", "MODIFIED", endpointslice("s1", _ready(2)), seen=1.0))
    assert "s1" in tr.pending  # for now it looks like a pod left
    tr.feed(event("slices", "ADDED", endpointslice("s2", [("10.244.0.4", True)]), seen=1.1))
    assert tr.pending == {}  # it only moved: the table was right all along
    (ch,) = tr.feed(
        event("tables", "MODIFIED", configmap(docs_for(3, policy("maglev", 7))), seen=9)
    )
    assert ch.slice_to_table is None  # a policy change, not an endpoint change
