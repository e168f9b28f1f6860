"""What the fault scenarios observe: where load goes, the gateway's own view of its tables,
the cluster's ready endpoints, and whether the published tables match them.

"Tables correct" is what a user would check after a fault: the Deployment has settled, the
published table of the Service lists exactly the ready endpoints of its EndpointSlices (and no
terminating one), and every Ready gateway replica routes by that very document (its `/status`
shows the ConfigMap's checksum) and follows the API server again (`sync.synced`).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

from tether.lab.testing import wait_until
from tether.models import table as t

from .deploy import (
    EXAMPLES,
    TABLES_NS,
    gateway_pods,
    http_get,
    metric,
    operator_pods,
    seed_rule,
    table_doc,
)
from .load import Load

SERVICE, PORT = "httpbin", 8000


def load_targets(cluster) -> list[tuple[str, int, object]]:
    """Where load clients connect: every Ready gateway pod on the lab (this process is in the
    lab's namespace), the host port kind publishes (NodePort → kube-proxy) on kind."""
    if cluster.backend == "kind":
        return [("127.0.0.1", cluster.host_port, None)]
    return [(p["status"]["podIP"], 8080, None) for p in gateway_pods(cluster)]


def start_load(cluster, ns: str, warm: int = 20, **kw) -> Load:
    """Bounded keep-alive load on httpbin.<ns> through the gateway (see `load.Load`), once
    `warm` requests have succeeded."""
    load = Load(load_targets(cluster), f"{SERVICE}.{ns}", namespace=ns, **kw).start()
    wait_until(lambda: load.report.ok >= warm, timeout=30, what="load flowing")
    return load


def gateway_status(cluster, pod: dict) -> dict:
    """The gateway replica's admin `/status` (JSON)."""
    status, body = http_get(cluster, pod["status"]["podIP"], 9901, "/status")
    if status != 200:
        raise AssertionError(f"/status of {pod['metadata']['name']}: {status} {body[:200]!r}")
    return json.loads(body)


def gateway_readyz(cluster, pod: dict) -> tuple[int, str]:
    """The gateway replica's admin `/readyz` status and body."""
    status, body = http_get(cluster, pod["status"]["podIP"], 9901, "/readyz")
    return status, body.decode(errors="replace").strip()


def slice_ready(cluster, ns: str, svc: str = SERVICE) -> set[tuple[str, str]]:
    """(address, pod) of every ready endpoint in the Service's EndpointSlices."""
    slices = cluster.kubectl_json(
        "endpointslices", "-n", ns, "-l", f"kubernetes.io/service-name={svc}"
    )["items"]
    out = set()
    for s in slices:
        for e in s.get("endpoints") or []:
            if (e.get("conditions") or {}).get("ready"):
                pod = (e.get("targetRef") or {}).get("name", "")
                out.update((a, pod) for a in e["addresses"])
    return out


def deployment_settled(cluster, ns: str, replicas: int, name: str = SERVICE) -> bool:
    """The Deployment's status is for its current generation and has `replicas` ready pods."""
    dep = cluster.kubectl_json("deployment", name, "-n", ns)
    st = dep.get("status") or {}
    return (
        st.get("observedGeneration", 0) >= dep["metadata"]["generation"]
        and dep["spec"]["replicas"] == replicas
        and st.get("replicas") == st.get("readyReplicas") == st.get("updatedReplicas") == replicas
    )


def table_name(ns: str, svc: str = SERVICE, port: int = PORT) -> str:
    """The ConfigMap name of a Service port's table."""
    return t.configmap_name(ns, svc, port, None)


def why_incorrect(cluster, ns: str, replicas: int) -> str:
    """'' when the tables are correct (module doc), else what is still wrong."""
    if not deployment_settled(cluster, ns, replicas):
        return f"deployment not settled at {replicas}"
    doc = table_doc(cluster, ns, SERVICE, PORT)
    if doc is None:
        return "no published table"
    published = {(e.address, e.pod) for e in doc.endpoints if e.ready}
    if len(doc.endpoints) != len(published):
        return "published table still lists endpoints that are not ready"
    ready = slice_ready(cluster, ns)
    if published != ready or len(ready) != replicas:
        return f"published {sorted(published)} != ready endpoints {sorted(ready)}"
    name = table_name(ns)
    for pod in gateway_pods(cluster):
        st = gateway_status(cluster, pod)
        if st["tables"].get(name) != doc.checksum:
            return f"gateway {pod['metadata']['name']} routes by another document"
        if st["sync"] is not None and not st["sync"]["synced"]:
            return f"gateway {pod['metadata']['name']} not synced with the API server"
    return ""


DROPPED = "Retry budget exceeded, dropping service out of the queue"
NUDGED: dict[str, int] = {}  # namespace -> Services nudged after the controller dropped them


def controller_log(cluster) -> str:
    """kube-controller-manager's log: the lab's daemon log file, kind's static pod."""
    paths = getattr(cluster, "paths", None)
    if paths is not None:
        log = paths.log("kube-controller-manager")
        return log.read_text(errors="replace") if log.exists() else ""
    return cluster.kubectl("logs", "-n", "kube-system", "-l", "component=kube-controller-manager",
                           "--tail=-1", check=False) or ""  # fmt: skip


LAGGED = "EndpointSlice informer cache is out of date"
LAG_SPAN = 2.0  # s from the first to the last failure when the slices trailed the pods


def _controller_lines(cluster, ns: str, svc: str, text: str) -> int:
    key = f'key="{ns}/{svc}"'
    return sum(1 for line in controller_log(cluster).splitlines() if text in line and key in line)


def slices_lagged(cluster, ns: str, svc: str = SERVICE) -> int:
    """How often kube-controller-manager could not sync the Service's EndpointSlices because
    its informer lagged behind the slices it had written (after an API server restart): the
    slices then trail the pods, e.g. still list only the old pods as ready while new ones serve,
    so a scale-down that removes those old pods leaves no ready endpoint in the slices for a
    moment. kube-proxy and tether both route by the slices."""
    return _controller_lines(cluster, ns, svc, LAGGED)


def slices_dropped(cluster, ns: str, svc: str = SERVICE) -> int:
    """How often kube-controller-manager's EndpointSlice controller gave up on the Service.

    After an API server restart its EndpointSlice informer can lag behind the slices it wrote;
    each pod event then retries at once and fails ("informer cache is out of date"), so a scale
    storm spends the Service's 15 retries in milliseconds and the controller drops it. The
    slices then stay as they were (ready endpoints of deleted pods included) until the next
    change of that Service or its pods (kubernetes/kubernetes#108267): kube-proxy and tether,
    which both follow the slices, route to pods that are gone.
    """
    return _controller_lines(cluster, ns, svc, DROPPED)


def nudge_if_dropped(cluster, ns: str, svc: str = SERVICE) -> bool:
    """Touch the Service (an annotation) when the EndpointSlice controller dropped it since the
    last nudge: what an administrator does to make the controller sync it again."""
    dropped = slices_dropped(cluster, ns, svc)
    if dropped <= NUDGED.get(ns, 0):
        return False
    NUDGED[ns] = dropped
    cluster.kubectl("annotate", "service", svc, "-n", ns, "--overwrite",
                    f"tether.test/resync={time.time_ns()}", check=False)  # fmt: skip
    print(f"\n  kube-controller-manager dropped Service {ns}/{svc} ({DROPPED}): nudged",
          flush=True)  # fmt: skip
    return True


def wait_correct(cluster, ns: str, replicas: int, timeout: float = 180) -> float:
    """Wait until the tables are correct; return the seconds it took. A Service that
    kube-controller-manager dropped (`slices_dropped`) is nudged once per drop, checked every
    few seconds while the tables are not correct."""
    began = time.monotonic()
    last = [""]
    checked = [began]

    def correct() -> bool:
        last[0] = why_incorrect(cluster, ns, replicas)
        if last[0] and time.monotonic() - checked[0] > 3:
            checked[0] = time.monotonic()
            nudge_if_dropped(cluster, ns)
        return not last[0]

    try:
        wait_until(correct, timeout=timeout, interval=0.2, what="tables correct")
    except TimeoutError as e:
        raise TimeoutError(f"{e}: {last[0]}\n{cluster_state(cluster, ns)}") from None
    return time.monotonic() - began


def cluster_state(cluster, ns: str) -> str:
    """What a user would look at when the tables stay wrong: the pods and EndpointSlices of the
    namespace and, on the lab, the tail of kube-controller-manager's log."""
    out = [cluster.kubectl("get", "pods,endpointslices", "-n", ns, "-o", "wide", check=False)]
    for s in cluster.kubectl_json("endpointslices", "-n", ns)["items"]:
        eps = [
            (e["addresses"][0], (e.get("targetRef") or {}).get("name"), e.get("conditions"))
            for e in s.get("endpoints") or []
        ]
        out.append(f"{s['metadata']['name']} gen {s['metadata'].get('generation')}: {eps}")
    paths = getattr(cluster, "paths", None)
    if paths is not None:
        log = paths.log("kube-controller-manager")
        if log.exists():
            out.append("kube-controller-manager log tail:")
            out += log.read_text(errors="replace").splitlines()[-40:]
    return "\n".join(out)


def leader(cluster) -> dict:
    """The operator replica that acts (its `tether_operator_leader` is 1)."""
    return wait_until(
        lambda: next(
            (
                p
                for p in operator_pods(cluster, ready=True)
                if metric(p, "tether_operator_leader", cluster) == 1
            ),
            None,
        ),
        timeout=60,
        what="an acting operator replica",
    )


def orphans(cluster, ns: str) -> list[str]:
    """Table ConfigMaps of Services in `ns` that no longer exist."""
    selector = f"{t.TABLE_LABEL}={t.TABLE_LABEL_VALUE},{t.LABEL_SERVICE_NAMESPACE}={ns}"
    items = cluster.kubectl_json("configmaps", "-n", TABLES_NS, "-l", selector)["items"]
    services = {s["metadata"]["name"] for s in cluster.kubectl_json("services", "-n", ns)["items"]}
    return [
        i["metadata"]["name"]
        for i in items
        if i["metadata"]["labels"].get(t.LABEL_SERVICE_NAME) not in services
    ]


@dataclass
class Figure:
    """One row of the README's Faults table, printed by each scenario."""

    scenario: str
    sent: int
    failed: int
    kinds: dict[str, int]
    correct_seconds: float
    backend: str

    def line(self) -> str:
        """The row, as pytest -s prints it (`FAULTS | ...`)."""
        kinds = ", ".join(f"{k} {n}" for k, n in self.kinds.items() if n) or "-"
        return (
            f"FAULTS | {self.scenario} | {self.sent} | {self.failed} ({kinds}) | "
            f"{self.correct_seconds:.1f} s | {self.backend}"
        )


def report(scenario: str, result, correct_seconds: float, cluster) -> Figure:
    """Print the scenario's figure (collected into the README with `-s`) and return it."""
    figure = Figure(scenario, result.sent, result.failed, result.by_kind(), correct_seconds,
                    cluster.backend)  # fmt: skip
    print(f"\n{figure.line()}\n  {result.summary()}", flush=True)
    return figure


def setup_httpbin(cluster, ns: str, replicas: int = 3) -> None:
    """httpbin × `replicas` with the seed rule (cookie affinity) in `ns`; tables correct."""
    cluster.kubectl("apply", "-n", ns, "-f", str(EXAMPLES / "httpbin.yaml"))
    if replicas != 3:
        cluster.kubectl("scale", "deployment/httpbin", "-n", ns, f"--replicas={replicas}")
    cluster.apply(seed_rule(ns))
    wait_until(
        lambda: (d := table_doc(cluster, ns, SERVICE, PORT)) and d.policy.type == "consistentHash",
        timeout=60,
        what="the rule's consistent-hash table",
    )
    wait_correct(cluster, ns, replicas)


def scale(cluster, ns: str, replicas: int) -> None:
    """`kubectl scale` httpbin, retried while the API server is coming back."""
    wait_until(
        lambda: cluster.kubectl(
            "scale", "deployment/httpbin", "-n", ns, f"--replicas={replicas}", check=False
        ),
        timeout=60,
        what=f"kubectl scale --replicas={replicas} accepted",
    )


GONE = ("upstream connect failed", "upstream closed the connection before responding")
PREFIXES = tuple(f"502 b'{why}" for why in GONE)  # as `load.Failure.detail` shows a 502


def assert_refusals_only(
    result, removed: int, cluster, ns: str, correct_at: float | None = None
) -> None:
    """The documented bound of a scale-down under load: the only failures are 502s from pods
    already going away before the gateway's table dropped them: all `--connect-attempts` (3)
    connections refused (the refused pod is then skipped for 5 s on that replica), or a
    connection the pod accepted and then closed unanswered as it shut down (a GET goes to the
    next endpoint then, but not twice to one endpoint, so it can still fail when the
    attempts run out on pods all going away). Each names a pod that the EndpointSlices
    no longer list; at most one per removed pod and gateway replica. Zero is the usual
    outcome. No failure comes after `correct_at` (the moment the tables were correct).

    When kube-controller-manager's slices trailed the pods (`slices_lagged`) they could list
    only pods being removed as ready, and every request then fails until they list a surviving
    pod (kube-proxy's too): the count is not bounded then, the failures' span is (`LAG_SPAN`)."""
    bad = [f for f in result.failures if not f.detail.startswith(PREFIXES)]
    assert not bad, result.summary()
    pods = [re.search(r": ([\d.]+):\d+", f.detail) for f in result.failures]
    assert all(pods), result.summary()
    remaining = {address for address, _ in slice_ready(cluster, ns)}
    assert not {m.group(1) for m in pods} & remaining, (sorted(remaining), result.summary())
    t0 = min((f.at for f in result.failures), default=0.0)
    every = "\n".join(f"+{f.at - t0:.3f} s client {f.client}: {f.detail}" for f in result.failures)
    if correct_at is not None:
        late = [f for f in result.failures if f.at > correct_at]
        assert not late, f"failed after the tables were correct:\n{every}"
    lagged = slices_lagged(cluster, ns)
    print(f"  EndpointSlice controller on {ns}/{SERVICE}: {lagged} × {LAGGED}", flush=True)
    if lagged:  # the slices trailed the pods: they may have listed only removed pods as ready
        span = max((f.at for f in result.failures), default=t0) - t0
        print(f"  refusals within {span:.2f} s (bound {LAG_SPAN} s)\n{every}", flush=True)
        assert span <= LAG_SPAN, f"failures over {span:.2f} s:\n{every}"
        return
    bound = removed * max(1, len(gateway_pods(cluster)))
    assert result.failed <= bound, f"{result.summary()}\n{every}"
