"""`tether lab up/exec/status/down` on a second, separately named lab: down leaves nothing.

"Nothing" is checked the way an operator of the machine would: no process of the lab (daemons
and pod processes) runs, no process is left in its network namespace, `ip netns` no longer
lists it (its pod addresses went with it), and the state directory is gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tether.lab import Lab, netns, procs
from tether.lab.testing import wait_until

pytestmark = pytest.mark.lab

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: httpbin, ports: [{containerPort: 80}]}
      - {name: sidecar, image: tether:dev, command: [python, -c, "import time; time.sleep(3600)"]}
"""


def tether(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """Run the `tether` CLI as a user would (a separate process)."""
    return subprocess.run([sys.executable, "-m", "tether", *args], capture_output=True,
                          text=True, input=input, check=False)  # fmt: skip


def test_up_exec_status_down_leaves_nothing_behind(lab: Lab):
    name = f"pytest-down-{os.getpid()}"
    second = Lab(name)
    try:
        up = tether("lab", "up", "--name", name)
        assert up.returncode == 0, up.stderr
        assert f"tether lab exec --name {name}" in up.stdout
        nodes = tether("lab", "exec", "--name", name, "--", "kubectl", "get", "nodes", "-o", "name")
        assert nodes.stdout.split() == ["node/lab-node-1"], nodes.stderr
        applied = tether("lab", "exec", "--name", name, "--", "kubectl", "apply", "-f", "-",
                         input=DEPLOYMENT)  # fmt: skip
        assert applied.returncode == 0, applied.stderr

        def two_ready():
            out = tether(
                "lab", "exec", "--name", name, "--", "kubectl", "get", "pods", "-o", "json"
            )
            pods = json.loads(out.stdout)["items"]
            ready = [
                p for p in pods
                if any(c["type"] == "Ready" and c["status"] == "True"
                       for c in p["status"].get("conditions", []))
            ]  # fmt: skip
            return len(ready) == 2

        wait_until(two_ready, timeout=60, what="2 ready pods in the second lab")
        status = tether("lab", "status", "--name", name)
        assert status.returncode == 0 and json.loads(status.stdout)["up"] is True

        daemons = second.daemons()
        ino = netns.inode(second.netns)
        inside = set(netns.pids_in(ino))
        assert {pid for pid, _ in daemons.values()} <= inside
        assert len(inside) >= len(daemons) + 2, "the two sidecar processes should run in the lab"
        state_dir = second.paths.root
    finally:
        down = tether("lab", "down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert not any(procs.alive(pid, st) for pid, st in daemons.values())
    assert not list(netns.pids_in(ino)), "a process still runs in the deleted namespace"
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert second.netns not in listed
    assert not netns.path_of(second.netns).exists()
    assert not state_dir.exists()
    assert tether("lab", "status", "--name", name).returncode == 3
