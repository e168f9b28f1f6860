"""The gateway end to end on the lab: operator + gateway from deploy/, real pods, real HTTP.

What a user checks in a browser or with curl: traffic spreads without a rule, one client sticks
to one pod with the seed rule, the Set-Cookie is Envoy's, sessions move as the table says on
scale-out, replicas agree, and deleting a pod under load fails no request.
"""

from __future__ import annotations

import http.client
import secrets
import threading
from collections import Counter

import pytest

from tether.lab import Lab
from tether.lab.testing import wait_until
from tether.reconcile.moved import moved_fraction

from .tether_deploy import EXAMPLES, TABLES_NS, gateway_pods, ready_endpoints, table_doc

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("tether_gateway")]

RULE = """
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {{name: httpbin, namespace: {ns}}}
spec:
  host: httpbin.{ns}.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {{name: sticky-session-key, ttl: 0s}}
"""


class Client:
    """HTTP/1.1 to one gateway pod with an explicit Host; optionally keeps a cookie."""

    def __init__(self, ip: str, host: str) -> None:
        self.conn = http.client.HTTPConnection(ip, 8080, timeout=10)
        self.host = host
        self.cookie: str | None = None
        self.set_cookies: list[str] = []

    def get(self, path: str, cookie: str | None = None) -> tuple[int, str]:
        headers = {"Host": self.host}
        if cookie or self.cookie:
            headers["Cookie"] = cookie or self.cookie
        self.conn.request("GET", path, headers=headers)
        resp = self.conn.getresponse()
        resp.read()
        for sc in resp.headers.get_all("Set-Cookie") or []:
            self.set_cookies.append(sc)
            self.cookie = sc.split(";", 1)[0]
        return resp.status, resp.getheader("X-Pod-Name", "")

    def close(self) -> None:
        self.conn.close()


def _gateway_ip(lab: Lab, index: int = 0) -> str:
    return gateway_pods(lab)[index]["status"]["podIP"]


def _setup(lab: Lab, ns: str, replicas: int = 3, rule: bool = True) -> str:
    lab.kubectl("apply", "-n", ns, "-f", str(EXAMPLES / "httpbin.yaml"))
    if replicas != 3:
        lab.kubectl("scale", "deployment/httpbin", "-n", ns, f"--replicas={replicas}")
    wait_until(
        lambda: ready_endpoints(table_doc(lab, ns, "httpbin", 8000)) == replicas,
        timeout=90,
        what=f"table with {replicas} endpoints",
    )
    if rule:
        lab.apply(RULE.format(ns=ns))
        wait_until(
            lambda: table_doc(lab, ns, "httpbin", 8000).policy.type == "consistentHash",
            timeout=30,
            what="consistent-hash table",
        )
    return f"httpbin.{ns}"


def _routes(ip: str, host: str, cookies: list[str]) -> list[str]:
    c = Client(ip, host)
    try:
        return [c.get("/get", cookie)[1] for cookie in cookies]
    finally:
        c.close()


def _sessions(n: int) -> list[str]:
    return [f'sticky-session-key="{secrets.token_hex(8)}"' for _ in range(n)]


def test_without_a_rule_every_pod_gets_traffic(lab: Lab, namespace: str):
    host = _setup(lab, namespace, rule=False)
    ip = _gateway_ip(lab)
    c = Client(ip, host)
    seen = wait_until(
        lambda: (r := Counter(c.get("/status/418")[1] for _ in range(30))) and len(r) == 3 and r,
        timeout=30,
        what="all 3 pods answering",
    )
    c.close()
    assert sum(seen.values()) == 30 and not c.set_cookies


