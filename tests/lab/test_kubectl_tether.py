"""`kubectl tether watch` and `plan` on a real control plane, through kubectl's plugin mechanism.

The lab's own kubectl finds the installed `kubectl-tether` on PATH, as a user's would. A
watcher runs while the Deployment scales 3→5→2; every change it reports is checked against
the operator's own moved fraction (the ConfigMap's `tether.dev/keys-moved`, the rule's
`status.keysMoved`), and `plan`'s prediction made just before each scale is compared with the
table that the scale really produced.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tether.lab import Lab
from tether.lab.testing import wait_until
from tether.reconcile.transition import shares, transition

from ..e2e import watching
from .tether_deploy import EXAMPLES, table_doc

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("tether_operator")]

RULE = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin}
spec:
  host: httpbin
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: sticky-session-key, ttl: 0s}
%s
"""
MAGLEV = "        maglev: {tableSize: 65537}"


def plugin_env(lab: Lab) -> dict[str, str]:
    """The lab's environment with tether's scripts on PATH (where pip installed them)."""
    env = lab.env()
    env["PATH"] = f"{env['PATH']}{os.pathsep}{Path(sys.executable).parent}"
    kubectl = shutil.which("kubectl", path=env["PATH"])
    assert kubectl == str(lab.bin_dir / "kubectl"), kubectl  # the lab's own build comes first
    return env


def kubectl_tether(lab: Lab, *args: str) -> str:
    """Run `kubectl tether ARGS` and return its stdout (fails the test on a non-zero exit)."""
    out = subprocess.run(
        ["kubectl", "tether", *args], env=plugin_env(lab), capture_output=True, text=True
    )
    assert out.returncode == 0, f"kubectl tether {args}: {out.returncode} {out.stderr}"
    return out.stdout


def Watch(lab: Lab, *args: str) -> watching.Watch:
    """`kubectl tether watch ARGS -o json` on the lab, in the background."""
    return watching.Watch(plugin_env(lab), *args)


def _settled(n: int):
    """An update whose table lists exactly n pods, all ready."""
    return lambda u: len(u["pods"]) == n and all(p["ready"] for p in u["pods"])


def _check_change(u: dict, before: dict) -> None:
    """One change: the matrix adds up, and agrees with the operator's own figure."""
    ch = u["change"]
    cells = ch["matrix"]
    assert sum(c["fraction"] for c in cells) == pytest.approx(1.0, abs=1e-9)
    moved = sum(c["fraction"] for c in cells if c["fromEndpoint"] != c["toEndpoint"])
    assert moved == pytest.approx(ch["moved"], abs=1e-12)
    # the annotation carries 6 decimals of the operator's exact figure
    assert ch["moved"] == pytest.approx(u["operatorKeysMoved"], abs=1e-6), u
    old = {p["endpoint"]: p["share"] for p in before["pods"]}
    for endpoint, share in old.items():
        row = sum(c["fraction"] for c in cells if c["fromEndpoint"] == endpoint)
        assert row == pytest.approx(share, abs=1e-9)
    new = {p["endpoint"]: p["share"] for p in u["pods"]}
    for endpoint, share in new.items():
        col = sum(c["fraction"] for c in cells if c["toEndpoint"] == endpoint)
        assert col == pytest.approx(share, abs=1e-9)


def _check_phase(updates: list[dict], previous: dict) -> None:
    for u in updates:
        assert u["type"] == "change", u
        _check_change(u, previous)
        previous = u
    latencies = [u["change"]["sliceToTableSeconds"] for u in updates]
    timed = [x for x in latencies if x is not None]
    assert timed and all(0 < x < 10 for x in timed), latencies


def _within(actual: float, moved: dict) -> bool:
    """New pods' addresses are unknown, so a scale-up is one draw from plan's spread: within
    5 sd of the mean, or 5 points for Maglev's narrow spread with its rare far draws (the
    largest seen off-line: +1.7 points in 2,000 draws, +4.2 in one lab run)."""
    return abs(actual - moved["mean"]) <= max(5 * moved["sd"], 0.05)


