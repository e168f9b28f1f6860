"""TLS certificates from Secrets against a fake API server (the lab test does it for real):
the queries RBAC can grant, list then watch, relist after 410, only kubernetes.io/tls."""

from __future__ import annotations

import asyncio
import base64
import json

from aiohttp import web

from tether.gateway.config import TLSConfig
from tether.gateway.tables.kube import ApiCredentials
from tether.gateway.tls.certs import CertStore
from tether.gateway.tls.sources import watch_certificates

from .certs import Pki
from .fakeapi import serve_api


def _secret(name: str, pair, rv: str, kind: str = "kubernetes.io/tls") -> dict:
    cert, key = pair
    data = {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()}
    return {"metadata": {"name": name, "resourceVersion": rv}, "type": kind, "data": data}


SECRETS = "/api/v1/namespaces/tether-system/secrets"


async def _until(predicate, what: str) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not reached: {what}")


def test_selected_secrets_list_watch_and_relist_after_410(tmp_path):
    pki = Pki(tmp_path)
    a1, a2, b1, c1 = (pki.leaf([n]) for n in ("a.test", "a.test", "b.test", "c.test"))
    state = {"lists": 0, "watches": 0, "queries": []}

    async def secrets(request: web.Request):
        state["queries"].append(dict(request.query))
        if request.query.get("watch") != "1":
            state["lists"] += 1
            items = ([_secret("a", a1, "1"), _secret("b", b1, "2"),
                      _secret("opaque", a1, "3", kind="Opaque")]
                     if state["lists"] == 1 else [_secret("c", c1, "20")])  # fmt: skip
            return web.json_response({"metadata": {"resourceVersion": "10"}, "items": items})
        state["watches"] += 1
        resp = web.StreamResponse()
        await resp.prepare(request)
        if state["watches"] == 1:
            for event in ({"type": "MODIFIED", "object": _secret("a", a2, "11")},
                          {"type": "DELETED", "object": _secret("b", b1, "12")}):  # fmt: skip
                await resp.write(json.dumps(event).encode() + b"\n")
            await state["relist"].wait()
            gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410}}
            await resp.write(json.dumps(gone).encode() + b"\n")
        else:
            await asyncio.sleep(0.1)
        return resp

    async def scenario():
        state["relist"] = asyncio.Event()
        runner, port = await serve_api(SECRETS, secrets)
        errors: list[str] = []
        store = CertStore(on_error=lambda name, why: errors.append(name))
        loaded: list[int] = []
        tls = TLSConfig(secret_selector="app=web")
        creds = ApiCredentials(host=f"http://127.0.0.1:{port}")
        task = asyncio.create_task(_run(tls, store, creds, loaded))
        try:
            await _until(lambda: loaded and state["watches"] >= 1 and "b" not in store.certs,
                         "first list and the watch events")  # fmt: skip
            first = (sorted(store.certs), store.certs["a"].not_after, list(errors))
            state["relist"].set()
            await _until(lambda: state["lists"] == 2 and sorted(store.certs) == ["c"], "relist")
        finally:
            task.cancel()
            await runner.cleanup()
        return first, loaded

    (names, _, errors), loaded = asyncio.run(scenario())
    assert names == ["a"] and errors == ["opaque"] and loaded == [1]
    assert all(q["labelSelector"] == "app=web" for q in state["queries"])


def test_named_secrets_are_each_watched_by_field_selector(tmp_path):
    pki = Pki(tmp_path)
    pairs = {"site": pki.leaf(["site.test"]), "api": pki.leaf(["api.test"])}
    queries: list[str] = []

    async def secrets(request: web.Request):
        field = request.query["fieldSelector"]
        queries.append(field)
        name = field.removeprefix("metadata.name=")
        if request.query.get("watch") != "1":
            items = [_secret(name, pairs[name], "1")] if name in pairs else []
            return web.json_response({"metadata": {"resourceVersion": "5"}, "items": items})
        await asyncio.sleep(0.1)
        return web.json_response({})

    async def scenario():
        runner, port = await serve_api(SECRETS, secrets)
        store = CertStore(first=("api", "site", "missing"))
        loaded: list[int] = []
        tls = TLSConfig(secrets=("api", "site", "missing"))
        creds = ApiCredentials(host=f"http://127.0.0.1:{port}")
        task = asyncio.create_task(_run(tls, store, creds, loaded))
        try:
            await _until(lambda: loaded, "every named Secret listed once")
        finally:
            task.cancel()
            await runner.cleanup()
        return store, loaded

    store, loaded = asyncio.run(scenario())
    assert loaded == [1]  # once, after all three first lists (one of them empty)
    assert sorted(store.certs) == ["api", "site"] and store.default.name == "api"
    assert {"metadata.name=api", "metadata.name=site", "metadata.name=missing"} <= set(queries)


async def _run(tls, store, creds, loaded) -> None:
    import tether.gateway.tables.kube as kube

    real = kube.load_credentials
    kube.load_credentials = lambda: creds  # the fake API server instead of a kubeconfig
    try:
        await watch_certificates(tls, store, 0.05, lambda: loaded.append(1))
    finally:
        kube.load_credentials = real
