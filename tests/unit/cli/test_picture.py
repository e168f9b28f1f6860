"""`--png`: a picture is written for every kind of table and change."""

from __future__ import annotations

import matplotlib.image

from tether.cli.picture import draw_update
from tether.cli.watch_state import Tracker

from ..reconcile.table_docs import doc, docs_for, endpoint, ips, policy
from .kube_fakes import configmap, event


def _png(tmp_path, old, new, name):
    tr = Tracker()
    snap = tr.feed(event("tables", "SYNC", items=[configmap(old)]))[0]
    change = tr.feed(event("tables", "MODIFIED", configmap(new)))[0]
    paths = []
    for u, suffix in ((snap, "snap"), (change, "change")):
        path = tmp_path / f"{name}-{suffix}.png"
        draw_update(u, str(path))
        img = matplotlib.image.imread(path)
        assert img.shape[0] > 200 and img.shape[1] > 400
        paths.append(path)
    return paths


def test_ring_maglev_and_switch_pictures(tmp_path):
    for algo in ("ring-hash", "maglev"):
        _png(tmp_path, docs_for(3, policy(algo)), docs_for(5, policy(algo)), algo)
    eps = [endpoint(ip) for ip in ips(3)]
    _png(tmp_path, doc(eps, policy("ring-hash")), doc(eps, policy("maglev")), "switch")


def test_maglev_change_highlights_moved_slots_in_red(tmp_path):
    _, change = _png(tmp_path, docs_for(3), docs_for(4), "red")
    img = matplotlib.image.imread(change)
    red = (img[..., 0] > 0.8) & (img[..., 1] < 0.25) & (img[..., 2] < 0.25)
    assert red.sum() > 1000  # the moved panel and the moved flows
