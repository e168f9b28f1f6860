"""Fixtures: a loop thread with backends and a gateway on real loopback sockets."""

from __future__ import annotations

import http.client
import json

import pytest

from .harness import Harness


@pytest.fixture(params=["native", "python"])
def h(request):
    """A harness; every socket-level test runs on the native lane and on pure Python."""
    from tether.gateway import native

    if request.param == "native":
        assert native.enable()  # the extension is built by `pip install -e .`
    else:
        native.disable()
    harness = Harness()
    try:
        yield harness
    finally:
        harness.close()
        native.enable()


def get(
    port: int, path: str = "/", *, method="GET", headers=None, body=None, conn=None, chunked=False
):
    """One request; returns (status, headers list, body bytes, connection)."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
    r = c.getresponse()
    data = r.read()
    return r.status, r.getheaders(), data, c


def backend_of(body: bytes) -> str:
    """Which backend answered (the harness backends put their name in a JSON body)."""
    return json.loads(body)["backend"]


def header(headers, name: str) -> list[str]:
    """All values of a response header (case-insensitive)."""
    return [v for k, v in headers if k.lower() == name.lower()]
