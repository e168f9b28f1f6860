"""Hash drain through the gateway, on real sockets, on both data paths.

What a user checks: when a pod becomes terminating but still serves, every key that went to it
keeps going there and no other key does; every other key goes where the new table says (the
hashing layer's own Maglev over the ready pods); once the pod leaves the document its keys move
to the current table's pick; a cookie the gateway generates never lands on a draining pod;
``hash_drain=False`` (the default, ``--no-hash-drain``) is Envoy's behaviour (the current table
only); during a rolling update two draining pods both keep their keys.
"""

from __future__ import annotations

import argparse
import urllib.request
from collections import Counter

from tether.cli.gateway import register
from tether.gateway.routes import LANE_HASH, Route
from tether.hashing import Host, Maglev, MaglevConfig, xxh64
from tether.models.table import HashKey

from .conftest import backend_of, get
from .docs import cookie_key, make_document

KEY = HashKey(kind="header", name="X-User")
USERS = [f"user-{i}" for i in range(160)]


def _doc(backends, ready, draining=(), key=KEY):
    """A document over ``ready`` pods plus ``draining`` ones (terminating, still serving)."""
    eps = [
        ("127.0.0.1", b.port, b.name, b.name in ready)
        for b in backends
        if b.name in ready or b.name in draining
    ]
    doc = make_document(eps, hash_key=key)
    endpoints = tuple(
        e.model_copy(update={"serving": True}) if e.pod in draining else e for e in doc.endpoints
    )
    return doc.model_copy(update={"endpoints": endpoints, "checksum": None}).sealed()


def _table(backends, ready) -> dict[str, str]:
    """user → pod, as the table over the ``ready`` pods alone says (Envoy's pick)."""
    pods = [b for b in backends if b.name in ready]
    maglev = Maglev.build([Host(f"127.0.0.1:{b.port}") for b in pods], MaglevConfig(65537))
    return {u: pods[maglev.choose(xxh64(u))].name for u in USERS}


def _publish(h, gw, doc) -> None:
    h.write_table("svc.json", doc)
    h.wait(lambda: gw.router.default is not None and gw.router.default.checksum == doc.checksum)


def _where(gw) -> dict[str, str]:
    """user → the pod that answered that user's request."""
    out, conn = {}, None
    for u in USERS:
        _, _, body, conn = get(gw.port, "/get", headers={"X-User": u}, conn=conn)
        out[u] = backend_of(body)
    conn.close()
    return out


def _start(h, n=4, **gw_over):
    gw_over.setdefault("hash_drain", True)
    backends = [h.backend(f"b{i}") for i in range(n)]
    everyone = [b.name for b in backends[:4]]
    h.write_table("svc.json", _doc(backends, everyone))
    gw = h.gateway(**gw_over)
    h.wait(lambda: gw.loaded and gw.router.default is not None)
    before = _where(gw)
    assert before == _table(backends, everyone)
    return gw, backends, before


def _drain_picks(gw) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{gw.admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith('tether_gateway_drain_picks_total{route="default/httpbin:8000"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_draining_pod_keeps_its_keys_then_they_move_when_it_is_gone(h):
    gw, backends, before = _start(h)
    ready = ["b0", "b2", "b3"]
    _publish(h, gw, _doc(backends, ready, draining=("b1",)))
    now, table = _where(gw), _table(backends, ready)
    owned = {u for u, pod in before.items() if pod == "b1"}
    assert owned and len(owned) < len(USERS)
    assert all(now[u] == "b1" for u in owned)
    assert all(now[u] == table[u] for u in USERS if u not in owned)  # never b1
    assert _drain_picks(gw) == len(owned)
    _publish(h, gw, _doc(backends, ready))  # b1 stopped serving: gone from the document
    assert _where(gw) == table
    route = gw.router.default
    assert type(route) is Route and route.lane == LANE_HASH  # no drain: today's route


def test_no_hash_drain_is_envoy(h):
    gw, backends, before = _start(h, hash_drain=False)
    ready = ["b0", "b2", "b3"]
    _publish(h, gw, _doc(backends, ready, draining=("b1",)))
    assert _where(gw) == _table(backends, ready)
    assert "b1" in before.values() and _drain_picks(gw) == 0


def test_rolling_update_keeps_both_draining_pods_keys(h):
    gw, backends, before = _start(h, n=5)
    _publish(h, gw, _doc(backends, ["b0", "b2", "b3"], draining=("b1",)))
    step1 = _where(gw)
    ready = ["b0", "b3", "b4"]  # b2 drains next, b4 is the new pod
    _publish(h, gw, _doc(backends, ready, draining=("b1", "b2")))
    now, table = _where(gw), _table(backends, ready)
    for u in USERS:
        if before[u] == "b1":
            assert now[u] == "b1", u
        elif step1[u] == "b2":
            assert now[u] == "b2", u
        else:
            assert now[u] == table[u], u
    assert {"b1", "b2", "b4"} <= set(now.values())


def test_a_generated_cookie_never_goes_to_a_draining_pod(h):
    backends = [h.backend(f"b{i}") for i in range(3)]
    key = cookie_key("sticky", ttl=0, path="/")
    everyone = ["b0", "b1", "b2"]
    h.write_table("svc.json", _doc(backends, everyone, key=key))
    gw = h.gateway(hash_drain=True)
    h.wait(lambda: gw.loaded and gw.router.default is not None)
    first = Counter(backend_of(get(gw.port, "/get")[2]) for _ in range(30))
    assert first["b1"] > 0  # fresh cookies did land on b1 before it drained
    _publish(h, gw, _doc(backends, ["b0", "b2"], draining=("b1",), key=key))
    fresh = Counter(backend_of(get(gw.port, "/get")[2]) for _ in range(60))
    assert set(fresh) == {"b0", "b2"}


def test_the_flag_and_its_variable(monkeypatch):
    def parsed(*argv) -> bool:
        p = argparse.ArgumentParser()
        register(p.add_subparsers())
        return p.parse_args(["gateway", *argv]).hash_drain

    monkeypatch.delenv("TETHER_GATEWAY_HASH_DRAIN", raising=False)
    assert parsed() is False and parsed("--hash-drain") is True  # off: Envoy's behaviour
    monkeypatch.setenv("TETHER_GATEWAY_HASH_DRAIN", "true")
    assert parsed() is True and parsed("--no-hash-drain") is False
