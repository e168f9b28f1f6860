"""A small asynchronous Kubernetes API client for the loopback kubelet (aiohttp, bearer token).

Only what a kubelet needs: GET/POST/PATCH/DELETE of JSON objects and list+watch streams.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml

MERGE_PATCH = "application/merge-patch+json"


class ApiError(RuntimeError):
    """The API answered with an error status; `status` and `body` carry the details."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: {status} {message}")
        self.status, self.body = status, body


def load_kubeconfig(path: Path) -> tuple[str, str, str]:
    """Return (server, token, CA file) from a lab kubeconfig (token auth, CA by path)."""
    doc = yaml.safe_load(path.read_text())
    cluster = doc["clusters"][0]["cluster"]
    return cluster["server"], doc["users"][0]["user"]["token"], cluster["certificate-authority"]


class Api:
    """JSON over HTTPS to one apiserver; one connection pool for the kubelet's lifetime."""

    def __init__(self, server: str, token: str, ca_file: str) -> None:
        self.server = server.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._ssl = ssl.create_default_context(cafile=ca_file)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared session (created on first use, inside the running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=32),
                timeout=aiohttp.ClientTimeout(total=30),
            )
        return self._session

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict | None = None,
        content_type: str = "application/json",
    ) -> dict:
        """Send one request and return the decoded JSON body; raise ApiError on >= 400."""
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else None
        async with self.session.request(
            method, self.server + path, data=data, params=params, headers=headers
        ) as resp:
            text = await resp.text()
            try:
                decoded = json.loads(text) if text else {}
            except ValueError:
                decoded = text
            if resp.status >= 400:
                raise ApiError(method, path, resp.status, decoded)
            return decoded

    async def get(self, path: str, **params: str) -> dict:
        """GET `path` with query `params`."""
        return await self.request("GET", path, params=params or None)

    async def post(self, path: str, body: dict) -> dict:
        """POST `body` to `path`."""
        return await self.request("POST", path, body)

    async def put(self, path: str, body: dict) -> dict:
        """PUT `body` at `path`."""
        return await self.request("PUT", path, body)

    async def merge_patch(self, path: str, body: dict) -> dict:
        """PATCH `path` with a JSON merge patch (lists in `body` replace whole lists)."""
        return await self.request("PATCH", path, body, content_type=MERGE_PATCH)

    async def delete(self, path: str, body: dict | None = None) -> dict:
        """DELETE `path` (with DeleteOptions `body`)."""
        return await self.request("DELETE", path, body)

    async def watch(self, path: str, resource_version: str, **params: str) -> AsyncIterator[dict]:
        """Yield watch events ({'type', 'object'}) from `resource_version` until the server
        ends the stream; bookmarks are yielded too (type BOOKMARK)."""
        query = {
            **params,
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "300",
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_read=330)
        async with self.session.get(self.server + path, params=query, timeout=timeout) as resp:
            if resp.status >= 400:
                raise ApiError("WATCH", path, resp.status, await resp.text())
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
