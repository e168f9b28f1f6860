"""What `kubectl tether watch` prints: JSON lines, plain lines and the rich view."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from tether.cli.watch_live import LiveView
from tether.cli.watch_render import json_line, plain_line
from tether.cli.watch_state import Tracker
from tether.reconcile.moved import moved_fraction

from ..reconcile.table_docs import doc, docs_for, endpoint, ips, policy
from .kube_fakes import configmap, endpointslice, event


def _updates(old, new, moved=None):
    tr = Tracker()
    tr.feed(event("slices", "SYNC", items=[endpointslice("s1", [(ip, True) for ip in ips(3)])]))
    snap = tr.feed(event("tables", "SYNC", items=[configmap(old)], seen=0.0))[0]
    five = [(ip, True) for ip in ips(5)]
    tr.feed(event("slices", "MODIFIED", endpointslice("s1", five), seen=1.0))
    change = tr.feed(event("tables", "MODIFIED", configmap(new, moved), seen=1.125))[0]
    return snap, change


def test_json_change_carries_the_matrix_and_agrees_with_the_operator():
    old, new = docs_for(3, policy("ring-hash")), docs_for(5, policy("ring-hash"))
    moved = moved_fraction(old, new)
    snap, change = _updates(old, new, moved)
    s = json.loads(json_line(snap))
    assert s["type"] == "snapshot" and "change" not in s
    assert s["algorithm"] == "ring-hash" and s["tableSize"] == old.table.size
    assert [p["pod"] for p in s["pods"]] == ["pod-2", "pod-3", "pod-4"]
    assert sum(p["share"] for p in s["pods"]) == pytest.approx(1.0)
    c = json.loads(json_line(change))
    ch = c["change"]
    assert (ch["readyBefore"], ch["readyAfter"]) == (3, 5)
    assert sum(cell["fraction"] for cell in ch["matrix"]) == pytest.approx(1.0)
    off = sum(cell["fraction"] for cell in ch["matrix"] if cell["from"] != cell["to"])
    assert off == pytest.approx(ch["moved"]) == pytest.approx(moved, abs=1e-12)
    assert c["operatorKeysMoved"] == pytest.approx(moved, abs=1e-6)
    assert ch["optimum"] == pytest.approx(0.4) and ch["errorBound"] == 0.0
    assert ch["sliceToTableSeconds"] == pytest.approx(0.125)
    assert {cell["from"] for cell in ch["matrix"]} == {"pod-2", "pod-3", "pod-4"}
    assert {"pod-5", "pod-6"} <= {cell["to"] for cell in ch["matrix"]}
    assert c["time"].endswith("Z") and c["service"]["port"] == 8000
    assert c["sinceStart"] == {
        "readyBefore": 3,
        "readyAfter": 5,
        "moved": pytest.approx(moved, abs=1e-12),
        "optimum": pytest.approx(0.4),
    }


def test_plain_mode_is_one_line_per_update_with_the_key_figures():
    old, new = docs_for(3), docs_for(5)
    snap, change = _updates(old, new, 0.4)
    for u in (snap, change):
        assert "\n" not in plain_line(u)
    line = plain_line(change)
    assert " change default/httpbin:8000 algorithm=maglev size=65537 ready=3→5 " in line
    assert "optimum=40.0%" in line and "operator=40.0%" in line
    assert "slice_to_table=0.125s" in line and "since_start=3→5:40.0%" in line
    assert "flows=pod-2>" in line and "pods=pod-2:20." in line
    assert plain_line(snap).split()[1] == "snapshot"


def test_terminating_pods_are_marked_and_own_nothing():
    eps = [endpoint(ip) for ip in ips(3)]
    old = doc(eps)
    new = doc([*eps[:2], endpoint(eps[2].address, ready=False)])
    _, change = _updates(old, new)
    line = plain_line(change)
    assert "pod-4:0.0%(terminating)" in line
    pods = {p["pod"]: p for p in json.loads(json_line(change))["pods"]}
    assert pods["pod-4"]["terminating"] and pods["pod-4"]["share"] == 0.0


def test_rich_view_shows_bars_the_matrix_and_history():
    old, new = docs_for(3, policy("ring-hash")), docs_for(5, policy("ring-hash"))
    snap, change = _updates(old, new, moved_fraction(old, new))
    view = LiveView("httpbin.default")
    view.add(snap)
    view.add(change)
    console = Console(record=True, width=140)
    console.print(view.renderable())
    text = console.export_text()
    for needle in ("ring-hash · table size", "pod-6", "old \\ new", "optimum 40.0%", "█"):
        assert needle in text, needle
    assert "EndpointSlice→table 125 ms" in text and "3→5" in text
    assert "since the watch started: ready 3→5" in text