def test_seed_rule_pins_a_client_and_sets_envoys_cookie(lab: Lab, namespace: str):
    host = _setup(lab, namespace)
    c = Client(_gateway_ip(lab), host)
    replies = [c.get("/status/333") for _ in range(50)]
    c.close()
    assert {status for status, _ in replies} == {333}
    assert len({pod for _, pod in replies}) == 1, "one client, one pod"
    assert len(c.set_cookies) == 1, c.set_cookies
    name, _, rest = c.set_cookies[0].partition("=")
    value, _, attrs = rest.partition(";")
    assert name == "sticky-session-key"
    assert value.startswith('"') and value.endswith('"') and len(value) == 18
    int(value.strip('"'), 16)
    assert attrs == " HttpOnly"  # ttl 0s: session cookie, no Max-Age, no Path


def test_scale_out_moves_the_sessions_the_table_says(lab: Lab, namespace: str):
    host = _setup(lab, namespace)
    ip = _gateway_ip(lab)
    cookies = _sessions(1000)
    before = _routes(ip, host, cookies)
    table_before = table_doc(lab, namespace, "httpbin", 8000)
    lab.kubectl("scale", "deployment/httpbin", "-n", namespace, "--replicas=5")
    wait_until(
        lambda: len(set(_routes(ip, host, cookies[:300]))) == 5,
        timeout=90,
        what="the gateway routing to 5 pods",
    )
    after = _routes(ip, host, cookies)
    table_after = table_doc(lab, namespace, "httpbin", 8000)
    assert ready_endpoints(table_after) == 5
    moved = sum(a != b for a, b in zip(before, after, strict=True)) / len(cookies)
    # the algorithm's expectation: the key-space fraction between the two tables clients saw
    expected = moved_fraction(table_before, table_after)
    assert expected >= 2 / 5  # nothing beats the optimum for 3 -> 5
    assert expected / 1.2 <= moved <= expected * 1.2, (moved, expected)


def test_three_gateway_replicas_agree_on_every_key(lab: Lab, namespace: str):
    host = _setup(lab, namespace)
    lab.kubectl("scale", "deployment/tether-gateway", "-n", TABLES_NS, "--replicas=3")
    try:
        pods = wait_until(
            lambda: len(p := gateway_pods(lab)) == 3 and p,
            timeout=90,
            what="3 Ready gateway replicas",
        )
        cookies = _sessions(1000)
        routes = [_routes(p["status"]["podIP"], host, cookies) for p in pods]
        assert routes[0] == routes[1] == routes[2]
        assert len(set(routes[0])) == 3
    finally:
        lab.kubectl("scale", "deployment/tether-gateway", "-n", TABLES_NS, "--replicas=1")


def test_deleting_a_pod_under_load_fails_no_request(lab: Lab, namespace: str):
    host = _setup(lab, namespace)
    ip = _gateway_ip(lab)
    cookies = _sessions(200)
    stop = threading.Event()
    results: list[tuple[int, str]] = []
    errors: list[str] = []

    def load(share: list[str]) -> None:
        c = Client(ip, host)
        i = 0
        while not stop.is_set():
            try:
                results.append(c.get("/get", share[i % len(share)]))
            except Exception as exc:  # a failed request is what this test counts
                errors.append(repr(exc))
                c.close()
                c = Client(ip, host)
            i += 1
        c.close()

    threads = [threading.Thread(target=load, args=(cookies[k::4],)) for k in range(4)]
    for th in threads:
        th.start()
    try:
        wait_until(lambda: len(results) > 200, timeout=30, what="load running")
        victim = Counter(pod for _, pod in results).most_common(1)[0][0]
        lab.kubectl("delete", "pod", victim, "-n", namespace, "--wait=true")
        wait_until(
            lambda: ready_endpoints(table_doc(lab, namespace, "httpbin", 8000)) == 3,
            timeout=60,
            what="replacement pod in the table",
        )
        mark = len(results)
        wait_until(lambda: len(results) > mark + 200, timeout=30, what="load after the delete")
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=30)
    bad = [r for r in results if r[0] != 200]
    assert not errors and not bad, (errors[:5], bad[:5], len(results))
    assert victim not in {pod for _, pod in results[mark:]}
