"""`tether gateway` as a process: serves from a table directory, logs JSON, exits 0 on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

from .conftest import get
from .docs import make_document


def test_cli_serves_logs_and_drains_on_sigterm(h, tmp_path):
    b = h.backend("b0")
    (tmp_path / "svc.json").write_text(
        make_document([("127.0.0.1", b.port, "b0")], algorithm=None).dumps()
    )
    cmd = [sys.executable, "-m", "tether", "gateway", "--listen", "127.0.0.1:0", "--admin", "",
           "--tables-dir", str(tmp_path), "--poll-interval", "0.05"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in proc.stderr:
            m = re.search(r"gateway listening on 127.0.0.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port
        status = None
        for _ in range(100):  # ready once the directory was read
            status = get(port, "/status/418")[0]
            if status == 418:
                break
        assert status == 418
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert lines[-1]["status"] == 418 and lines[-1]["upstream_pod"] == "b0"
