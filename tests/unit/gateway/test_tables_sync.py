"""How current the gateway's tables are with the API server: `TableSync`, fed by the ConfigMap
watch, and what the admin port reports (`/status`, `/readyz`, the sync metrics).

The fault suite shows it on a real cluster (tests/e2e/test_faults_data_plane.py); here a fake
API server breaks the watch, answers 500, then 410 Gone, and the sync state is checked at
each step, as is the back-off that starts over once the watch had worked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

from aiohttp import web

from tether.gateway.metrics import TableSync
from tether.gateway.tables.kube import ApiCredentials, ConfigMapWatcher
from tether.gateway.tables.store import TableStore
from tether.models.table import DATA_KEY

from .docs import make_document
from .fakeapi import serve_api
from .harness import raw_request


def _cm(name, doc, rv):
    return {"metadata": {"name": name, "resourceVersion": rv}, "data": {DATA_KEY: doc.dumps()}}


def test_sync_state_through_a_broken_watch_an_error_and_410_gone(caplog):
    doc = make_document([("10.0.0.1", 8080, "p0")], algorithm=None)
    state = {"lists": 0, "watches": 0}
    seen: dict[str, tuple] = {}
    watcher: ConfigMapWatcher | None = None

    async def configmaps(request: web.Request):
        sync = watcher.sync
        if request.query.get("watch") != "1":
            state["lists"] += 1
            body = {"metadata": {"resourceVersion": str(10 * state["lists"])},
                    "items": [_cm("tt-a", doc, "1")]}  # fmt: skip
            return web.json_response(body)
        state["watches"] += 1
        n = state["watches"]
        seen[f"watch {n}"] = (sync.synced, sync.age(), dict(sync.failures), sync.lists)
        if n == 2:
            return web.Response(status=500, text="etcd away")
        if n == 3:
            return web.Response(status=410, text="too old resource version")
        resp = web.StreamResponse()
        await resp.prepare(request)
        if n == 1:  # one event, then the connection breaks mid-stream
            await resp.write(json.dumps({"type": "MODIFIED", "object": _cm("tt-a", doc, "11")})
                             .encode() + b"\n")  # fmt: skip
            request.transport.abort()
            return resp
        while not state.get("done"):  # the watch after the relist stays open
            await asyncio.sleep(0.02)
        return resp

    async def scenario():
        nonlocal watcher
        runner, port = await serve_api("/api/v1/namespaces/ns/configmaps", configmaps)
        store = TableStore(lambda _r: None, lambda *_: None)
        watcher = ConfigMapWatcher(ApiCredentials(host=f"http://127.0.0.1:{port}"), "ns", store,
                                   lambda: None, sync=TableSync())  # fmt: skip
        task = asyncio.create_task(watcher.run())
        try:
            for _ in range(500):
                if state["watches"] >= 4 and watcher.sync.synced:
                    break
                await asyncio.sleep(0.01)
            return watcher.sync
        finally:
            state["done"] = True
            task.cancel()
            await runner.cleanup()

    with caplog.at_level(logging.WARNING, logger="tether.gateway.tables"):
        sync = asyncio.run(scenario())
    # watch 1 opens after the first list: synced, nothing failed yet
    assert seen["watch 1"][0] is True and seen["watch 1"][3] == 1
    # watch 2, after the break: not synced, its age counts from the last event heard
    synced, age, failures, _ = seen["watch 2"]
    assert synced is False and 0 < age < 5 and failures == {"error": 1}
    # watch 3 answers 410: the watcher relists (list 2) and follows the API server again
    assert state["lists"] == 2 and sync.lists == 2
    assert sync.synced and sync.age() == 0.0
    assert dict(sync.failures) == {"error": 2, "gone": 1}
    delays = [float(m) for m in re.findall(r"retrying in ([\d.]+)s", caplog.text)]
    assert delays == [0.5, 1.0]  # doubling while it fails; 0.5 after it had worked


def test_table_sync_age_counts_only_while_not_synced():
    sync = TableSync()
    assert not sync.active and sync.age() == 0.0
    sync.listed()
    assert sync.active and sync.synced and sync.lists == 1 and sync.age() == 0.0
    sync.lost("error")
    sync.heard -= 42
    assert not sync.synced and 41.9 < sync.age() < 60
    sync.event()
    assert sync.synced and sync.age() == 0.0


def test_admin_reports_table_sync_and_stays_ready_while_not_synced(h):
    b = h.backend("b0")
    h.write_table("svc.json", make_document([("127.0.0.1", b.port, "b0")], algorithm=None))
    gw = h.gateway()
    h.wait(lambda: gw.loaded)
    status = json.loads(raw_request(gw.admin_port, b"GET /status HTTP/1.1\r\n\r\n")
                        .split(b"\r\n\r\n", 1)[1])  # fmt: skip
    assert status["ready"] and status["sync"] is None  # a directory has no API server
    assert list(status["tables"]) == ["svc.json"]
    assert status["tables"]["svc.json"].startswith("sha256:")

    sync = gw.metrics.sync
    sync.listed()
    sync.lost("error")
    sync.heard -= 42
    out = raw_request(gw.admin_port, b"GET /readyz HTTP/1.1\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200"), out  # last good tables: still ready
    assert b"not synced with the API server for 42 s" in out
    status = json.loads(raw_request(gw.admin_port, b"GET /status HTTP/1.1\r\n\r\n")
                        .split(b"\r\n\r\n", 1)[1])  # fmt: skip
    assert status["ready"] and not status["sync"]["synced"]
    assert 42 <= status["sync"]["ageSeconds"] < 60
    assert status["sync"]["watchFailures"] == {"error": 1, "gone": 0}
    metrics = raw_request(gw.admin_port, b"GET /metrics HTTP/1.1\r\n\r\n").decode()
    assert "tether_gateway_tables_synced 0.0" in metrics
    assert 'tether_gateway_tables_watch_failures_total{reason="error"} 1.0' in metrics
    age = float(re.search(r"^tether_gateway_tables_sync_age_seconds (\S+)", metrics, re.M)[1])
    assert 42 <= age < 60
