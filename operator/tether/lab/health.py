"""Readiness checks used while a lab starts; they run on a thread inside the lab's namespace.

A failed wait raises LabError naming the step, whether the daemon is still alive, and the tail
of its log, so a CI log shows why the lab did not come up.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from tether.lab import layout, procs

if TYPE_CHECKING:
    from tether.lab.lab import Lab
    from tether.lab.netns import NetnsExecutor

APISERVER = f"https://127.0.0.1:{layout.APISERVER_PORT}"


def http_get(url: str, token: str = "", ca: str | None = None, timeout: float = 2.0):
    """Return (status, body bytes) of GET `url`; (0, b'') when nothing answers.

    TLS is verified against `ca` when given, otherwise not verified (the self-signed
    /healthz endpoints of controller-manager and scheduler).
    """
    ctx = ssl.create_default_context(cafile=ca) if ca else ssl._create_unverified_context()
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    # No proxy, whatever the environment says: these addresses exist only inside the lab.
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
    )
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, ssl.SSLError):
        return 0, b""


def admin_token(lab: Lab) -> str:
    """Return the admin bearer token of `lab` (first entry of its tokens.csv)."""
    line = (lab.paths.pki / "tokens.csv").read_text().splitlines()[0]
    return line.split(",", 1)[0]


class Checks:
    """Predicates on one starting lab, evaluated inside its namespace, with one deadline."""

    def __init__(self, lab: Lab, inside: NetnsExecutor, deadline: float) -> None:
        self.lab, self.inside, self.deadline = lab, inside, deadline
        self.ca = str(lab.paths.pki / "ca.crt")
        self.token = admin_token(lab)

    def wait(self, component: str, what: str, predicate) -> None:
        """Poll `predicate` (inside the namespace) until true; raise LabError at the deadline
        or as soon as `component`'s process has exited."""
        from tether.lab.lab import LabError

        while True:
            if self.inside.call(predicate):
                return
            pid = self.lab.daemons().get(component)
            dead = pid is not None and not procs.alive(*pid)
            if dead or time.monotonic() > self.deadline:
                why = f"{component} exited" if dead else "timed out"
                log = self.lab.paths.log(component)
                raise LabError(
                    f"lab {self.lab.name!r}: waiting for {what}: {why}.\n"
                    f"last lines of {log}:\n{procs.tail(log, 25)}"
                )
            time.sleep(0.1)

    def _api(self, path: str) -> dict | None:
        status, body = http_get(APISERVER + path, self.token, self.ca)
        return json.loads(body) if status == 200 else None

    def etcd_healthy(self) -> bool:
        """etcd answers /health with health true."""
        status, body = http_get(f"http://127.0.0.1:{layout.ETCD_CLIENT_PORT}/health")
        return status == 200 and b'"true"' in body

    def apiserver_ready(self) -> bool:
        """kube-apiserver's /readyz is ok (RBAC bootstrap roles included)."""
        return http_get(APISERVER + "/readyz", self.token, self.ca)[0] == 200

    def kcm_healthy(self) -> bool:
        """kube-controller-manager's /healthz is ok."""
        return http_get(f"https://127.0.0.1:{layout.KCM_PORT}/healthz")[0] == 200

    def scheduler_healthy(self) -> bool:
        """kube-scheduler's /healthz is ok."""
        return http_get(f"https://127.0.0.1:{layout.SCHEDULER_PORT}/healthz")[0] == 200

    def nodes_ready(self) -> bool:
        """Every lab node exists with condition Ready=True."""
        nodes = self._api("/api/v1/nodes")
        if not nodes:
            return False
        ready = {
            n["metadata"]["name"]
            for n in nodes["items"]
            for c in n.get("status", {}).get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True"
        }
        return all(layout.node_name(i) in ready for i in range(self.lab.meta()["nodes"]))

    def default_sa(self) -> bool:
        """The `default` ServiceAccount of namespace `default` exists."""
        return self._api("/api/v1/namespaces/default/serviceaccounts/default") is not None

    def kubelet_fresh(self) -> bool:
        """The running kubelet has registered its nodes and re-adopted its pods (ready file)."""
        pid = self.lab.daemons().get("kubelet")
        try:
            ready = json.loads((self.lab.paths.kubelet / "ready.json").read_text())
        except (OSError, ValueError):
            return False
        return pid is not None and ready.get("pid") == pid[0]
