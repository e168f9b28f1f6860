"""A real browser (Debian's chromium, driven by playwright) through the gateway, lab and kind.

The seed's step 4 as a user does it: open the page, refresh, land on the same pod every time,
and see the cookie in the browser (its cookie store, HttpOnly). Then the same with persistent
sessions across a scale-up: the browser keeps its session cookie and its pod.

Where the browser runs: on the lab this test process has joined the lab's network namespace
(the session fixture), so chromium, its child, reaches the gateway's pod IP directly; on kind
it runs on the host and reaches the gateway through the port kind publishes on 127.0.0.1.
Either way chromium resolves the Service's name to that address (``--host-resolver-rules``), so
the request carries ``Host: httpbin.<namespace>`` as a browser pointed at the Service would.
Chromium runs headless with a fresh profile and without its background traffic (no network
leaves the machine).
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager

import pytest
from playwright.sync_api import sync_playwright

from tether.cli.demo_http import Reply, tagged
from tether.lab.testing import wait_until

from .deploy import EXAMPLES, gateway_pods, httpbin_settled, seed_rule, table_doc
from .test_gateway import Gateway

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tether_gateway")]

CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it); never a download
QUIET = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def browser(cluster, host: str, spki: str | None = None):
    """A headless chromium page whose ``host`` resolves to the gateway; yields (page, base URL).

    With ``spki`` (base64 SHA-256 of a certificate's public key) the page is HTTPS on the
    gateway's TLS listener, and chromium trusts exactly that key (``--ignore-certificate-
    errors-spki-list``: any other certificate still fails), as a browser trusting the site's CA.
    """
    if cluster.backend == "kind":
        ip, port = "127.0.0.1", cluster.tls_host_port if spki else cluster.host_port
    else:
        ip, port = gateway_pods(cluster)[0]["status"]["podIP"], 8443 if spki else 8080
    args = [*QUIET, f"--host-resolver-rules=MAP {host} {ip}"]
    if spki:
        args.append(f"--ignore-certificate-errors-spki-list={spki}")
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=args
        )
        try:
            yield ctx, f"{'https' if spki else 'http'}://{host}:{port}"
        finally:
            ctx.close()


def _open(ctx, url: str, path: str = "/get") -> Reply:
    """Navigate (or refresh) to ``path``, tagged so the access log names the pod."""
    target, tag = tagged(path)
    sent = time.time()
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    response = page.goto(url + target)
    cookies = [h["value"] for h in response.headers_array() if h["name"].lower() == "set-cookie"]
    return Reply(response.status, response.headers.get("x-pod-name", ""), cookies, tag, sent)


def _setup(cluster, ns: str) -> str:
    cluster.kubectl("apply", "-n", ns, "-f", str(EXAMPLES / "httpbin.yaml"))
    httpbin_settled(cluster, ns, 3)
    return f"httpbin.{ns}"


def test_seed_step_4_refresh_same_pod_and_the_cookie_in_the_browser(cluster, namespace: str):
    host = _setup(cluster, namespace)
    cluster.apply(seed_rule(namespace))
    wait_until(lambda: table_doc(cluster, namespace, "httpbin", 8000).policy.type
               == "consistentHash", timeout=30, what="the seed rule's table")  # fmt: skip
    answers = Gateway(cluster).answers
    with browser(cluster, host) as (ctx, url):
        first = wait_until(lambda: (r := _open(ctx, url)).set_cookies and r, timeout=60,
                           what="the gateway to set the sticky cookie")  # fmt: skip
        refreshes = [_open(ctx, url) for _ in range(5)]
        jar = {c["name"]: c for c in ctx.cookies()}
    answers.resolve([first, *refreshes])
    assert {r.status for r in refreshes} == {200}
    assert {r.pod for r in refreshes} == {first.pod}, "refresh: same pod"
    assert not any(r.set_cookies for r in refreshes)  # the browser sent it back
    cookie = jar["sticky-session-key"]
    assert cookie["httpOnly"] and len(cookie["value"].strip('"')) == 16
    assert first.set_cookies[0].startswith(f"sticky-session-key={cookie['value']}")


def test_persistent_session_survives_a_scale_up_in_the_browser(cluster, namespace: str):
    host = _setup(cluster, namespace)
    cluster.kubectl("label", "service", "httpbin", "-n", namespace,
                    "istio.io/persistent-session=shop")  # fmt: skip
    wait_until(lambda: table_doc(cluster, namespace, "httpbin", 8000).session, timeout=30,
               what="the session block")  # fmt: skip
    answers = Gateway(cluster).answers
    with browser(cluster, host) as (ctx, url):
        first = wait_until(lambda: (r := _open(ctx, url)).set_cookies and r, timeout=60,
                           what="the gateway to set the session cookie")  # fmt: skip
        session = {c["name"]: c for c in ctx.cookies()}["shop"]
        before = [_open(ctx, url) for _ in range(3)]
        cluster.kubectl("scale", "deployment/httpbin", "-n", namespace, "--replicas=5")
        httpbin_settled(cluster, namespace, 5)
        after = [_open(ctx, url) for _ in range(5)]
        jar = {c["name"]: c for c in ctx.cookies()}
    answers.resolve([first, *before, *after])
    assert {r.pod for r in before + after} == {first.pod}, "the session stayed on its pod"
    assert not any(r.set_cookies for r in before + after)
    assert session["httpOnly"] and jar["shop"]["value"] == session["value"]
    assert first.set_cookies[0].startswith(f"shop={session['value']}; Path=/; HttpOnly")


def test_seed_step_4_over_https_secure_cookie_in_the_browser(cluster, namespace: str, tmp_path):
    """The seed's step 4 on the gateway's TLS listener (deploy/gateway: :8443, the Secret
    ``tether-gateway-tls``): the browser gets the page over TLS 1.2+, the sticky cookie comes
    with ``Secure``, the browser stores it as secure, and refreshes stay on one pod."""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from tests.unit.gateway.certs import Pki

    from .deploy import TABLES_NS

    host = _setup(cluster, namespace)
    cluster.apply(seed_rule(namespace))
    wait_until(lambda: table_doc(cluster, namespace, "httpbin", 8000).policy.type
               == "consistentHash", timeout=30, what="the seed rule's table")  # fmt: skip
    cert_pem, key_pem = Pki(tmp_path).leaf([host], serial=7)
    spki = (
        x509.load_pem_x509_certificate(cert_pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "tls.crt").write_bytes(cert_pem)
    (tmp_path / "tls.key").write_bytes(key_pem)
    cluster.apply(cluster.kubectl("create", "secret", "tls", "tether-gateway-tls", "-n", TABLES_NS,
                                  f"--cert={tmp_path / 'tls.crt'}", f"--key={tmp_path / 'tls.key'}",
                                  "--dry-run=client", "-o", "yaml"))  # fmt: skip
    answers = Gateway(cluster).answers
    try:
        with browser(cluster, host, base64.b64encode(hashlib.sha256(spki).digest()).decode()) as (
            ctx,
            url,
        ):

            def secure_first() -> Reply | None:
                try:  # until the gateway serves the Secret (hot reload)
                    r = _open(ctx, url)
                except Exception:
                    return None
                return r if r.set_cookies else None

            first = wait_until(secure_first, timeout=60, what="the page over HTTPS, with a cookie")
            tls = ctx.pages[0].goto(url + tagged("/get")[0]).security_details()
            refreshes = [_open(ctx, url) for _ in range(5)]
            jar = {c["name"]: c for c in ctx.cookies()}
    finally:
        cluster.kubectl("delete", "secret", "tether-gateway-tls", "-n", TABLES_NS,
                        "--ignore-not-found")  # fmt: skip
    answers.resolve([first, *refreshes])
    assert tls["protocol"] in ("TLS 1.2", "TLS 1.3") and tls["subjectName"] == host
    assert {r.status for r in refreshes} == {200}
    assert {r.pod for r in refreshes} == {first.pod}, "refresh over HTTPS: same pod"
    cookie = jar["sticky-session-key"]
    assert cookie["secure"] and cookie["httpOnly"]
    assert "; Secure" in first.set_cookies[0]
