"""WebSocket through the gateway with the real `websockets` client and servers, on both data
paths: messages both ways, the same affinity as any request, the handshake as the app sees
it, and tunnel timers that WebSocket pings keep alive."""

from __future__ import annotations

import asyncio
import http.client
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tether.hashing import generate_cookie_value, xxh64
from tether.models.table import HashKey

from .docs import cookie_key, make_document
from .tunnels import maglev_of, ws_backends


def _route(h, key, n=3, **gw):
    servers = ws_backends(h, n)
    eps = [("127.0.0.1", port, name) for name, port in servers]
    h.write_table("svc.json", make_document(eps, hash_key=key))
    gateway = h.gateway(**gw)
    h.wait(lambda: gateway.loaded)
    return gateway, servers, maglev_of([p for _, p in servers])


async def _session(port, path="/ws", headers=None, messages=(), **kw):
    """Connect, read the server's hello, echo messages: (hello, echoes, response, local)."""
    uri = f"ws://127.0.0.1:{port}{path}"
    async with connect(uri, additional_headers=headers or {}, max_size=None, **kw) as ws:
        hello = json.loads(await ws.recv())
        echoes = []
        for message in messages:
            await ws.send(message)
            echoes.append(await ws.recv())
        return hello, echoes, ws.response, ws.local_address


def _plain_backend(port, path, headers) -> str:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    r.read()
    c.close()
    return r.getheader("X-Backend")


def test_messages_pass_both_ways_intact(h):
    gw, _, _ = _route(h, cookie_key("sid", ttl=None), n=1)
    messages = ["", "hello", "é" * 5000, b"\x00\xff" * 7, b"x" * (2 << 20), "last"]
    _, echoes, response, _ = asyncio.run(_session(gw.port, messages=messages))
    assert echoes == messages
    assert response.status_code == 101


@pytest.mark.parametrize(
    ("key", "path", "headers", "value"),
    [
        (cookie_key("sid", ttl=None), "/ws", {"Cookie": "a=1; sid=alice"}, b"alice"),
        (HashKey(kind="header", name="x-user"), "/ws", {"X-User": "bob"}, b"bob"),
        (HashKey(kind="queryParameter", name="user"), "/ws?user=carol&x=1", {}, b"carol"),
        (HashKey(kind="sourceIp"), "/ws", {}, b"127.0.0.1"),
    ],
    ids=["cookie", "header", "query", "source-ip"],
)
def test_upgrade_lands_where_envoy_sends_that_key(h, key, path, headers, value):
    gw, servers, maglev = _route(h, key)
    expected = servers[maglev.choose(xxh64(value))][0]
    for _ in range(3):
        hello, _, _, _ = asyncio.run(_session(gw.port, path, headers))
        assert hello["backend"] == expected
    assert _plain_backend(gw.port, path, headers) == expected  # a plain request: same pod


def test_generated_cookie_comes_with_the_101_and_pins_the_next_connections(h):
    gw, servers, maglev = _route(h, cookie_key("sid", ttl=3600, path="/"))
    hello, _, response, local = asyncio.run(_session(gw.port))
    value = generate_cookie_value(f"127.0.0.1:{local[1]}", f"127.0.0.1:{gw.port}")
    assert response.headers.get_all("Set-Cookie") == [
        f'sid="{value}"; Max-Age=3600; Path=/; HttpOnly'  # no Secure: not a TLS listener
    ]
    expected = servers[maglev.choose(xxh64(value.encode()))][0]
    assert hello["backend"] == expected
    for _ in range(3):
        again, _, response, _ = asyncio.run(_session(gw.port, headers={"Cookie": f"sid={value}"}))
        assert again["backend"] == expected
        assert response.headers.get_all("Set-Cookie") == []


def test_the_app_sees_the_handshake_and_forwarding_headers(h):
    gw, _, _ = _route(h, cookie_key("sid", ttl=None), n=1)
    session = _session(gw.port, "/chat?room=1", {"X-App": "1"}, subprotocols=["chat"])
    hello, _, response, _ = asyncio.run(session)
    headers = dict(hello["headers"])
    assert hello["path"] == "/chat?room=1"
    assert headers["upgrade"] == "websocket" and headers["connection"] == "upgrade"
    assert headers["sec-websocket-version"] == "13" and headers["sec-websocket-key"]
    assert headers["sec-websocket-protocol"] == "chat" and headers["x-app"] == "1"
    assert headers["x-forwarded-for"] == "127.0.0.1" and headers["x-forwarded-proto"] == "http"
    assert response.headers["Sec-WebSocket-Protocol"] == "chat"
    assert response.headers["Upgrade"] == "websocket"
    assert response.headers["Connection"].lower() == "upgrade"


def test_pings_keep_a_quiet_tunnel_open_past_the_idle_timeout(h):
    gw, _, _ = _route(h, cookie_key("sid", ttl=None), n=1, tunnel_idle_timeout=0.5)

    async def quiet_but_pinging():
        async with connect(f"ws://127.0.0.1:{gw.port}/", ping_interval=0.1) as ws:
            await ws.recv()
            await asyncio.sleep(1.5)  # three idle timeouts without a message
            await ws.send("still here")
            return await ws.recv()

    assert asyncio.run(quiet_but_pinging()) == "still here"


def test_a_silent_tunnel_is_closed_after_the_idle_timeout(h):
    gw, _, _ = _route(h, cookie_key("sid", ttl=None), n=1, tunnel_idle_timeout=0.3)

    async def silent():
        async with connect(f"ws://127.0.0.1:{gw.port}/", ping_interval=None) as ws:
            await ws.recv()
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)

    asyncio.run(silent())
    h.wait(lambda: not gw.tunnels)
    assert sum(gw.metrics.tunnels_closed.values()) == 1
    assert set(gw.metrics.tunnels_closed) <= {"client idle", "upstream idle"}
