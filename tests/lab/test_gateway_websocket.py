"""WebSocket and Socket.IO through the gateway on the lab: operator and gateway from deploy/,
three real pods, real clients (python-socketio, websockets).

Socket.IO opens a session with long-polling and then upgrades it to WebSocket; the session
lives in the memory of the pod that opened it, so the upgrade must reach that pod. With the
cookie rule every client's upgrade lands on its own pod; without a rule (round robin) the
same clients cannot upgrade. A plain WebSocket lands where the same key sends plain requests.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
from collections import Counter

import aiohttp
import pytest
import socketio
from aiohttp.abc import AbstractResolver
from websockets.asyncio.client import connect

from tether.lab import Lab
from tether.lab.testing import wait_until

from .tether_deploy import EXAMPLES, gateway_pods, ready_endpoints, table_doc

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("tether_gateway")]

CHAT = """
apiVersion: v1
kind: Service
metadata: {{name: chat, namespace: {ns}}}
spec:
  selector: {{app: chat}}
  ports: [{{name: http, port: 8000, targetPort: 8000}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: chat, namespace: {ns}}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: chat}}}}
  template:
    metadata: {{labels: {{app: chat}}}}
    spec:
      containers:
        - name: chat
          image: example.com/chat:1
          env: [{{name: TETHER_LAB_BACKEND, value: socketio}}]
          ports: [{{containerPort: 8000}}]
          readinessProbe: {{httpGet: {{path: /healthz, port: 8000}}, periodSeconds: 2}}
"""

COOKIE_RULE = """
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {{name: chat, namespace: {ns}}}
spec:
  host: chat.{ns}.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {{name: io-session, ttl: 3600s}}
"""

QUERY_RULE = """
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {{name: httpbin, namespace: {ns}}}
spec:
  host: httpbin.{ns}.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpQueryParameterName: user
"""


class ToGateway(AbstractResolver):
    """Every name resolves to the gateway pod, as DNS would point a hostname at an ingress."""

    def __init__(self, ip: str) -> None:
        self.ip = ip

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": self.ip, "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]  # fmt: skip

    async def close(self) -> None:
        pass


def _gateway_ip(lab: Lab) -> str:
    return gateway_pods(lab)[0]["status"]["podIP"]


def _wait_table(lab: Lab, ns: str, svc: str, policy: str) -> None:
    wait_until(
        lambda: (d := table_doc(lab, ns, svc, 8000)) and ready_endpoints(d) == 3
        and d.policy.type == policy,
        timeout=90,
        what=f"{svc}: {policy} table over 3 endpoints",
    )  # fmt: skip


async def _socketio(ip: str, ns: str) -> dict:
    """One Socket.IO client as a browser app would be: its own cookie jar, polling first."""
    connector = aiohttp.TCPConnector(resolver=ToGateway(ip))
    async with aiohttp.ClientSession(connector=connector) as http:
        sio = socketio.AsyncClient(http_session=http, request_timeout=5)
        hello = asyncio.get_running_loop().create_future()
        sio.on("hello", lambda data: hello.done() or hello.set_result(data))
        out: dict = {"error": None}
        try:
            await sio.connect(f"http://chat.{ns}:8080", transports=["polling", "websocket"],
                              wait_timeout=5)  # fmt: skip
            out["hello"] = await asyncio.wait_for(hello, 10)
            out["transport"] = sio.transport()
            out["whoami"] = await sio.call("whoami", timeout=5)
            out["echo"] = await sio.call("echo", {"n": 7}, timeout=5)
        except (socketio.exceptions.SocketIOError, TimeoutError) as exc:
            out["error"] = repr(exc)
        finally:
            await sio.disconnect()
        out["cookies"] = {c.key: c.value for c in http.cookie_jar}
        return out


def test_socketio_upgrade_reaches_the_pod_that_holds_the_session(lab: Lab, namespace: str):
    lab.apply(CHAT.format(ns=namespace))
    lab.apply(COOKIE_RULE.format(ns=namespace))
    _wait_table(lab, namespace, "chat", "consistentHash")
    ip = _gateway_ip(lab)

    async def many():
        return await asyncio.gather(*(_socketio(ip, namespace) for _ in range(12)))

    sessions = asyncio.run(many())
    for s in sessions:
        assert s["error"] is None, s
        assert s["hello"]["opened"] == "polling"  # the session began with long-polling...
        assert s["transport"] == "websocket"  # ...and the client upgraded it
        me = s["whoami"]
        assert me["transport"] == "websocket" and me["opened"] == "polling"
        assert me["pod"] == s["hello"]["pod"]  # over both transports: one pod
        assert s["echo"] == {"n": 7}
        assert "io-session" in s["cookies"]  # the gateway's cookie pinned the requests
    pods = Counter(s["whoami"]["pod"] for s in sessions)
    assert len(pods) >= 2, pods  # each client has its own pod, not everyone the same one


def test_without_affinity_the_same_clients_cannot_upgrade(lab: Lab, namespace: str):
    lab.apply(CHAT.format(ns=namespace))
    _wait_table(lab, namespace, "chat", "simple")
    ip = _gateway_ip(lab)
    sessions = [asyncio.run(_socketio(ip, namespace)) for _ in range(2)]  # one at a time
    for s in sessions:  # round robin sends the upgrade to a pod that never heard of the sid
        assert s["error"] is not None or s.get("transport") != "websocket", s


def test_websocket_lands_where_the_key_sends_plain_requests(lab: Lab, namespace: str):
    lab.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "httpbin.yaml"))
    lab.apply(QUERY_RULE.format(ns=namespace))
    _wait_table(lab, namespace, "httpbin", "consistentHash")
    ip = _gateway_ip(lab)
    host = f"httpbin.{namespace}"

    def plain(user: str) -> str:
        c = http.client.HTTPConnection(ip, 8080, timeout=10)
        c.request("GET", f"/get?user={user}", headers={"Host": host})
        r = c.getresponse()
        r.read()
        c.close()
        return r.getheader("X-Pod-Name")

    async def ws(user: str):
        uri = f"ws://{host}:8000/ws?user={user}"
        async with connect(uri, host=ip, port=8080) as conn:
            hello = json.loads(await conn.recv())
            await conn.send(f"hi {user}")
            return hello, await conn.recv()

    users = [f"user{i}" for i in range(9)]
    expected = {u: plain(u) for u in users}
    for user in users:
        hello, echo = asyncio.run(ws(user))
        assert hello["pod"] == expected[user] and echo == f"hi {user}"
        assert hello["headers"]["x-forwarded-proto"] == "http"
    assert len(set(expected.values())) >= 2
