"""The ConfigMap watch keeps following tables whatever one event looks like: an event line
larger than the HTTP client's own line limit (a big table, escaped inside the event) is
applied, and an event the gateway cannot handle leads to a relist, never to a gateway that
silently stops following its tables."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from tether.gateway.tables.kube import ApiCredentials, ConfigMapWatcher
from tether.gateway.tables.store import TableStore
from tether.models.table import DATA_KEY

from .docs import make_document
from .fakeapi import serve_api


def _doc(name: str, ip: str):
    return make_document([(ip, 8080, "p0")], name=name, algorithm=None)


def _cm(name: str, doc, rv: str, pad: int = 0) -> dict:
    data = {DATA_KEY: doc.dumps()}
    if pad:  # quotes are escaped inside the event: the line grows by 2 bytes per character
        data["padding"] = '"' * pad
    return {"metadata": {"name": name, "resourceVersion": rv}, "data": data}


def test_a_huge_event_line_is_applied_and_a_bad_event_relists():
    state = {"lists": 0, "watches": 0}

    async def configmaps(request: web.Request):
        if request.query.get("watch") != "1":
            state["lists"] += 1
            items = [_cm("tt-a", _doc("a", "10.0.0.1"), "1")]
            if state["lists"] > 1:  # what the relist sees after the bad event
                items.append(_cm("tt-c", _doc("c", "10.0.0.3"), "4"))
            meta = {"resourceVersion": str(10 * state["lists"])}
            return web.json_response({"metadata": meta, "items": items})
        state["watches"] += 1
        resp = web.StreamResponse()
        await resp.prepare(request)
        if state["watches"] == 1:
            big = {"type": "MODIFIED", "object": _cm("tt-a", _doc("a", "10.0.0.9"), "2", 700_000)}
            line = json.dumps(big).encode()
            assert len(line) > 1 << 20  # more than aiohttp's 512 KiB readline limit, twice
            for i in range(0, len(line), 1000):  # in small writes, as a real stream arrives
                await resp.write(line[i : i + 1000])
            await resp.write(b"\n")
            added = {"type": "ADDED", "object": _cm("tt-b", _doc("b", "10.0.0.2"), "3")}
            await resp.write(json.dumps(added).encode() + b"\n")
            bad = {"type": "ADDED", "object": {"metadata": {}}}  # no name: cannot be applied
            await resp.write(json.dumps(bad).encode() + b"\n")
        await asyncio.sleep(0.2)
        return resp

    async def scenario():
        runner, port = await serve_api("/api/v1/namespaces/ns/configmaps", configmaps)
        store = TableStore(lambda _: None, lambda *_: None)
        watcher = ConfigMapWatcher(ApiCredentials(host=f"http://127.0.0.1:{port}"), "ns", store,
                                   lambda: None, max_backoff=0.05)  # fmt: skip
        seen = []
        task = asyncio.create_task(watcher.run())
        try:
            for _ in range(1000):
                by_key = store.router.by_key
                a = by_key.get("default/a:8000")
                seen.append((a.targets[0].host if a else None, "default/b:8000" in by_key))
                # the relist applies what it listed, then drops the rest: a later slice
                if "default/c:8000" in by_key and "default/b:8000" not in by_key:
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await runner.cleanup()
        return seen, sorted(store.router.by_key), store.router.by_key["default/a:8000"]

    seen, keys, a = asyncio.run(scenario())
    assert ("10.0.0.9", True) in seen  # the huge event and the one after it were applied
    assert state["lists"] == 2  # the event without a name made the gateway relist
    assert keys == ["default/a:8000", "default/c:8000"]  # exactly what the relist listed
    assert a.targets[0].host == "10.0.0.1"  # the relist is the truth again
