"""The pod backends' WebSocket echo and Socket.IO mode, on loopback with real clients."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request

import aiohttp
import socketio
from websockets.asyncio.client import connect

from tether.lab.kubelet.backend import Backend
from tether.lab.kubelet.httpbin import Pod
from tether.lab.kubelet.socketio_app import SocketIOBackend, backend_for

POD = Pod("web-0", "shop", "127.0.0.1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _serving(kind, body):
    server = kind(POD, _free_port())
    await server.start()
    try:
        return await body(server.port)
    finally:
        await server.stop(1.0)


def test_websocket_echo_greets_with_the_pod_then_echoes():
    async def body(port):
        async with connect(f"ws://127.0.0.1:{port}/chat?x=1") as ws:
            hello = json.loads(await ws.recv())
            out = []
            for message in ("hi", b"\x00\x01", ["frag", "mented"]):
                await ws.send(message)
                out.append(await ws.recv())
            return hello, out, ws.response.headers["X-Pod-Name"]

    hello, out, header = asyncio.run(_serving(Backend, body))
    assert (hello["pod"], hello["namespace"], hello["path"]) == ("web-0", "shop", "/chat?x=1")
    assert out == ["hi", b"\x00\x01", "fragmented"] and header == "web-0"


def test_plain_requests_and_other_upgrades_on_the_websocket_backend():
    async def body(port):
        def blocking():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/get", timeout=5) as r:
                plain = json.loads(r.read())["pod"]
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(
                    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
                )
                return plain, s.recv(4096).split(b"\r\n", 1)[0]

        return await asyncio.to_thread(blocking)

    plain, status_line = asyncio.run(_serving(Backend, body))
    assert plain == "web-0" and status_line == b"HTTP/1.1 400 Bad Request"


def test_socketio_mode_upgrades_from_polling_to_websocket():
    async def body(port):
        hello = asyncio.get_running_loop().create_future()
        sio = socketio.AsyncClient()
        sio.on("hello", lambda data: hello.set_result(data))
        await sio.connect(f"http://127.0.0.1:{port}", transports=["polling", "websocket"])
        first = await asyncio.wait_for(hello, 10)
        for _ in range(200):  # the upgrade completes in the background
            if sio.transport() == "websocket":
                break
            await asyncio.sleep(0.05)
        me = await sio.call("whoami", timeout=10)
        echoed = await sio.call("echo", {"n": 1}, timeout=10)
        await sio.disconnect()
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/") as r:
            root = (await r.json())["pod"], r.headers["X-Pod-Name"]
        return first, me, echoed, root

    first, me, echoed, root = asyncio.run(_serving(SocketIOBackend, body))
    assert first["pod"] == "web-0" and first["opened"] == "polling"
    assert me["pod"] == "web-0" and me["transport"] == "websocket" and me["opened"] == "polling"
    assert echoed == {"n": 1} and root == ("web-0", "web-0")


def test_the_container_env_selects_the_mode():
    spec = {"env": [{"name": "TETHER_LAB_BACKEND", "value": "socketio"}]}
    assert isinstance(backend_for(spec, POD, 80), SocketIOBackend)
    assert isinstance(backend_for({}, POD, 80), Backend)
