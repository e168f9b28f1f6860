"""Pieces of the gateway table benchmark: realistic documents from tether's own planner, and the
gateway's table code as it was before incremental application (the anchor, loaded from git).

Documents: one Service per table in namespace ``bench``, 10 ready endpoints each (an
EndpointSlice), planned by ``tether.reconcile.plan.plan_service`` exactly as the operator
publishes them: ``rr`` is a Service without a DestinationRule (round robin), ``maglev`` one
selected by a sticky rule (``httpCookie``, Maglev, 65,537 slots, the table shipped).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from tests.unit.reconcile.cluster_fakes import rule, service, slice_
from tether.reconcile.plan import plan_service

ROOT = Path(__file__).resolve().parents[2]
# main just before tables were applied incrementally: the anchor's code
ANCHOR_COMMIT = "665c32c99e73cad0dbd88a67f9ebd65d78fa70a0"
NAMESPACE = "bench"
PORT = 7001  # every backend listens on this port, on its own loopback address

_STICKY = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": "sticky", "namespace": NAMESPACE},
    "spec": {
        "host": f"*.{NAMESPACE}.svc.cluster.local",
        "trafficPolicy": {
            "loadBalancer": {
                "consistentHash": {
                    "httpCookie": {"name": "session", "ttl": "0s"},
                    "maglev": {"tableSize": 65537},
                }
            }
        },
    },
}


def endpoint_ips(version: int, n: int = 10) -> list[str]:
    """Loopback addresses of a version's endpoints (127.0.<version>.2 …)."""
    return [f"127.0.{version}.{k + 2}" for k in range(n)]


def documents(count: int, kind: str, version: int = 1) -> dict[str, str]:
    """{ConfigMap name: table.json text} for Services svc00000… (see module docstring)."""
    rules = [rule(_STICKY)] if kind == "maglev" else []
    ips = endpoint_ips(version)
    out = {}
    for i in range(count):
        name = f"svc{i:05d}"
        pods = [(f"{name}-{version}-{k}", ip) for k, ip in enumerate(ips)]
        plan = plan_service(
            service(name=name, ns=NAMESPACE),
            [slice_(pods, name=name, ns=NAMESPACE, port=PORT)],
            {},
            rules,
            {},
        )
        ((cm, outcome),) = plan.tables.items()
        out[cm] = outcome.text
    return out


def write_tables(directory: Path, docs: dict[str, str]) -> None:
    """One ``<name>.json`` per document, each replaced atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        tmp = directory / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(directory / f"{name}.json")


def _anchor_module(path: str, name: str, package: str, rewrite: dict[str, str]):
    source = subprocess.run(
        ["git", "show", f"{ANCHOR_COMMIT}:{path}"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    for old, new in rewrite.items():
        assert old in source, (path, old)
        source = source.replace(old, new)
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = package
    sys.modules[name] = module
    exec(compile(source, f"{ANCHOR_COMMIT[:7]}:{path}", "exec"), module.__dict__)
    return module


def anchor_modules():
    """(lookup, routes, store, directory) of the gateway at ANCHOR_COMMIT, importable side by
    side with today's (names ``tether.gateway._anchor_*``)."""
    base = "operator/tether/gateway"
    lookup = _anchor_module(f"{base}/lookup.py", "tether.gateway._anchor_lookup", "tether.gateway",
                            {})  # fmt: skip
    routes = _anchor_module(
        f"{base}/routes.py", "tether.gateway._anchor_routes", "tether.gateway",
        {"from .lookup import": "from tether.gateway._anchor_lookup import"},
    )  # fmt: skip
    store = _anchor_module(
        f"{base}/tables/store.py", "tether.gateway._anchor_store", "tether.gateway.tables",
        {"from ..routes import": "from tether.gateway._anchor_routes import"},
    )  # fmt: skip
    directory = _anchor_module(
        f"{base}/tables/directory.py", "tether.gateway._anchor_directory", "tether.gateway.tables",
        {"from .store import": "from tether.gateway._anchor_store import"},
    )  # fmt: skip
    return lookup, routes, store, directory


def anchor_swap(gw, router) -> None:
    """``Gateway.swap`` at ANCHOR_COMMIT (server.py), verbatim but for the names it imports."""
    from tether.gateway.accesslog import fragment

    metrics = gw.metrics
    for route in router.routes:  # counters live in metrics: monotonic across swaps
        route.hist = metrics.histogram(route.key)
        route.local_codes = metrics.codes(route.key, "")
        for target in route.targets:
            target.codes = metrics.codes(route.key, target.authority)
            target.log_fragment = fragment(target.authority, target.pod, route.key, route.kind)
    gw.router = router
    gw.metrics.table_swapped(len(router.routes))
    keep = {t.authority for r in router.routes for t in r.targets}
    gw.pools.expire(gw.now(), keep=keep)
