"""Readiness and liveness probes (httpGet and tcpSocket) with Kubernetes' thresholds.

Lab deviation, on purpose: while a container is not yet ready it is probed every
min(periodSeconds, 1) seconds instead of every periodSeconds, so pods become Ready quickly;
once ready, periodSeconds applies. exec and grpc probes are not run (they count as success).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("tether.lab.kubelet")


def resolve_port(port: int | str, container: dict) -> int:
    """Return the numeric port of a probe `port` (a number or a container port's name)."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"probe port {port!r} is not a named port of container {container['name']}")


async def http_get(host: str, port: int, path: str, headers: list[dict], timeout: float) -> bool:
    """Return True when GET path answers with a status in [200, 400) within `timeout`."""
    request = (
        f"GET {path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.34\r\n"
    )
    request += "".join(f"{h['name']}: {h['value']}\r\n" for h in headers)
    request += "Connection: close\r\n\r\n"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(request.encode("latin-1"))
                line = await reader.readline()
            finally:
                writer.close()
        parts = line.split()
        return len(parts) >= 2 and 200 <= int(parts[1]) < 400
    except (OSError, TimeoutError, ValueError):
        return False


async def tcp_open(host: str, port: int, timeout: float) -> bool:
    """Return True when a TCP connection to host:port opens within `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
        return True
    except (OSError, TimeoutError):
        return False


def checker(probe: dict, container: dict, pod_ip: str) -> Callable | None:
    """Return an async no-argument check for `probe`, or None when there is nothing to run."""
    timeout = float(probe.get("timeoutSeconds", 1))
    if "httpGet" in probe:
        g = probe["httpGet"]
        host, port = g.get("host") or pod_ip, resolve_port(g["port"], container)
        return lambda: http_get(host, port, g.get("path", "/"), g.get("httpHeaders", []), timeout)
    if "tcpSocket" in probe:
        t = probe["tcpSocket"]
        host, port = t.get("host") or pod_ip, resolve_port(t["port"], container)
        return lambda: tcp_open(host, port, timeout)
    return None


async def run_readiness(probe: dict, check: Callable, set_ready: Callable[[bool], None]) -> None:
    """Probe forever, calling set_ready(True/False) when the thresholds say the state flips."""
    period = float(probe.get("periodSeconds", 10))
    success_needed = int(probe.get("successThreshold", 1))
    failure_needed = int(probe.get("failureThreshold", 3))
    await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
    ready, successes, failures = False, 0, 0
    while True:
        ok = await check()
        successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
        if not ready and successes >= success_needed:
            ready = True
            set_ready(True)
        elif ready and failures >= failure_needed:
            ready = False
            set_ready(False)
        await asyncio.sleep(period if ready else min(period, 1.0))


async def run_liveness(probe: dict, check: Callable, on_failure: Callable) -> None:
    """Probe every periodSeconds; after failureThreshold failures in a row await on_failure()
    (the caller kills the container, which then restarts per restartPolicy) and return."""
    period = float(probe.get("periodSeconds", 10))
    failure_needed = int(probe.get("failureThreshold", 3))
    await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
    failures = 0
    while True:
        failures = 0 if await check() else failures + 1
        if failures >= failure_needed:
            await on_failure()
            return
        await asyncio.sleep(period)
