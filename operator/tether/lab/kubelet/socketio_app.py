"""The Socket.IO pod mode (container env ``TETHER_LAB_BACKEND=socketio``): a real
``python-socketio`` server (aiohttp) on podIP:port instead of the httpbin backend.

Engine.IO keeps each session in the memory of the pod that opened it: a long-polling session
that upgrades to WebSocket on another pod fails. So a client that ends on ``websocket`` and
hears the same pod over both transports proves the requests went to one pod.
- On connect the server emits ``hello`` ``{pod, opened}``: ``opened`` is the transport of the
  request that opened the Engine.IO session (``polling`` unless the client skipped it).
- ``whoami`` answers ``{pod, namespace, podIP, sid, transport, opened}``, ``transport`` being
  the session's transport now; ``echo`` answers its data.
- ``GET /`` and ``GET /healthz`` answer JSON naming the pod, with the ``X-Pod-*`` headers.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs

from tether.lab.kubelet.httpbin import Pod

MODE_ENV = "TETHER_LAB_BACKEND"


class SocketIOBackend:
    """One Socket.IO server for one pod port (same interface as backend.Backend)."""

    kind = "socket.io"

    def __init__(self, pod: Pod, port: int) -> None:
        self.pod, self.port = pod, port
        self.served = 0
        self._runner = None
        self._site = None

    def _app(self):
        import socketio
        from aiohttp import web

        pod = self.pod
        sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
        ident = {"pod": pod.name, "namespace": pod.namespace, "podIP": pod.ip}

        opened: dict[str, str] = {}

        @sio.event
        async def connect(sid, environ, auth=None):
            self.served += 1
            query = parse_qs(environ.get("QUERY_STRING", ""))
            opened[sid] = query.get("transport", [""])[0]
            await sio.emit("hello", {**ident, "opened": opened[sid]}, to=sid)

        @sio.event
        async def disconnect(sid, reason=None):
            opened.pop(sid, None)

        @sio.event
        async def whoami(sid, data=None):
            return {**ident, "sid": sid, "transport": sio.transport(sid), "opened": opened[sid]}

        @sio.event
        async def echo(sid, data=None):
            return data

        headers = {"X-Pod-Name": pod.name, "X-Pod-Namespace": pod.namespace, "X-Pod-IP": pod.ip}

        async def root(request):
            return web.json_response({**ident, "service": "tether-lab socket.io"}, headers=headers)

        app = web.Application()
        app.router.add_get("/", root)
        app.router.add_get("/healthz", root)
        sio.attach(app)
        return app

    async def start(self) -> None:
        """Listen on pod.ip:port; on return connections are accepted."""
        from aiohttp import web

        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.pod.ip, self.port, reuse_address=True)
        await self._site.start()

    @property
    def listening(self) -> bool:
        """True while the listening socket is open."""
        return self._site is not None

    async def stop(self, grace: float) -> int:
        """Stop accepting, close sessions within ``grace`` seconds; returns 0."""
        if self._runner is not None:
            self._site = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._runner.cleanup(), max(grace, 0.1))
        return 0


def backend_for(spec: dict, pod: Pod, port: int):
    """The backend a container's env asks for: Socket.IO, or the httpbin backend."""
    from tether.lab.kubelet.backend import Backend

    env = {e.get("name"): e.get("value") for e in spec.get("env", []) if "value" in e}
    if env.get(MODE_ENV) == "socketio":
        return SocketIOBackend(pod, port)
    return Backend(pod, port)
