"""TLS termination on both data paths, checked with real clients (Python's ssl/http.client,
curl, openssl s_client, websockets): SNI, modern defaults, hot reload without dropping
connections, Secure cookies and X-Forwarded-Proto, wss, and the HTTP → HTTPS redirect."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import time
import warnings

import pytest
from websockets.asyncio.client import connect

from tether.gateway.config import TLSConfig

from .certs import Pki, serial_of, write, write_files
from .conftest import backend_of
from .docs import cookie_key, make_document
from .tunnels import ws_backends


@pytest.fixture
def pki(tmp_path):
    """A CA and a certificate directory holding three certificates: site (a and b, a mounted
    Secret's layout), wild (*.wild) and other (other.crt/other.key: the default, first by
    name)."""
    p = Pki(tmp_path)
    p.dir = tmp_path / "certs"
    p.dir.mkdir()
    write(p.dir, "site", *p.leaf(["a.example.test", "b.example.test"], serial=11))
    write(p.dir, "wild", *p.leaf(["*.wild.example.test"], serial=22))
    write_files(p.dir, "other", *p.leaf(["other.example.test"], serial=33))
    return p


def _gateway(h, pki, key=None, backends=1, **gw):
    bs = [h.backend(f"b{i}") for i in range(backends)]
    eps = [("127.0.0.1", b.port, b.name) for b in bs]
    h.write_table("svc.json", make_document(eps, algorithm="maglev" if key else None,
                                            hash_key=key))  # fmt: skip
    tls = TLSConfig(listen_host="127.0.0.1", listen_port=0, cert_dir=str(pki.dir))
    gateway = h.gateway(tls=gw.pop("tls", tls), **gw)
    h.wait(lambda: gateway.loaded and gateway.certs_loaded and len(gateway.certs.certs) == 3)
    return gateway, bs


def _client_ctx(pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca_path))


def _https(port: int, name: str, ctx: ssl.SSLContext, timeout: float = 10):
    """An HTTPS connection to the gateway with SNI ``name`` (verified against the CA)."""
    c = http.client.HTTPSConnection(name, port, context=ctx, timeout=timeout)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    c.sock = ctx.wrap_socket(raw, server_hostname=name)
    return c


def _get(c, path="/get", headers=None):
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    return r.status, r.getheaders(), r.read()


def _serial(port: int, name: str | None, pki) -> int:
    ctx = _client_ctx(pki)
    if name is None:
        ctx.check_hostname = False
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=name) as s,
    ):
        return serial_of(s.getpeercert(binary_form=True))


def test_https_requests_reach_the_app_with_proto_https(h, pki):
    gw, (b,) = _gateway(h, pki)
    c = _https(gw.tls_port, "a.example.test", _client_ctx(pki))
    for _ in range(3):  # keep-alive: one TLS connection, several requests
        status, _, body = _get(c, "/get", {"X-Forwarded-Proto": "http"})
        assert status == 200 and backend_of(body) == "b0"
    assert c.sock.version() in ("TLSv1.3", "TLSv1.2")
    assert c.sock.selected_alpn_protocol() is None  # the client offered none
    c.close()
    seen = dict(b.requests[-1]["headers"])
    assert seen["x-forwarded-proto"] == "https"  # the client's own claim is not trusted
    assert seen["x-forwarded-for"] == "127.0.0.1"


def test_sni_picks_the_certificate(h, pki):
    gw, _ = _gateway(h, pki)
    port = gw.tls_port
    assert _serial(port, "a.example.test", pki) == 11
    assert _serial(port, "B.Example.Test", pki) == 11  # case-insensitive
    assert _serial(port, "x.wild.example.test", pki) == 22  # wildcard, one label
    assert _serial(port, "other.example.test", pki) == 33
    with pytest.raises(ssl.SSLCertVerificationError):  # two labels: not the wildcard's name
        _serial(port, "y.x.wild.example.test", pki)
    assert _serial(port, None, pki) == 33  # no SNI: the default, first by name


def test_openssl_s_client_sees_modern_tls_and_http11_alpn(h, pki):
    gw, _ = _gateway(h, pki)
    out = _s_client(gw.tls_port, pki, "-servername", "b.example.test", "-alpn", "h2,http/1.1")
    assert "Verify return code: 0 (ok)" in out
    assert "New, TLSv1.3, Cipher is TLS_" in out
    assert "ALPN protocol: http/1.1" in out  # never h2: HTTP/2 is out of scope
    assert "subject=CN = a.example.test" in out
    assert "Compression: NONE" in out
    out = _s_client(gw.tls_port, pki, "-servername", "a.example.test", "-tls1_2")
    assert "New, TLSv1.2, Cipher is ECDHE-ECDSA-AES256-GCM-SHA384" in out  # AEAD, forward secret
    cbc = _s_client(gw.tls_port, pki, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256")
    assert "Cipher is (NONE)" in cbc or "New, " not in cbc  # a CBC suite is refused


def _s_client(port: int, pki, *args: str) -> str:
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
           "-CAfile", str(pki.ca_path), *args]  # fmt: skip
    r = subprocess.run(cmd, input=b"", capture_output=True, timeout=20)
    return (r.stdout + r.stderr).decode()


def test_old_tls_versions_are_refused(h, pki):
    gw, _ = _gateway(h, pki)
    assert _handshake(gw.tls_port, ssl.TLSVersion.TLSv1_1) is None
    assert _handshake(gw.tls_port, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"  # the same client
    gw13, _ = _gateway(h, pki, tls=TLSConfig("127.0.0.1", 0, str(pki.dir), min_version="1.3"))
    assert _handshake(gw13.tls_port, ssl.TLSVersion.TLSv1_2) is None
    assert _handshake(gw13.tls_port, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"


def _handshake(port: int, newest: ssl.TLSVersion) -> str | None:
    """The version a client offering TLS 1.0 up to ``newest`` gets (None: refused)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # old versions are deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = newest
    ctx.set_ciphers("ALL:@SECLEVEL=0")  # this client would accept anything
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="a.example.test") as s:
                return s.version()
        except (ssl.SSLError, ConnectionResetError):
            return None


