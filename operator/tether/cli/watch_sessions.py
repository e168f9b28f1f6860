"""Real sessions for `kubectl tether watch --sessions` and `plan`: the gateways' own counts.

Each gateway pod serves a summary of its recent sessions on its admin port (``/sessions``,
``tether.gateway.sessions_seen``). It is read through the API server's pod proxy
(``GET /api/v1/namespaces/NS/pods/POD:PORT/proxy/sessions?route=KEY``) with the user's own
kubeconfig credentials: no port-forward, and the user's RBAC (get/list on pods and get on
``pods/proxy`` in the gateways' namespace). No key hash leaves a gateway; only counts do.

``SessionsPoller`` reads every Ready gateway pod each ``interval`` seconds and hands the
results to the watch as ``sessions`` events. ``Sessions`` matches each table change (old → new
table checksum) with the swap every gateway replica recorded for it, and sums them. A client
whose requests reach several gateway replicas is one session on each of them, so it counts
once per replica that saw it within the window: a browser keeps its keep-alive connection, and
so its gateway, but a client spread over replicas counts more than once.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tether.k8s.watch import Event

GATEWAY_SELECTOR = "app.kubernetes.io/name=tether-gateway"
ADMIN_PORT = 9901
WAIT_SECONDS = 30.0  # a change some gateway has not reported by then is shown without it


def _ready(pod: dict) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
    return ready and not (pod.get("metadata") or {}).get("deletionTimestamp")


def read_gateways(cluster, namespace: str, selector: str, port: int, route: str) -> list[dict]:
    """``[{"pod", "summary" | "error"}]`` for every Ready gateway pod, read through the pod
    proxy; a gateway that cannot be read carries the reason instead of a summary."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from tether.k8s.watch import list_items

    core = client.CoreV1Api(cluster.api)
    pods, _ = list_items(core.list_namespaced_pod, namespace, label_selector=selector)
    out = []
    for pod in sorted((p for p in pods if _ready(p)), key=lambda p: p["metadata"]["name"]):
        name = pod["metadata"]["name"]
        try:
            request = cluster.api.param_serialize(
                method="GET",
                resource_path="/api/v1/namespaces/{namespace}/pods/{name}/proxy/sessions",
                path_params={"namespace": namespace, "name": f"{name}:{port}"},
                query_params=[("route", route)],
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            resp = cluster.api.call_api(*request, _request_timeout=10)
            resp.read()
            if resp.status != 200:
                raise ApiException(status=resp.status, reason=resp.data[:200].decode("latin-1"))
            out.append({"pod": name, "summary": json.loads(resp.data)})
        except (ApiException, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            status = getattr(exc, "status", None)
            out.append({"pod": name, "error": f"{status} {reason}" if status else reason})
    return out


class SessionsPoller(threading.Thread):
    """Reads the gateways every ``interval`` seconds once ``route()`` names a table."""

    def __init__(self, sink, route, cluster, namespace, selector, port, interval) -> None:
        super().__init__(name="watch-sessions", daemon=True)
        self.sink, self.route = sink, route
        self.args = (cluster, namespace, selector, port)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        """Poll until stopped; a failing poll is reported as one event with the reason."""
        while not self.stopped.is_set():
            key = self.route()
            if key is not None:
                try:
                    items = read_gateways(*self.args, key)
                except Exception as exc:  # listing the gateways failed: say so, keep polling
                    items = [{"pod": None, "error": str(exc)}]
                now = time.monotonic()
                self.sink(Event("sessions", "POLL", {"route": key}, tuple(items), now,
                                datetime.now(UTC)))  # fmt: skip
            self.stopped.wait(self.interval)


@dataclass
class _Expect:
    """A table change waiting for the gateways' counts of its swap."""

    before: str | None
    after: str
    since: float
    found: dict[str, dict | None] = field(default_factory=dict)  # gateway → record (None: 0)


@dataclass(frozen=True)
class SessionsUpdate:
    """Sessions to show: the gateways' current ones (``change`` None) or a change's counts."""

    at: datetime
    route: str
    change: tuple[str | None, str] | None
    gateways: tuple[dict, ...]
    type: str = "sessions"
    view = None  # for the picture (a sessions update draws nothing)


def _resolve(summary: dict, route: str, exp: _Expect) -> tuple[bool, dict | None]:
    """(resolved, swap record or None for "no active session at that swap") for one gateway."""
    routes = [r for r in summary.get("routes") or () if r.get("route") == route]
    if not routes:
        return False, None
    r = routes[0]
    for swap in r.get("swaps") or ():
        if swap.get("toChecksum") == exp.after:
            return True, swap
    if r.get("checksum") == exp.after:
        return True, None
    if any(s.get("fromChecksum") == exp.after for s in r.get("swaps") or ()):
        return True, None  # it passed through that table without active sessions
    return False, None


class Sessions:
    """The latest summaries per gateway, and table changes matched with their swaps."""

    def __init__(self) -> None:
        self.latest: dict[str, dict] = {}
        self.errors: dict[str, str] = {}
        self.expected: list[_Expect] = []
        self.shown_current = False

    def expect(self, before: str | None, after: str, seen: float) -> None:
        """A table change (checksums) the gateways will report a swap for."""
        self.expected.append(_Expect(before, after, seen))

    def feed(self, ev: Event) -> list[SessionsUpdate]:
        """One poll: what can be shown now (the current sessions first, then changes)."""
        route = ev.obj["route"]
        self.latest = {i["pod"]: i["summary"] for i in ev.items if "summary" in i}
        self.errors = {i["pod"] or "(gateways)": i["error"] for i in ev.items if "error" in i}
        out = []
        if not self.shown_current:
            self.shown_current = True
            out.append(SessionsUpdate(ev.at, route, None, self._current(route)))
        while self.expected:
            exp = self.expected[0]
            for pod, summary in self.latest.items():
                if pod not in exp.found:
                    done, record = _resolve(summary, route, exp)
                    if done:
                        exp.found[pod] = record
            waiting = [p for p in self.latest if p not in exp.found]
            if waiting and ev.seen - exp.since < WAIT_SECONDS:
                break
            self.expected.pop(0)
            out.append(SessionsUpdate(ev.at, route, (exp.before, exp.after), self._counted(exp)))
        return out

    def _gateway(self, pod: str, summary: dict | None) -> dict:
        g = {"pod": pod}
        if summary is not None:
            g["windowSeconds"] = summary.get("windowSeconds")
            g["effectiveWindowSeconds"] = summary.get("effectiveWindowSeconds")
        return g

    def _current(self, route: str) -> tuple[dict, ...]:
        out = []
        for pod, summary in sorted(self.latest.items()):
            g = self._gateway(pod, summary)
            r = next((r for r in summary.get("routes") or () if r.get("route") == route), None)
            g.update(
                status="counted" if r else "no route",
                active=r["active"] if r else 0,
                away=r.get("away") if r else 0,
                pods=r["pods"] if r else [],
                podsBy=r.get("podsBy") if r else None,
            )
            out.append(g)
        out += [{"pod": p, "status": f"error: {e}"} for p, e in sorted(self.errors.items())]
        return tuple(out)

    def _counted(self, exp: _Expect) -> tuple[dict, ...]:
        out = []
        for pod, summary in sorted(self.latest.items()):
            g = self._gateway(pod, summary)
            if pod not in exp.found:
                g["status"] = "not reported"
            elif exp.found[pod] is None:
                g.update(status="no active sessions", active=0, moved=0, away=0,
                         matrix=[], awayMatrix=[])  # fmt: skip
            else:
                rec = exp.found[pod]
                g.update(
                    status="counted" if rec["countable"] else "not countable",
                    **{k: rec[k] for k in ("active", "moved", "away", "matrix", "awayMatrix")},
                )
                g["fromChecksum"] = rec["fromChecksum"]
            out.append(g)
        out += [{"pod": p, "status": f"error: {e}"} for p, e in sorted(self.errors.items())]
        return tuple(out)
