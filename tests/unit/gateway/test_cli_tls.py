"""`tether gateway` flags for TLS and Upgrades: refused combinations, and a TLS process."""

from __future__ import annotations

import http.client
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

from .certs import Pki, write_files
from .docs import make_document

BASE = [sys.executable, "-m", "tether", "gateway", "--listen", "127.0.0.1:0", "--admin", ""]


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (["--tls-dir", "/tmp"], "needs --tls-listen"),
        (["--tls-listen", "127.0.0.1:0"], "exactly one certificate source"),
        (["--tls-listen", "127.0.0.1:0", "--tls-dir", "/tmp", "--tls-secrets", "a"],
         "exactly one certificate source"),
        (["--tls-listen", "127.0.0.1:0", "--tls-dir", "/tmp", "--tls-min-version", "1.1"],
         "must be 1.2 or 1.3"),
        (["--https-redirect-port", "443"], "needs --tls-listen"),
        (["--upgrade-protocols", "websocket,h2c"], "h2c cannot be tunnelled"),
    ],
)  # fmt: skip
def test_bad_flag_combinations_exit_2(flags, why, tmp_path):
    r = subprocess.run([*BASE, "--tables-dir", str(tmp_path), *flags], capture_output=True,
                       text=True, timeout=30)  # fmt: skip
    assert r.returncode == 2 and why in r.stderr


def test_cli_serves_https_from_a_certificate_directory(h, tmp_path):
    b = h.backend("b0")
    tables, certs = tmp_path / "tables", tmp_path / "certs"
    tables.mkdir()
    certs.mkdir()
    (tables / "svc.json").write_text(
        make_document([("127.0.0.1", b.port, "b0")], algorithm=None).dumps()
    )
    pki = Pki(tmp_path)
    write_files(certs, "site", *pki.leaf(["site.test"]))
    cmd = [*BASE, "--tables-dir", str(tables), "--tls-listen", "127.0.0.1:0", "--tls-dir",
           str(certs), "--poll-interval", "0.05", "--access-log", "off"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in proc.stderr:
            m = re.search(r"TLS 127.0.0.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port
        ctx = ssl.create_default_context(cafile=str(pki.ca_path))
        status = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # ready once the certificate and the table are read
            try:
                c = http.client.HTTPSConnection("site.test", port, context=ctx, timeout=5)
                raw = socket.create_connection(("127.0.0.1", port), timeout=5)
                c.sock = ctx.wrap_socket(raw, server_hostname="site.test")
                c.request("GET", "/status/418")
                status = c.getresponse().status
                c.close()
            except (ssl.SSLError, OSError):
                status = None
            if status == 418:
                break
            time.sleep(0.02)
        assert status == 418
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