def _report(what: str, predicted: dict, actual: float) -> None:
    m = predicted["moved"]
    print(
        f"\n[kubectl tether plan] {what}: predicted {100 * m['mean']:.1f} % ± {100 * m['sd']:.1f}"
        f" (range {100 * m['min']:.1f}–{100 * m['max']:.1f} %, {m['scenarios']} scenarios), "
        f"measured {100 * actual:.1f} %, error {100 * (actual - m['mean']):+.1f} points"
    )


def test_watch_follows_a_scale_3_5_2_and_plan_predicts_it(lab: Lab, namespace: str):
    ns = namespace
    lab.kubectl("apply", "-n", ns, "-f", str(EXAMPLES / "httpbin.yaml"))
    lab.apply(RULE % "", namespace=ns)
    three = wait_until(
        lambda: (
            (d := table_doc(lab, ns, "httpbin", 8000))
            and d.policy.type == "consistentHash"
            and sum(e.ready for e in d.endpoints) == 3
            and len(d.endpoints) == 3
            and d
        ),
        timeout=90,
        what="ring-hash table of 3 ready pods",
    )
    watch = Watch(lab, "httpbin", "-n", ns)
    try:
        (snap,) = watch.until(lambda u: u["type"] == "snapshot", what="snapshot")
        assert snap["algorithm"] == "ring-hash" and snap["configMap"].startswith("tt-httpbin-")
        assert {p["endpoint"]: p["share"] for p in snap["pods"]} == pytest.approx(shares(three))

        # 3 → 5
        plan5 = json.loads(
            kubectl_tether(lab, "plan", "httpbin", "-n", ns, "--replicas", "5", "-o", "json")
        )
        lab.kubectl("scale", "-n", ns, "deployment/httpbin", "--replicas=5")
        up = watch.until(_settled(5), what="a table of 5 ready pods")
        _check_phase(up, snap)
        five = table_doc(lab, ns, "httpbin", 8000)
        assert {p["endpoint"]: p["share"] for p in up[-1]["pods"]} == pytest.approx(shares(five))
        actual = transition(three, five).moved
        assert up[-1]["sinceStart"]["moved"] == pytest.approx(actual, abs=1e-12)
        current = next(p for p in plan5["predictions"] if p["isCurrent"])
        _report("ring-hash 3→5", current, actual)
        assert plan5["newPods"] == 2 and plan5["removal"] is None
        assert _within(actual, current["moved"])

        # 5 → 2: the pods that go are known, so the prediction is exact once they are named
        plan2 = json.loads(
            kubectl_tether(lab, "plan", "httpbin", "-n", ns, "--replicas", "2", "-o", "json")
        )
        lab.kubectl("scale", "-n", ns, "deployment/httpbin", "--replicas=2")
        down = watch.until(_settled(2), what="a table of 2 ready pods")
        _check_phase(down, up[-1])
        two = table_doc(lab, ns, "httpbin", 8000)
        gone = {e.pod for e in five.endpoints} - {e.pod for e in two.endpoints}
        current = next(p for p in plan2["predictions"] if p["isCurrent"])
        match = [s for s in current["scenarioList"] if set(s["removed"]) == gone]
        assert match, f"plan's scenarios {plan2['removal']} miss the pods really deleted: {gone}"
        actual = transition(five, two).moved
        _report("ring-hash 5→2", current, actual)
        assert match[0]["moved"] == pytest.approx(actual, abs=1e-12)

        # the rule's status holds the last change's figure, as the watch saw it
        last = down[-1]["change"]["moved"]
        wait_until(
            lambda: (
                abs(lab.kubectl_json("dr", "httpbin", "-n", ns)["status"]["keysMoved"] - last)
                <= 1e-4
            ),
            timeout=30,
            what=f"status.keysMoved = {last:.4f}",
        )
    finally:
        watch.stop()


