"""Each lab pod's own API port (`tether.lab.apipath`): the mapping, and the fallback when
iptables cannot add the rule (the pod then uses 6443 and cannot be cut off alone)."""

from __future__ import annotations

import subprocess

import pytest

from tether.lab import apipath


def test_pod_port_is_unique_per_pod_address_and_none_elsewhere():
    assert apipath.pod_port("10.244.0.2") == 30002
    assert apipath.pod_port("10.244.1.0") == 30256
    ports = {apipath.pod_port(f"10.244.{i // 256}.{i % 256}") for i in range(8 * 4096)}
    assert len(ports) == 8 * 4096 and max(ports) < 65536  # 8 nodes of a /20 each
    for outside in ("10.240.0.1", "127.0.0.1", "", "not-an-ip"):
        assert apipath.pod_port(outside) is None


def test_open_path_uses_the_pod_port_or_falls_back_to_6443(monkeypatch):
    calls = []

    def iptables(*args):
        calls.append(args)
        ok = args[2] == "-A"  # `-C` (exists?) fails, the append succeeds
        return subprocess.CompletedProcess(args, 0 if ok else 1, "", "")

    monkeypatch.setattr(apipath, "_iptables", iptables)
    assert apipath.open_path("10.244.0.7") == "https://127.0.0.1:30007"
    assert calls[-1][:3] == ("-t", "nat", "-A") and "127.0.0.1:6443" in calls[-1]
    assert apipath.open_path("10.240.0.1") == "https://127.0.0.1:6443"  # hostNetwork

    def missing(*args):
        return subprocess.CompletedProcess(args, 127, "", "no iptables")

    monkeypatch.setattr(apipath, "_iptables", missing)
    assert apipath.open_path("10.244.0.7") == "https://127.0.0.1:6443"
    with pytest.raises(apipath.ApiPathError, match="no API port of its own"):
        apipath.cut("10.244.0.7")
