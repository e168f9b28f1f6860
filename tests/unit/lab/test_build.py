"""Build bookkeeping: version flags, cache keys, and the stamp that prevents rebuilds."""

import json

from tether.lab import build


def test_ldflags_stamp_both_version_packages():
    flags = build.k8s_ldflags("v1.34.4")
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {pkg}.gitVersion=v1.34.4" in flags
        assert f"-X {pkg}.gitMajor=1" in flags and f"-X {pkg}.gitMinor=34" in flags


def test_cache_dir_is_keyed_by_versions_and_outside_the_repo(monkeypatch, tmp_path):
    monkeypatch.setenv("TETHER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("TETHER_LAB_BIN_DIR", raising=False)
    path = build.bin_dir("go1.26.8")
    assert path == tmp_path / "bin" / f"k8s-{build.K8S_VERSION}-etcd-{build.ETCD_VERSION}-go1.26.8"


def test_stamp_counts_only_when_every_binary_is_there(tmp_path):
    (tmp_path / build.STAMP).write_text(json.dumps({"modules": "x"}))
    assert build.read_stamp(tmp_path) is None
    for name in build.BINARIES:
        (tmp_path / name).write_bytes(b"")
    assert build.read_stamp(tmp_path) == {"modules": "x"}


def test_modules_digest_follows_go_sum(tmp_path):
    for rel in ("k8s/go.mod", "k8s/go.sum", "etcd/go.mod", "etcd/go.sum"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text(rel)
    before = build.modules_digest(tmp_path)
    (tmp_path / "k8s/go.sum").write_text("changed")
    assert build.modules_digest(tmp_path) != before


def test_committed_wrapper_modules_pin_the_versions():
    tools = build.tools_dir()
    k8s = (tools / "k8s" / "go.mod").read_text()
    assert f"k8s.io/kubernetes => k8s.io/kubernetes {build.K8S_VERSION}" in k8s
    assert "k8s.io/api => k8s.io/api v0.34.4" in k8s
    assert (
        f"go.etcd.io/etcd/server/v3 {build.ETCD_VERSION}" in (tools / "etcd" / "go.mod").read_text()
    )
