"""The table directory source reads regular files only, size-capped, off the event loop:
FIFOs, sockets, directories, oversized files and symlinks out of the directory are skipped;
symlinks inside it (a mounted ConfigMap) are followed."""

from __future__ import annotations

import os
import socket
import threading

from tether.gateway.tables.directory import MAX_TABLE_BYTES, scan_files

from .conftest import get
from .docs import make_document


def _doc(port: int = 9, name: str = "httpbin") -> str:
    return make_document([("127.0.0.1", port, "b0")], algorithm=None, name=name).dumps()


def _hostile_dir(tmp_path, outside):
    d = tmp_path / "tables"
    d.mkdir()
    (d / "good.json").write_text(_doc(name="good"))
    os.mkfifo(d / "fifo.json")  # opening it for reading would block until a writer comes
    (d / "dir.json").mkdir()
    (outside / "secret.json").write_text(_doc(name="secret"))
    os.symlink(outside / "secret.json", d / "out.json")
    os.symlink("/dev/null", d / "null.json")
    os.symlink(os.path.relpath(outside / "secret.json", d), d / "up.json")  # ../outside/..
    with open(d / "big.json", "wb") as fh:
        fh.truncate(MAX_TABLE_BYTES + 1)  # sparse: costs no disk
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock.json"))
    # a mounted ConfigMap: name -> ..data/name, ..data -> ..<timestamp>
    (d / "..2026_01_01").mkdir()
    (d / "..2026_01_01" / "cm.json").write_text(_doc(name="cm"))
    os.symlink("..2026_01_01", d / "..data")
    os.symlink("..data/cm.json", d / "cm.json")
    return d, sock


def test_only_regular_files_inside_the_directory_are_read(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    d, sock = _hostile_dir(tmp_path, outside)
    result = {}
    seen: dict = {}
    skipped: dict = {}
    t = threading.Thread(target=lambda: result.update(r=scan_files(str(d), seen, skipped)))
    t.start()
    t.join(10)
    sock.close()
    assert not t.is_alive(), "the scan blocked (a FIFO was opened)"
    gone, changed = result["r"]
    assert sorted(changed) == ["cm.json", "good.json"] and gone == []
    assert sorted(skipped) == [
        "big.json", "dir.json", "fifo.json", "null.json", "out.json", "sock.json", "up.json"
    ]  # fmt: skip
    assert skipped["out.json"] == "symlink out of the table directory"
    assert skipped["fifo.json"] == "not a regular file"
    assert skipped["big.json"] == f"larger than {MAX_TABLE_BYTES} bytes"
    assert scan_files(str(d), seen, skipped) == ([], {})  # nothing changed: nothing re-read


def test_a_table_that_turns_into_a_symlink_out_is_dropped(tmp_path):
    d = tmp_path / "tables"
    d.mkdir()
    (d / "svc.json").write_text(_doc())
    seen: dict = {}
    assert list(scan_files(str(d), seen, {})[1]) == ["svc.json"]
    (tmp_path / "elsewhere.json").write_text(_doc(port=10))
    os.remove(d / "svc.json")
    os.symlink(tmp_path / "elsewhere.json", d / "svc.json")
    assert scan_files(str(d), seen, {}) == (["svc.json"], {})


def test_the_gateway_serves_beside_a_hostile_table_directory(h, tmp_path):
    """Old behaviour: the FIFO's open() blocked the event loop for good; now the gateway gets
    ready, routes by the regular files, and keeps answering."""
    b = h.backend("b0")
    outside = tmp_path / "outside"
    outside.mkdir()
    d, sock = _hostile_dir(tmp_path, outside)
    try:
        (d / "good.json").write_text(_doc(port=b.port, name="good"))
        gw = h.gateway(tables_dir=str(d))
        h.wait(lambda: gw.loaded)
        assert sorted(r.key for r in gw.router.routes) == ["default/cm:8000", "default/good:8000"]
        for _ in range(3):
            assert get(gw.port, "/get", headers={"Host": "good"})[0] == 200
    finally:
        sock.close()
