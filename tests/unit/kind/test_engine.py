"""The machine checks and the runc wrapper of the kind tier (no Docker needed)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tether.kind import engine

FULL = "CapBnd:\t000001ffffffffff\n"
NO_SYS_RESOURCE = "CapBnd:\t000001fffeffffff\n"  # this project's machines: bit 24 cleared


def test_workaround_only_when_the_bounding_set_lacks_cap_sys_resource():
    assert engine.needs_sys_resource_workaround(NO_SYS_RESOURCE)
    assert not engine.needs_sys_resource_workaround(FULL)


def test_dockerd_gets_the_wrapper_as_default_runtime_only_when_given(tmp_path):
    plain = engine.dockerd_command(None)
    assert not any("runtime" in a for a in plain)
    wrapped = engine.dockerd_command(tmp_path / "w")
    assert f"--add-runtime=tether-runc={tmp_path / 'w'}" in wrapped
    assert "--default-runtime=tether-runc" in wrapped


@pytest.fixture
def wrapper(tmp_path, monkeypatch):
    """The real wrapper script, pointed at a fake runc that records its arguments."""
    if not shutil.which("jq"):
        pytest.fail("jq is needed by the runc wrapper (apt-get install jq)", pytrace=False)
    fake = tmp_path / "runc"
    fake.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\n')
    fake.chmod(0o755)
    which = shutil.which
    monkeypatch.setattr(engine.shutil, "which", lambda n: str(fake) if n == "runc" else which(n))
    return engine.write_wrapper(tmp_path / "kind")


def _spec(caps: list[str]) -> dict:
    sets = ("bounding", "effective", "permitted", "inheritable")
    return {"process": {"capabilities": {s: list(caps) for s in sets}, "args": ["/sbin/init"]}}


def test_wrapper_drops_cap_sys_resource_from_a_bundle_and_runs_runc(wrapper, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(_spec(["CAP_SYS_ADMIN", "CAP_SYS_RESOURCE"])))
    args = ["--root", "/run/x", "create", "--bundle", str(bundle), "ctr-id"]
    subprocess.run([str(wrapper), *args], check=True)
    caps = json.loads((bundle / "config.json").read_text())["process"]["capabilities"]
    assert all(v == ["CAP_SYS_ADMIN"] for v in caps.values())
    assert (tmp_path / "args").read_text().split() == args


def test_wrapper_drops_it_from_an_exec_process_spec(wrapper, tmp_path):
    proc = tmp_path / "process.json"
    proc.write_text(json.dumps(_spec(["CAP_SYS_RESOURCE", "CAP_NET_ADMIN"])["process"]))
    subprocess.run([str(wrapper), "exec", "--process", str(proc), "ctr-id"], check=True)
    caps = json.loads(proc.read_text())["capabilities"]
    assert all(v == ["CAP_NET_ADMIN"] for v in caps.values())


def test_wrapper_leaves_other_commands_alone(wrapper, tmp_path):
    subprocess.run([str(wrapper), "state", "ctr-id"], check=True)
    assert (tmp_path / "args").read_text().split() == ["state", "ctr-id"]
