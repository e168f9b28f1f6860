"""Table sources and routing: validation, last-good, atomic swap, Host forms, ConfigMap watch."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from tether.gateway.routes import Router, build_route
from tether.gateway.tables.kube import ApiCredentials, ConfigMapWatcher
from tether.gateway.tables.store import TableStore
from tether.models.table import DATA_KEY

from .conftest import backend_of, get
from .docs import cookie_key, make_document
from .fakeapi import serve_api


def _doc(name="httpbin", ns="default", port=8000, ip="10.0.0.1", **kw):
    return make_document([(ip, 8080, "p0"), ("10.0.0.2", 8080, "p1")], name=name,
                         namespace=ns, port=port, hash_key=cookie_key(), **kw)  # fmt: skip


def _store():
    swaps, errors = [], []
    store = TableStore(swaps.append, lambda n, why: errors.append((n, why)))
    return store, swaps, errors


def test_bad_document_keeps_the_last_good_one():
    store, swaps, errors = _store()
    good = _doc()
    assert store.apply("cm", good.dumps())
    store.publish()
    tampered = json.loads(good.dumps())
    tampered["endpoints"][0]["port"] = 9999
    assert not store.apply("cm", json.dumps(tampered))
    assert not store.apply("cm", "{not json")
    assert store.publish() is None  # nothing changed, nothing swapped
    assert len(swaps) == 1 and swaps[0].by_key["default/httpbin:8000"].checksum == good.checksum
    assert [n for n, _ in errors] == ["cm", "cm"] and "checksum" in errors[0][1]


def test_rebuilt_table_must_match_digest():
    store, _, errors = _store()
    unshipped = _doc(table_size=65537, ship=False)
    assert store.apply("ok", unshipped.dumps())
    raw = json.loads(unshipped.dumps())
    raw["table"]["digest"] = "0" * 64
    raw.pop("checksum")
    from tether.models.table import TableDocument

    forged = TableDocument.model_validate(raw).dumps()
    assert not store.apply("forged", forged)
    assert "digest" in errors[-1][1]


def test_host_forms_ports_and_default_route():
    a80 = build_route(_doc(name="web", ns="shop", port=80))
    a81 = build_route(_doc(name="web", ns="shop", port=81))
    b = build_route(_doc(name="api", ns="shop", port=8000))
    r = Router([a80, a81, b], cluster_domain="cluster.local", home_namespace="shop")
    for host in (b"web", b"web.shop", b"web.shop.svc", b"WEB.shop.svc.cluster.local.", b"web:80"):
        assert r.lookup(host) is a80
    assert r.lookup(b"web.shop:81") is a81
    assert r.lookup(b"web.shop:8080") is a80  # unpublished port (the gateway's): lowest
    assert r.lookup(b"203.0.113.1:8080") is None  # two services, no default configured
    assert Router([a80, a81], default_service=None).lookup(b"anything") is a80  # only one
    r2 = Router([a80, b], default_service=("shop", "api", None))
    assert r2.lookup(b"localhost:8080") is b and r2.lookup(None) is b


def test_bare_name_in_two_other_namespaces_is_not_guessed():
    x = build_route(_doc(name="web", ns="a"))
    y = build_route(_doc(name="web", ns="b"))
    r = Router([x, y], home_namespace="default")
    assert r.lookup(b"web") is None
    assert r.lookup(b"web.b") is y


def test_swapped_table_reroutes_live_traffic(h):
    b0, b1 = h.backend("b0"), h.backend("b1")
    h.write_table("svc.json", make_document([("127.0.0.1", b0.port, "b0")], algorithm=None))
    gw = h.gateway()
    h.wait(lambda: gw.loaded)
    assert backend_of(get(gw.port, "/get")[2]) == "b0"
    gen = gw.metrics.table_generation
    h.write_table("svc.json", make_document([("127.0.0.1", b1.port, "b1")], algorithm=None))
    h.wait(lambda: gw.metrics.table_generation > gen)
    assert backend_of(get(gw.port, "/get")[2]) == "b1"
    h.write_table("svc.json", "{broken")
    h.wait(lambda: gw.metrics.table_load_errors)
    assert backend_of(get(gw.port, "/get")[2]) == "b1"


def _cm(name, doc, rv):
    return {"metadata": {"name": name, "resourceVersion": rv}, "data": {DATA_KEY: doc.dumps()}}


def test_configmap_list_watch_and_relist_after_410():
    """A fake API server: list, one MODIFIED event, then 410 Gone → the watcher relists."""
    first, second, third = _doc(ip="10.0.0.1"), _doc(ip="10.0.0.5"), _doc(ip="10.0.0.9")
    state = {"lists": 0, "watches": 0}

    async def configmaps(request: web.Request):
        assert request.query["labelSelector"] == "tether.dev/table=v1"
        assert request.headers.get("Authorization") == "Bearer t0k"
        if request.query.get("watch") != "1":
            state["lists"] += 1
            doc = first if state["lists"] == 1 else third
            body = {"metadata": {"resourceVersion": str(state["lists"] * 10)},
                    "items": [_cm("tt-a", doc, "1")]}  # fmt: skip
            return web.json_response(body)
        state["watches"] += 1
        resp = web.StreamResponse()
        await resp.prepare(request)
        if state["watches"] == 1:
            event = {"type": "MODIFIED", "object": _cm("tt-a", second, "11")}
            await resp.write(json.dumps(event).encode() + b"\n")
            gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410}}
            await resp.write(json.dumps(gone).encode() + b"\n")
        else:
            await asyncio.sleep(0.1)  # an empty watch that ends; the watcher re-watches
        return resp

    async def scenario():
        runner, port = await serve_api("/api/v1/namespaces/tether-system/configmaps", configmaps)
        swaps: list[Router] = []
        store = TableStore(swaps.append, lambda *_: None)
        loaded = []
        creds = ApiCredentials(host=f"http://127.0.0.1:{port}", token=lambda: "Bearer t0k")
        watcher = ConfigMapWatcher(creds, "tether-system", store, lambda: loaded.append(1))
        task = asyncio.create_task(watcher.run())
        try:
            for _ in range(500):
                if state["lists"] >= 2 and len(swaps) >= 3:
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await runner.cleanup()
        return swaps, loaded

    swaps, loaded = asyncio.run(scenario())
    ips = [s.by_key["default/httpbin:8000"].targets[0].host for s in swaps]
    assert ips[:3] == ["10.0.0.1", "10.0.0.5", "10.0.0.9"]
    assert loaded == [1] and state["lists"] == 2


def test_operator_built_documents_route_like_the_hashing_layer():
    """Documents from the operator's table builder (shipped or not, one endpoint not ready)."""
    import pytest

    from tether.hashing import Host, Ketama, Maglev, RingHash, xxh64
    from tether.models import table as t
    from tether.reconcile.tables import build

    eps = tuple(
        t.Endpoint(
            address=f"10.0.0.{i}",
            port=80,
            ready=i != 2,
            terminating=i == 2,
            serving=i != 2,
            hashKey=f"10.0.0.{i}:80",
        )
        for i in range(5)
    )
    ready_hosts = [Host(e.hash_key) for e in eps if e.ready]
    expect = {
        "maglev": Maglev.build(ready_hosts),
        "ring-hash": RingHash.build(ready_hosts),
        "ketama": Ketama.build(ready_hosts),
    }
    svc = t.Service(namespace="d", name="s", host="s.d.svc.cluster.local", port=80)
    for alg, chooser in expect.items():
        for ship in (True, False):
            policy = t.Policy(
                type="consistentHash", algorithm=alg, hashKey=t.HashKey(kind="header", name="x")
            )
            doc = t.TableDocument(
                schemaVersion=1, service=svc, policy=policy, endpoints=eps,
                table=build(policy, eps, ship=ship),
            ).sealed()  # fmt: skip
            route = build_route(t.loads(doc.dumps()))
            assert [x.host for x in route.targets] == [
                "10.0.0.0",
                "10.0.0.1",
                "10.0.0.3",
                "10.0.0.4",
            ]
            for key in ("a", "b", "c", "d", "e"):
                if alg == "ketama":
                    got, want = route.chooser.choose_key(key), chooser.choose_key(key)
                else:
                    got, want = route.chooser.choose(xxh64(key)), chooser.choose(xxh64(key))
                assert got == want, (alg, ship, key)
    with pytest.raises(t.TableDocumentError):
        bad = doc.model_copy(update={"table": doc.table.model_copy(update={"digest": "0" * 64})})
        build_route(t.loads(bad.sealed().dumps()))


