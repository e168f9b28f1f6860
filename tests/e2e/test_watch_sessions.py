"""`kubectl tether watch --sessions` and `plan --sessions` against real clients (issue 12, item 3).

Browsers keep the cookie the gateway generates for them (the seed rule: ring hash on
`sticky-session-key`, `ttl: 0s`) and keep their connection, so each stays on one gateway
replica; half of them go through each of the two replicas. Each makes two requests, then is
idle while the Deployment scales 3→5; then each comes back once. Which pod answered comes from
the lab backend's `X-Pod-Name`, or from the gateway's access log on kind. The watch reads each
gateway's admin `/sessions` through the API server's pod proxy and sums the replicas: for the
scale's last table change, the sessions it reports away from their pod (`away`,
`awayMatrix`: last pod → new pod) must be exactly the clients that changed pod.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tether.cli.demo_http import send_sessions

from .deploy import gateway_pods, httpbin_settled
from .test_gateway import Gateway, _setup
from .watching import Watch

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tether_gateway")]

CLIENTS = 120


def plugin_env(cluster) -> dict[str, str]:
    """The cluster's environment (its kubectl first) with tether's scripts on PATH."""
    env = cluster.env()
    env["PATH"] = f"{env['PATH']}{os.pathsep}{Path(sys.executable).parent}"
    return env


def _entrances(cluster) -> list[Gateway]:
    """Where clients enter: each gateway replica by pod IP on the lab; kind's host port (its
    NodePort spreads connections over the replicas) on kind."""
    if cluster.backend == "kind":
        return [Gateway(cluster)]
    pods = gateway_pods(cluster)
    assert len(pods) >= 2, "deploy/gateway runs two replicas"
    return [Gateway(cluster, p["status"]["podIP"]) for p in pods[:2]]


def _browse(gw: Gateway, host: str, n: int) -> tuple[list[str], list[str]]:
    """n browsers: each gets its cookie, comes back with it on the same connection; returns
    their cookies and the pod each one's requests reached (the same for both requests)."""
    cookies, replies = [], []
    for _ in range(n):
        b = gw.browser()
        first = b.get("/get", {"Host": host})
        second = b.get("/get", {"Host": host})
        b.close()
        assert first.set_cookies and not second.set_cookies and b.cookie
        cookies.append(b.cookie)
        replies += [first, second]
    gw.answers.resolve(replies)
    pods = [r.pod for r in replies]
    assert pods[0::2] == pods[1::2], "a browser's two requests reach one pod"
    return cookies, pods[0::2]


def test_watch_sessions_counts_exactly_the_sessions_that_change_pod(cluster, namespace):
    ns = namespace
    host = _setup(cluster, ns)
    gateways = _entrances(cluster)
    cookies, before = [], []
    for gw in gateways:
        c, p = _browse(gw, host, CLIENTS // len(gateways))
        cookies += c
        before += p
    assert len(set(before)) == 3

    env = plugin_env(cluster)
    plan = json.loads(
        subprocess.run(
            ["kubectl", "tether", "plan", "httpbin", "-n", ns, "--replicas", "5", "--sessions",
             "-o", "json"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    sessions = plan["sessions"]
    assert sessions["active"] == CLIENTS, sessions
    assert {p["pod"]: p["active"] for p in sessions["byPod"]} == Counter(before)

    watch = Watch(env, "httpbin", "-n", ns, "--sessions", "--sessions-interval", "0.5")
    try:
        now = watch.until(
            lambda u: u["type"] == "sessions" and u["change"] is None, what="current sessions"
        )[-1]
        assert now["active"] == CLIENTS and now["away"] == 0 and now["complete"], now
        assert {p["pod"]: p["active"] for p in now["pods"]} == Counter(before)

        cluster.kubectl("scale", "-n", ns, "deployment/httpbin", "--replicas=5")
        final = httpbin_settled(cluster, ns, 5).checksum
        changes: list[dict] = []
        counted: dict[str, dict] = {}

        def seen(u: dict) -> bool:
            if u["type"] == "change":
                changes.append(u)
            elif u["type"] == "sessions" and u["change"]:
                counted[u["change"]["toChecksum"]] = u
            return final in counted and all(c["checksum"] in counted for c in changes)

        watch.until(seen, timeout=120, what="the sessions of every table change")
    finally:
        watch.stop()

    after = [r.pod for r in gateways[0].answers.resolve(
        send_sessions(*gateways[0].addr, cookies, "/get", gateways[0].connect, {"Host": host})
    )]  # fmt: skip
    assert len(set(after)) == 5
    changed = Counter((a, b) for a, b in zip(before, after, strict=True) if a != b)
    last = counted[final]
    print(
        f"\n[watch --sessions] {CLIENTS} sessions over {len(last['gateways'])} gateways, "
        f"3→5 in {len(changes)} table change(s): {sum(changed.values())} changed pod; "
        f"reported away {last['away']}, moved per change "
        f"{[counted[c['checksum']]['moved'] for c in changes]}"
    )
    assert last["complete"] and last["active"] == CLIENTS
    assert {g["status"] for g in last["gateways"]} <= {"counted", "no active sessions"}
    assert last["away"] == sum(changed.values()) > 0
    assert {(c["from"], c["to"]): c["sessions"] for c in last["awayMatrix"]} == changed
    # each change's own moves: every session moved at least once on its way, never more
    # often than there were changes that moved keys
    moved = [counted[c["checksum"]]["moved"] for c in changes]
    assert sum(moved) >= last["away"]
    for c in changes:
        u = counted[c["checksum"]]
        assert u["change"]["fromChecksum"] == c["change"]["fromChecksum"]
        assert sum(x["sessions"] for x in u["matrix"]) == u["active"] == CLIENTS
        if c["change"]["moved"] == 0:  # a table whose keys did not move moved no session
            assert u["moved"] == 0

    # plan's expectation, Σ active(pod) × moved share of its keys, against this one outcome
    current = next(
        e
        for p, e in zip(plan["predictions"], sessions["predictions"], strict=True)
        if p["isCurrent"]
    )["expectedMoved"]
    actual = sum(changed.values())
    print(
        f"[plan --sessions] expected {current['mean']:.1f} ± {current['sd']:.1f} sessions to "
        f"move (range {current['min']:.1f}–{current['max']:.1f}), {actual} did"
    )
    # one draw: binomial spread of the sessions (≤ sqrt(mean)) plus the scenarios' spread
    assert abs(actual - current["mean"]) <= 5 * (math.sqrt(current["mean"]) + current["sd"]) + 1