def test_curl_is_a_happy_https_client(h, pki):
    gw, _ = _gateway(h, pki)
    name = "a.example.test"
    out = subprocess.run(
        ["curl", "-sS", "--cacert", str(pki.ca_path), "--resolve",
         f"{name}:{gw.tls_port}:127.0.0.1", "-w", "\\n%{http_code} %{http_version}",
         f"https://{name}:{gw.tls_port}/get", f"https://{name}:{gw.tls_port}/status/418"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    first, second = out.split("\n200 1.1", 1)
    assert json.loads(first)["backend"] == "b0"
    assert second.strip().endswith("418 1.1")  # curl asked for h2 (ALPN) and got HTTP/1.1


def test_certificates_reload_without_dropping_connections(h, pki):
    gw, _ = _gateway(h, pki)
    ctx = _client_ctx(pki)
    old = _https(gw.tls_port, "a.example.test", ctx)
    assert _get(old)[0] == 200 and serial_of(old.sock.getpeercert(True)) == 11
    write(pki.dir, "site", *pki.leaf(["a.example.test", "b.example.test"], serial=12))
    _until(lambda: _serial(gw.tls_port, "a.example.test", pki) == 12)
    assert _get(old)[0] == 200  # the connection made with the old certificate lives on
    assert serial_of(old.sock.getpeercert(True)) == 11
    errors = gw.metrics.tls_load_errors["site"]
    write(pki.dir, "site", b"not a certificate", b"nor a key")  # a bad update
    h.wait(lambda: gw.metrics.tls_load_errors["site"] == errors + 1)
    assert _serial(gw.tls_port, "a.example.test", pki) == 12  # the last good one stays
    os.unlink(pki.dir / "site")  # removed: its names fall to the default certificate
    _until(lambda: _default_now(gw.tls_port))
    assert _get(old)[0] == 200
    old.close()


def _default_now(port: int) -> bool:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="a.example.test") as s,
    ):
        return serial_of(s.getpeercert(binary_form=True)) == 33


def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_generated_cookies_are_secure_on_tls_only(h, pki):
    gw, _ = _gateway(h, pki, key=cookie_key("sid", ttl=60), backends=2)
    _, headers, _ = _get(_https(gw.tls_port, "a.example.test", _client_ctx(pki)))
    tls_cookie = [v for k, v in headers if k.lower() == "set-cookie"]
    assert len(tls_cookie) == 1 and tls_cookie[0].endswith("; Max-Age=60; HttpOnly; Secure")
    plain = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    _, headers, _ = _get(plain)
    plain_cookie = [v for k, v in headers if k.lower() == "set-cookie"]
    assert len(plain_cookie) == 1 and plain_cookie[0].endswith("; Max-Age=60; HttpOnly")


def test_wss_through_the_gateway(h, pki):
    servers = ws_backends(h, 1)
    h.write_table("svc.json", make_document([("127.0.0.1", servers[0][1], "w0")],
                                            hash_key=cookie_key("sid", ttl=0)))  # fmt: skip
    gw = h.gateway(tls=TLSConfig("127.0.0.1", 0, str(pki.dir)))
    h.wait(lambda: gw.loaded and gw.certs_loaded and len(gw.certs.certs) == 3)

    async def session():
        uri = f"wss://a.example.test:{gw.tls_port}/live"
        async with connect(uri, ssl=_client_ctx(pki), host="127.0.0.1", port=gw.tls_port) as ws:
            hello = json.loads(await ws.recv())
            await ws.send("over tls")
            return hello, await ws.recv(), ws.response

    hello, echo, response = asyncio.run(session())
    assert echo == "over tls" and hello["backend"] == "w0"
    assert dict(hello["headers"])["x-forwarded-proto"] == "https"
    assert response.headers["Set-Cookie"].endswith("; HttpOnly; Secure")


def test_a_handshake_that_never_comes_is_cut(h, pki):
    gw, _ = _gateway(h, pki, header_timeout=0.3)
    with (
        socket.create_connection(("127.0.0.1", gw.tls_port), timeout=10) as s,
        contextlib.suppress(ConnectionResetError),  # or reset: closed either way
    ):
        assert s.recv(1) == b""  # closed by the gateway well before the client's timeout


def test_plain_http_redirects_to_https_except_acme_challenges(h, pki):
    gw, (b,) = _gateway(h, pki, https_redirect_port=443)
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    status, headers, _ = _get(c, "/cart?id=1", {"Host": "shop.example.test:8080"})
    assert status == 308 and dict(headers)["location"] == "https://shop.example.test/cart?id=1"
    status, _, body = _get(c, "/.well-known/acme-challenge/tok", {"Host": "shop.example.test"})
    assert status == 200 and backend_of(body) == "b0"  # proxied, on the same connection
    assert [r["url"] for r in b.requests] == ["/.well-known/acme-challenge/tok"]
    gw2, _ = _gateway(h, pki, https_redirect_port=8443)
    c2 = http.client.HTTPConnection("127.0.0.1", gw2.port, timeout=10)
    status, headers, _ = _get(c2, "/", {"Host": "[::1]:80"})
    assert status == 308 and dict(headers)["location"] == "https://[::1]:8443/"
