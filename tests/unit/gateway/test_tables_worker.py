"""Table changes applied beside the event loop: order per entry, readiness after the whole first
load, paginated lists, and requests answered while big tables are being applied."""

from __future__ import annotations

import asyncio
import json
import os

from aiohttp import web

from tether.gateway.tables.directory import watch_directory
from tether.gateway.tables.kube import ApiCredentials, ConfigMapWatcher
from tether.gateway.tables.store import TableStore
from tether.gateway.tables.worker import TableWorker
from tether.models.table import DATA_KEY

from .conftest import backend_of, get
from .docs import cookie_key, make_document
from .fakeapi import serve_api


def _big(name: str, ship: bool, n: int = 1000):
    """A 65,537-slot Maglev table over ``n`` loopback endpoints (never contacted)."""
    eps = [(f"127.{i // 250}.{i % 250}.{len(name)}", 9, f"{name}-{i}") for i in range(n)]
    return make_document(eps, name=name, hash_key=cookie_key(), ship=ship)


def _small(name: str, ip: str = "10.0.0.1"):
    return make_document([(ip, 8080, "p0")], name=name, algorithm=None)


def test_a_later_document_never_loses_to_an_earlier_one():
    """The first version needs a 65,537-slot rebuild, the second is tiny: the tiny one, last in,
    is what stays, and every version was published in order."""
    big, small = _big("web", ship=False), _small("web", "10.0.0.9")

    async def scenario():
        swaps = []
        store = TableStore(swaps.append, lambda *_: None)
        worker = TableWorker(store, asyncio.get_running_loop())
        worker.apply("tt-web", big.dumps())
        worker.apply("tt-web", small.dumps())
        await worker.settled()
        worker.close()
        return [s.by_key["default/web:8000"].checksum for s in swaps]

    assert asyncio.run(scenario()) == [big.checksum, small.checksum]


def test_ready_only_once_the_whole_directory_is_applied(tmp_path):
    """on_loaded runs after every table of the first scan is routable, not after the first."""
    n = 40
    for i in range(n):
        doc = _big(f"svc{i}", ship=i % 2 == 0, n=20) if i % 5 == 0 else _small(f"svc{i}")
        (tmp_path / f"svc{i}.json").write_text(doc.dumps())
    (tmp_path / "broken.json").write_text("{not json")

    async def scenario():
        store = TableStore(lambda _: None, lambda *_: None)
        seen_at_ready = []
        loaded = asyncio.Event()

        def on_loaded():
            seen_at_ready.append(len(store.router))
            loaded.set()

        task = asyncio.create_task(watch_directory(str(tmp_path), store, 0.05, on_loaded))
        await asyncio.wait_for(loaded.wait(), 60)
        task.cancel()
        return seen_at_ready

    assert asyncio.run(scenario()) == [n]


def _cm(name, doc, rv="1"):
    return {"metadata": {"name": name, "resourceVersion": rv}, "data": {DATA_KEY: doc.dumps()}}


def test_configmaps_are_listed_in_pages_and_a_relist_removes_what_is_gone():
    """A fake API server that honours limit/continue: the first list spans several pages and
    the gateway is loaded only once all are applied; after 410 Gone the relist lacks one table,
    which goes, while readiness (called once) is never taken back."""
    docs = {f"tt-{i:02d}": _small(f"s{i:02d}", f"10.0.1.{i}") for i in range(23)}
    state = {"lists": 0, "pages": 0, "limits": set(), "watches": 0}

    def listing():
        names = sorted(docs)
        return names if state["lists"] <= 1 else names[1:]  # the relist lacks tt-00

    async def configmaps(request: web.Request):
        if request.query.get("watch") == "1":
            state["watches"] += 1
            resp = web.StreamResponse()
            await resp.prepare(request)
            if state["watches"] == 1:
                gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410}}
                await resp.write(json.dumps(gone).encode() + b"\n")
            else:
                await asyncio.sleep(0.1)
            return resp
        limit = int(request.query["limit"])
        state["limits"].add(limit)
        start = int(request.query.get("continue") or 0)
        if start == 0:
            state["lists"] += 1
        state["pages"] += 1
        names = listing()
        page = names[start : start + limit]
        meta = {"resourceVersion": str(state["lists"] * 100)}
        if start + limit < len(names):
            meta["continue"] = str(start + limit)
        return web.json_response({"metadata": meta, "items": [_cm(n, docs[n]) for n in page]})

    async def scenario():
        runner, port = await serve_api("/api/v1/namespaces/ns/configmaps", configmaps)
        store = TableStore(lambda _: None, lambda *_: None)
        at_ready = []
        creds = ApiCredentials(host=f"http://127.0.0.1:{port}")
        watcher = ConfigMapWatcher(creds, "ns", store, lambda: at_ready.append(len(store.router)))
        watcher.limit = 5  # as if earlier pages had shown big tables
        task = asyncio.create_task(watcher.run())
        try:
            for _ in range(1000):
                if state["watches"] >= 2 and "default/s00:8000" not in store.router.by_key:
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await runner.cleanup()
        return at_ready, sorted(store.router.by_key)

    at_ready, keys = asyncio.run(scenario())
    assert at_ready == [23]  # ready once, with every page applied
    assert state["lists"] == 2 and state["pages"] >= 3
    assert min(state["limits"]) == 5 and max(state["limits"]) > 5  # pages grow for small tables
    assert keys == [f"default/s{i:02d}:8000" for i in range(1, 23)]


def test_requests_are_answered_while_big_tables_are_applied(h, tmp_path):
    """24 tables of 65,537 slots over 1,000 endpoints appear in the directory at once (half of
    them must be rebuilt: not shipped). The gateway keeps answering while it applies them: answers
    arrive while only some of them are live (the old gateway applied a scan in one step)."""
    b = h.backend("b0")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    svc = make_document([("127.0.0.1", b.port, "b0")], algorithm=None)
    for d in (first, second):
        (d / "svc.json").write_text(svc.dumps())
    k = 24
    for i in range(k):
        (second / f"big{i:02d}.json").write_text(_big(f"big{i:02d}", ship=i % 2 == 0).dumps())
    link = tmp_path / "tables"
    os.symlink(first, link)
    gw = h.gateway(tables_dir=str(link))
    h.wait(lambda: gw.loaded)
    assert backend_of(get(gw.port, "/get", headers={"Host": "httpbin"})[2]) == "b0"
    os.symlink(second, tmp_path / "next")
    os.replace(tmp_path / "next", link)  # the next scan sees all of them at once
    during, conn = 0, None
    for _ in range(20000):
        live = len(gw.router)
        if live == k + 1:
            break
        status, _, body, conn = get(gw.port, "/get", headers={"Host": "httpbin"}, conn=conn)
        assert status == 200 and backend_of(body) == "b0"
        if 1 < len(gw.router) < k + 1:
            during += 1
    h.wait(lambda: len(gw.router) == k + 1, timeout=60)
    assert during >= 3, "no request was answered while the tables were being applied"
    assert h.call(gw.router.lookup, b"big03.default").key == "default/big03:8000"