def test_configmap_watcher_retries_after_api_errors():
    """HTTP 500 on the first list: the watcher backs off, relists, and only then is loaded."""
    doc = _doc()
    calls = {"list": 0}

    async def configmaps(request: web.Request):
        if request.query.get("watch") == "1":
            await asyncio.sleep(0.1)
            return web.StreamResponse()
        calls["list"] += 1
        if calls["list"] == 1:
            return web.Response(status=500, text="etcd unavailable")
        body = {"metadata": {"resourceVersion": "5"}, "items": [_cm("tt-a", doc, "5")]}
        return web.json_response(body)

    async def scenario():
        runner, port = await serve_api("/api/v1/namespaces/ns/configmaps", configmaps)
        loaded, swaps = [], []
        store = TableStore(swaps.append, lambda *_: None)
        creds = ApiCredentials(host=f"http://127.0.0.1:{port}")
        watcher = ConfigMapWatcher(creds, "ns", store, lambda: loaded.append(calls["list"]))
        task = asyncio.create_task(watcher.run())
        try:
            for _ in range(300):
                if loaded:
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await runner.cleanup()
        return loaded, swaps

    loaded, swaps = asyncio.run(scenario())
    assert loaded == [2]  # ready only after the list that succeeded
    assert swaps[-1].by_key["default/httpbin:8000"].checksum == doc.checksum


def test_compact_indices_refuse_every_index_past_the_endpoints():
    """Shipped u16 indices: each must name a listed (and ready) endpoint, whatever its bytes."""
    import struct

    import pytest

    from tether.gateway.lookup import compact_indices
    from tether.models.table import TableDocumentError

    def u16(*values: int) -> bytes:
        return struct.pack(f"<{len(values)}H", *values)

    for n in (10, 200, 256):
        everyone, odd = list(range(n)), list(range(1, n, 2))
        values = [0, n - 1, 1, n // 2, n - 1]
        assert list(compact_indices(u16(*values), 2, n, everyone)) == values
        assert list(compact_indices(u16(1, n - 1), 2, n, odd)) == [0, odd.index(n - 1)]
        with pytest.raises(TableDocumentError, match="not ready"):
            compact_indices(u16(1, 0), 2, n, odd)
        # past n; a high byte; UTF-16 surrogate units alone and as a pair; the largest u16
        for bad in ([n], [0x0100], [0xD800], [0xDC00], [0xD800, 0xDC00], [0xDBFF, 0xDFFF],
                    [0xFFFF], [0x00E9 if n <= 0xE9 else 0x1E9]):  # fmt: skip
            for ready in (everyone, odd):
                with pytest.raises(TableDocumentError, match=r"not listed|not ready"):
                    compact_indices(u16(0, *bad, 1), 2, n, ready)
