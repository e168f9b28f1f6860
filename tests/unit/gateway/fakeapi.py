"""A fake Kubernetes API for the gateway's watchers: one aiohttp GET handler on loopback."""

from __future__ import annotations

from aiohttp import web


async def serve_api(path: str, handler) -> tuple[web.AppRunner, int]:
    """Serve ``handler`` for GET ``path`` on 127.0.0.1 (a free port); return the runner (the
    caller's ``finally`` cleans it up) and the port, already accepting connections."""
    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]
