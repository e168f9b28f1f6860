"""Container env and command resolution follow Kubernetes' rules."""

import sys
from pathlib import Path

import pytest

from tether.lab.kubelet import env

POD = {
    "metadata": {"name": "op-1", "namespace": "tether-system", "uid": "u-1",
                 "labels": {"app": "tether"}, "annotations": {"a/b": "c"}},
    "spec": {"nodeName": "lab-node-1", "serviceAccountName": "tether"},
}  # fmt: skip


def test_expand_references_escapes_and_unknowns():
    e = {"A": "1", "B": "two"}
    assert env.expand("$(A)-$(B)", e) == "1-two"
    assert env.expand("$$(A)", e) == "$(A)"
    assert env.expand("$(MISSING)", e) == "$(MISSING)"


def test_env_values_field_refs_and_sources_in_order():
    container = {
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "ADDR", "value": "http://$(POD_IP):8080"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
        ],
    }
    sources = {("configmap", "cfg"): {"LEVEL": "debug"}, ("secret", "s"): {"pw": "hunter2"}}
    out = env.container_env(container, POD, "10.244.0.5", "10.240.0.1", sources, {"PATH": "/bin"})
    assert out["POD_NAME"] == "op-1" and out["NS"] == "tether-system"
    assert out["ADDR"] == "http://10.244.0.5:8080"
    assert out["APP"] == "tether" and out["CFG_LEVEL"] == "debug" and out["PW"] == "hunter2"
    assert out["PATH"] == "/bin"
    assert env.references(container) == {("configmap", "cfg"), ("secret", "s")}


def test_missing_required_key_is_a_config_error_but_optional_is_skipped():
    ref = {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}
    with pytest.raises(env.ConfigError, match="not found"):
        env.container_env({"env": [ref]}, POD, "", "", {}, {})
    ref["valueFrom"]["configMapKeyRef"]["optional"] = True
    assert "X" not in env.container_env({"env": [ref]}, POD, "", "", {}, {})


def test_command_defaults_to_tether_and_resolves_next_to_python(tmp_path: Path):
    (tmp_path / "tether").write_text("#!/bin/sh\n")
    argv = env.command_line({"args": ["run", "--id=$(POD_NAME)"]}, {"POD_NAME": "p"}, tmp_path)
    assert argv == [str(tmp_path / "tether"), "run", "--id=p"]
    argv = env.command_line({"command": ["python", "-c", "0"]}, {}, tmp_path)
    assert argv[0] == sys.executable
    assert env.command_line({"command": ["/bin/true"]}, {}, tmp_path) == ["/bin/true"]


@pytest.mark.parametrize(
    ("image", "is_tether"),
    [
        ("tether:dev", True),
        ("ghcr.io/x/tether:0.1", True),
        ("registry:5000/acme/tether@sha256:00", True),
        ("acme-tether:1", True),
        ("kennethreitz/httpbin", False),
        ("tether-gateway:1", False),
        ("tetherless", False),
    ],
)
def test_tether_image_detection(image, is_tether):
    assert env.is_tether_image(image) is is_tether
