"""`kubectl tether`: the installed plugin, kubectl's flags and kubeconfig rules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from tether.cli import build_parser as tether_parser
from tether.cli.kubectl_plugin import build_parser, split_target
from tether.k8s.kubeconfig import connect


def _kubeconfig(path: Path, contexts: dict[str, str | None], current: str) -> Path:
    """A kubeconfig with one cluster per context (server https://<ctx>.example:6443)."""
    body = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "clusters": [
            {
                "name": c,
                "cluster": {
                    "server": f"https://{c}.example:6443",
                    "insecure-skip-tls-verify": True,
                },
            }
            for c in contexts
        ],
        "users": [{"name": c, "user": {"token": f"token-{c}"}} for c in contexts],
        "contexts": [
            {"name": c, "context": {"cluster": c, "user": c, **({"namespace": ns} if ns else {})}}
            for c, ns in contexts.items()
        ],
    }
    path.write_text(yaml.safe_dump(body))
    return path


def test_the_plugin_is_installed_where_kubectl_looks_for_it():
    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "kubectl-tether"]
    assert ep.value == "tether.cli.kubectl_plugin:main"
    exe = Path(sys.executable).parent / "kubectl-tether"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("usage: kubectl tether") and "watch" in out and "plan" in out
    assert shutil.which("kubectl-tether", path=str(exe.parent)) == str(exe)


def test_kubectl_flags_before_or_after_the_subcommand():
    args = build_parser().parse_args(["-n", "shop", "--context", "prod", "watch", "cart:8080"])
    assert (args.namespace, args.context, args.service) == ("shop", "prod", "cart:8080")
    args = build_parser().parse_args(["--context", "prod", "watch", "cart", "-n", "other"])
    assert (args.namespace, args.context) == ("other", "prod")
    args = build_parser().parse_args(["plan", "cart", "--replicas", "5", "--kubeconfig", "/k"])
    assert (args.kubeconfig, args.replicas, args.namespace) == ("/k", 5, None)


def test_tether_offers_the_same_subcommands():
    args = tether_parser().parse_args(["watch", "cart", "-n", "shop", "-o", "json", "--once"])
    assert (args.command, args.namespace, args.output, args.once) == ("watch", "shop", "json", True)
    args = tether_parser().parse_args(["plan", "cart:http", "--replicas", "2"])
    assert args.command == "plan" and split_target(args.service) == ("cart", "http")
    with pytest.raises(ValueError):
        split_target(":80")


def test_kubeconfig_context_and_namespace_as_kubectl(tmp_path, monkeypatch):
    cfg = _kubeconfig(tmp_path / "config", {"a": "team-a", "b": None}, current="a")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    c = connect(str(cfg))
    assert (c.namespace, c.context, c.api.configuration.host) == (
        "team-a",
        "a",
        "https://a.example:6443",
    )
    c = connect(str(cfg), context="b")
    assert (c.namespace, c.api.configuration.host) == ("default", "https://b.example:6443")
    assert connect(str(cfg), namespace="x").namespace == "x"


def test_kubeconfig_list_in_the_environment_is_merged(tmp_path, monkeypatch):
    one = _kubeconfig(tmp_path / "one", {"a": "team-a"}, current="a")
    two = _kubeconfig(tmp_path / "two", {"b": "team-b"}, current="b")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{one}:{two}")
    assert connect().namespace == "team-a"  # the first file's current-context wins
    c = connect(context="b")
    assert (c.namespace, c.api.configuration.host) == ("team-b", "https://b.example:6443")
