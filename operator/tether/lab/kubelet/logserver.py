"""The kubelet's HTTPS endpoint for `kubectl logs` (nodeIP:10250, `/containerLogs/...`).

kube-apiserver proxies `kubectl logs` here. Supported: `tailLines`, `previous`, `follow`,
`limitBytes`. Log files live under `<state>/logs/pods/<ns>_<pod>_<uid>/<container>/<n>.log`
(n = restart count), which is also where to read them directly.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from tether.lab import layout
from tether.lab.kubelet import faults

if TYPE_CHECKING:
    from tether.lab.kubelet.agent import Kubelet

FOLLOW_POLL = 0.2


def log_file(root: Path, ns: str, pod: str, container: str, previous: bool) -> Path | None:
    """Return the current (or previous) log file of a container, or None."""
    dirs = sorted(root.glob(f"{ns}_{pod}_*"), key=lambda p: p.stat().st_mtime)
    if not dirs:
        return None
    runs = sorted((dirs[-1] / container).glob("*.log"), key=lambda p: int(p.stem))
    if previous:
        return runs[-2] if len(runs) >= 2 else None
    return runs[-1] if runs else None


def tail_bytes(data: bytes, lines: int | None) -> bytes:
    """Return the last `lines` lines of `data` (all of it when `lines` is None)."""
    if lines is None:
        return data
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


class LogServer:
    """Serves container logs to the apiserver for every node of one kubelet."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.k = kubelet
        self.runner: web.AppRunner | None = None

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("ns", "pod", "container"))
        q = request.query
        previous = q.get("previous") == "true"
        path = log_file(self.k.paths.pod_logs, ns, pod, container, previous)
        if path is None:
            which = "previous terminated" if previous else "a"
            raise web.HTTPNotFound(text=f'{which} container "{container}" in pod "{pod}" not found')
        data = tail_bytes(path.read_bytes(), int(q["tailLines"]) if "tailLines" in q else None)
        if "limitBytes" in q:
            data = data[: int(q["limitBytes"])]
        if q.get("follow") != "true" or previous:
            return web.Response(body=data, content_type="text/plain")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(data)
        offset = path.stat().st_size
        while self._running(ns, pod, container):
            await asyncio.sleep(FOLLOW_POLL)
            size = path.stat().st_size
            if size > offset:
                with open(path, "rb") as f:
                    f.seek(offset)
                    await resp.write(f.read(size - offset))
                offset = size
        return resp

    def _running(self, ns: str, pod: str, container: str) -> bool:
        for w in self.k.workers.values():
            if (w.namespace, w.name) == (ns, pod):
                return any(c.name == container and c.state.running_since for c in w.containers)
        return False

    async def start(self) -> None:
        """Listen on every node's IP, port 10250, with the lab's kubelet certificate."""
        app = web.Application()
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self._logs)
        app.router.add_get("/healthz", lambda _r: web.Response(text="ok"))
        app.router.add_routes(faults.routes(self.k))
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        pki = self.k.paths.pki
        ctx.load_cert_chain(pki / "kubelet.crt", pki / "kubelet.key")
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        for i in range(len(self.k.nodes)):
            site = web.TCPSite(self.runner, layout.node_ip(i), layout.KUBELET_PORT, ssl_context=ctx)
            await site.start()

    async def stop(self) -> None:
        """Stop listening."""
        if self.runner is not None:
            await self.runner.cleanup()
