"""Admin listener (separate port): ``/metrics`` (Prometheus text), ``/healthz``, ``/readyz``,
``/sessions[?route=ns/name:port]`` (JSON: recent sessions per pod and per swap, sessions_seen).

``/healthz`` is 200 while the event loop runs. ``/readyz`` is 200 only after the first
complete table load and before shutdown starts (503 with the reason otherwise), so a
Kubernetes readiness probe takes the gateway out of its Service while it drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from urllib.parse import parse_qs

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)


def make_registry(collector) -> CollectorRegistry:
    """A registry with the gateway's collector plus process/platform/GC metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    process_collector.ProcessCollector(registry=registry)
    platform_collector.PlatformCollector(registry=registry)
    gc_collector.GCCollector(registry=registry)
    return registry


async def _handle(gw, registry, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
        writer.close()
        return
    parts = head.split(b"\r\n", 1)[0].split()
    path, _, query = parts[1].partition(b"?") if len(parts) > 1 else (b"/", b"", b"")
    ctype = b"text/plain; charset=utf-8"
    if path == b"/sessions":
        status, body, ctype = 200, await sessions_json(gw, query), b"application/json"
    elif path == b"/metrics":
        status, body, ctype = 200, generate_latest(registry), CONTENT_TYPE_LATEST.encode()
    elif path == b"/healthz":
        status, body = 200, b"ok\n"
    elif path == b"/readyz":
        reason = gw.not_ready_reason()
        status, body = (200, b"ready\n") if reason is None else (503, reason.encode() + b"\n")
    else:
        status, body = 404, b"not found; try /metrics, /healthz, /readyz, /sessions\n"
    reason_phrase = {200: b"OK", 404: b"Not Found", 503: b"Service Unavailable"}[status]
    writer.write(
        b"HTTP/1.1 %d %s\r\ncontent-type: %b\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % (status, reason_phrase, ctype, len(body))
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()
    writer.close()


async def sessions_json(gw, query: bytes) -> bytes:
    """The body of ``/sessions``: ``route`` (a table key) narrows it to one route."""
    route = parse_qs(query.decode("latin-1")).get("route", [None])[0]
    summary = await gw.sessions.summary(gw.router, gw.now(), route)
    return json.dumps(summary, separators=(",", ":")).encode() + b"\n"


async def start_admin(gw, host: str, port: int) -> asyncio.base_events.Server:
    """Start the admin listener; returns the asyncio server."""
    registry = make_registry(gw.metrics)
    return await asyncio.start_server(
        lambda r, w: _handle(gw, registry, r, w), host, port, reuse_address=True
    )
