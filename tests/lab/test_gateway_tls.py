"""TLS termination on the lab: the gateway of deploy/gateway serves the kubernetes.io/tls
Secret ``tether-gateway-tls`` on :8443, reloads it when it changes without dropping open
connections, and may read no other Secret (its Role names that one)."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
import subprocess

import pytest
from websockets.asyncio.client import connect

from tests.unit.gateway.certs import Pki, serial_of
from tether.lab import Lab
from tether.lab.testing import wait_until

from .tether_deploy import EXAMPLES, TABLES_NS, gateway_pods, ready_endpoints, table_doc

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("tether_gateway")]

SECRET = "tether-gateway-tls"
SA = f"system:serviceaccount:{TABLES_NS}:tether-gateway"


def _put_secret(lab: Lab, tmp_path, cert_pem: bytes, key_pem: bytes) -> None:
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    crt.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    manifest = lab.kubectl("create", "secret", "tls", SECRET, "-n", TABLES_NS, f"--cert={crt}",
                           f"--key={key}", "--dry-run=client", "-o", "yaml")  # fmt: skip
    lab.apply(manifest)


def _serial(ip: str, name: str, ctx: ssl.SSLContext) -> int | None:
    try:
        with (
            socket.create_connection((ip, 8443), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=name) as s,
        ):
            return serial_of(s.getpeercert(binary_form=True))
    except (ssl.SSLError, OSError):
        return None  # no certificate served yet


def _https(ip: str, name: str, ctx: ssl.SSLContext) -> http.client.HTTPSConnection:
    c = http.client.HTTPSConnection(name, 8443, context=ctx, timeout=10)
    c.sock = ctx.wrap_socket(socket.create_connection((ip, 8443), timeout=10), server_hostname=name)
    return c


def _get(c: http.client.HTTPSConnection, path: str) -> tuple[int, str, bytes]:
    c.request("GET", path)
    r = c.getresponse()
    return r.status, r.getheader("X-Pod-Name", ""), r.read()


def test_the_gateway_may_read_only_its_tls_secret(lab: Lab):
    def can(*args: str) -> bool:
        out = lab.kubectl("auth", "can-i", *args, "-n", TABLES_NS, f"--as={SA}", check=False)
        return out.strip() == "yes"

    assert can("get", f"secret/{SECRET}") and can("watch", f"secret/{SECRET}")
    assert not can("get", "secret/some-other-secret")
    assert not can("list", "secrets")  # every Secret: no
    assert not can("update", f"secret/{SECRET}")


def test_secret_certificate_served_and_reloaded_without_dropping_connections(
    lab: Lab, namespace: str, tmp_path
):
    lab.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "httpbin.yaml"))
    wait_until(
        lambda: ready_endpoints(table_doc(lab, namespace, "httpbin", 8000)) == 3,
        timeout=90,
        what="httpbin table over 3 endpoints",
    )
    pki = Pki(tmp_path)
    name = f"httpbin.{namespace}"
    ctx = ssl.create_default_context(cafile=str(pki.ca_path))
    ip = gateway_pods(lab)[0]["status"]["podIP"]
    try:
        _put_secret(lab, tmp_path, *pki.leaf([name], serial=101))
        wait_until(lambda: _serial(ip, name, ctx) == 101, timeout=30, what="certificate 101")
        old = _https(ip, name, ctx)
        status, pod, body = _get(old, "/headers")
        assert status == 200 and pod
        assert json.loads(body)["headers"]["X-Forwarded-Proto"] == "https"
        out = subprocess.run(
            ["openssl", "s_client", "-connect", f"{ip}:8443", "-servername", name,
             "-CAfile", str(pki.ca_path), "-alpn", "h2,http/1.1"],
            input=b"", capture_output=True, timeout=20,
        ).stdout.decode()  # fmt: skip
        assert "Verify return code: 0 (ok)" in out and "ALPN protocol: http/1.1" in out

        _put_secret(lab, tmp_path, *pki.leaf([name], serial=102))  # cert-manager renews it
        wait_until(lambda: _serial(ip, name, ctx) == 102, timeout=30, what="certificate 102")
        assert _get(old, "/get")[0] == 200  # the connection made before the reload lives on
        assert serial_of(old.sock.getpeercert(binary_form=True)) == 101
        old.close()

        async def wss():
            uri = f"wss://{name}:8443/ws"
            async with connect(uri, ssl=ctx, host=ip, port=8443) as ws:
                hello = json.loads(await ws.recv())
                await ws.send("secure")
                return hello, await ws.recv()

        hello, echo = asyncio.run(wss())
        assert echo == "secure" and hello["headers"]["x-forwarded-proto"] == "https"
    finally:
        lab.kubectl("delete", "secret", SECRET, "-n", TABLES_NS, "--ignore-not-found")
    wait_until(lambda: _serial(ip, name, ctx) is None, timeout=30, what="certificate removed")
