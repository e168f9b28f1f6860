"""Persistent sessions over TLS and through WebSocket upgrades, on both data paths: the session
cookie is Secure on the TLS listener only, and an upgrade is pinned like any request."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
from types import SimpleNamespace

import pytest
from websockets.asyncio.client import connect

from tether.gateway.config import TLSConfig

from .certs import Pki, write
from .sessions_docs import keyring_json, session_document, session_policy, write_keys
from .tunnels import ws_backends

RING = keyring_json(("k1", b"1" * 32, 0, None))


@pytest.fixture
def pki(tmp_path):
    p = Pki(tmp_path)
    p.dir = tmp_path / "certs"
    p.dir.mkdir()
    write(p.dir, "site", *p.leaf(["a.example.test"], serial=11))
    return p


def _gateway(h, pki, tmp_path, backends):
    keys = str(tmp_path / "keys.json")
    write_keys(keys, RING)
    h.write_table("svc.json", session_document(backends, session_policy()))
    gw = h.gateway(
        session_keys_file=keys, tls=TLSConfig("127.0.0.1", 0, str(pki.dir)),
    )  # fmt: skip
    h.wait(lambda: gw.loaded and gw.certs_loaded and gw.keys_loaded and gw.certs.certs)
    return gw


def _cookies(headers) -> list[str]:
    return [v for k, v in headers if k.lower() == "set-cookie"]


def test_session_cookie_is_secure_on_tls_only(h, pki, tmp_path):
    backends = [h.backend(f"b{i}") for i in range(2)]
    gw = _gateway(h, pki, tmp_path, backends)
    ctx = ssl.create_default_context(cafile=str(pki.ca_path))
    c = http.client.HTTPSConnection("a.example.test", gw.tls_port, context=ctx, timeout=10)
    c.sock = ctx.wrap_socket(
        socket.create_connection(("127.0.0.1", gw.tls_port), timeout=10),
        server_hostname="a.example.test",
    )
    c.request("GET", "/get")
    r = c.getresponse()
    r.read()
    [tls] = _cookies(r.getheaders())
    assert tls.startswith('shop="') and tls.endswith("; Path=/; HttpOnly; Secure")
    plain = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    plain.request("GET", "/get")
    r = plain.getresponse()
    r.read()
    [clear] = _cookies(r.getheaders())
    assert clear.endswith("; Path=/; HttpOnly")


def test_websocket_upgrade_follows_the_session(h, pki, tmp_path):
    servers = ws_backends(h, 3)
    backends = [SimpleNamespace(name=name, port=port) for name, port in servers]
    gw = _gateway(h, pki, tmp_path, backends)
    plain = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    plain.request("GET", "/page")
    r = plain.getresponse()
    pod = r.read().decode()
    cookie = _cookies(r.getheaders())[0].split(";", 1)[0]

    async def socket_io():
        uri = f"ws://127.0.0.1:{gw.port}/live"
        seen = []
        for _ in range(5):
            async with connect(uri, additional_headers={"Cookie": cookie}) as ws:
                seen.append(json.loads(await ws.recv())["backend"])
        return seen

    assert asyncio.run(socket_io()) == [pod] * 5