def test_kubectl_conventions_once_plain_png_and_a_maglev_plan(lab: Lab, namespace: str, tmp_path):
    ns = namespace
    lab.kubectl("apply", "-n", ns, "-f", str(EXAMPLES / "httpbin.yaml"))
    lab.kubectl("scale", "-n", ns, "deployment/httpbin", "--replicas=2")
    lab.apply(RULE % MAGLEV, namespace=ns)
    two = wait_until(
        lambda: (
            (d := table_doc(lab, ns, "httpbin", 8000))
            and d.policy.algorithm == "maglev"
            and sum(e.ready for e in d.endpoints) == len(d.endpoints) == 2
            and d
        ),
        timeout=90,
        what="Maglev table of 2 ready pods",
    )
    listed = subprocess.run(  # kubectl's own view of its plugins
        ["kubectl", "plugin", "list"], env=plugin_env(lab), capture_output=True, text=True
    ).stdout
    assert str(Path(sys.executable).parent / "kubectl-tether") in listed.split()

    # KUBECONFIG is a list: the first file's current-context (namespace ns) wins, as in kubectl
    admin = yaml.safe_load(Path(lab.kubeconfig).read_text())
    ctx = admin["contexts"][0]["context"]
    first = tmp_path / "team.kubeconfig"
    first.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "team",
                "contexts": [{"name": "team", "context": {**ctx, "namespace": ns}}],
            }
        )
    )
    env = plugin_env(lab)
    env["KUBECONFIG"] = f"{first}{os.pathsep}{lab.kubeconfig}"
    minify = ["kubectl", "config", "view", "--minify", "-o", "jsonpath={..namespace}"]
    assert subprocess.run(minify, env=env, capture_output=True, text=True).stdout == ns
    once = subprocess.run(
        ["kubectl", "tether", "watch", "httpbin", "--once"],  # stdout is a pipe: plain
        env=env,
        capture_output=True,
        text=True,
    )
    assert once.returncode == 0, once.stderr
    (line,) = once.stdout.splitlines()
    assert f" snapshot {ns}/httpbin:8000 algorithm=maglev size=65537 " in line
    for e in two.endpoints:
        assert f"{e.pod}:" in line
    # --context and -n on the plugin's own command line; a missing Service says so
    other = kubectl_tether(
        lab,
        "--context",
        admin["current-context"],
        "-n",
        ns,
        "watch",
        "httpbin",
        "--once",
        "-o",
        "json",
    )
    assert json.loads(other)["service"] == {
        "namespace": ns,
        "name": "httpbin",
        "port": 8000,
        "subset": None,
    }
    missing = subprocess.run(
        ["kubectl", "tether", "watch", "nope", "-n", ns, "--once"],
        env=plugin_env(lab),
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and f"Service {ns}/nope not found" in missing.stderr

    # plan 2 → 3 under Maglev (and ring hash for comparison), with a picture, then scale for real
    png = tmp_path / "plan.png"
    plan = json.loads(
        kubectl_tether(
            lab, "plan", "httpbin", "-n", ns, "--replicas", "3", "-o", "json", "--png", str(png)
        )
    )
    assert png.read_bytes().startswith(b"\x89PNG")
    labels = [p["label"] for p in plan["predictions"]]
    assert labels == ["maglev (table 65537)", "ring-hash (min ring 1024)"]
    lab.kubectl("scale", "-n", ns, "deployment/httpbin", "--replicas=3")
    three = wait_until(
        lambda: (
            (d := table_doc(lab, ns, "httpbin", 8000))
            and sum(e.ready for e in d.endpoints) == len(d.endpoints) == 3
            and d
        ),
        timeout=90,
        what="Maglev table of 3 ready pods",
    )
    actual = transition(two, three).moved
    maglev = plan["predictions"][0]
    _report("maglev 2→3", maglev, actual)
    assert _within(actual, maglev["moved"])
