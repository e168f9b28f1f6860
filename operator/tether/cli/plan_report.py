"""How `kubectl tether plan` reports its prediction: text for people, JSON for scripts.

JSON keys (fractions 0..1): ``service``, ``current`` (policy, ready pods, pods counted),
``replicas``, ``removal`` (``certain``/``tied``/``choose`` pod names, or null for a scale-up),
``newPods`` and ``addressNetwork`` (where new pods' addresses were drawn), ``predictions`` (one
per policy: ``label``, ``isCurrent``, ``algorithm``, ``tableSize``, ``moved`` {``mean``,
``sd``, ``min``, ``max``, ``scenarios``}, ``optimum``, ``maxOverAvg``, ``shares`` per pod,
``scenarioList`` [{``removed``, ``added``, ``moved``}]), ``switchCost`` (keys moved once by
switching to the compared policy now) and ``sessions`` (null without ``--sessions``; else
``active``, ``byPod``, ``gateways`` and per prediction ``expectedMoved`` {``mean``, ``sd``,
``min``, ``max``} and ``scenarios``, in the order of ``predictions``: ``plan_sessions``).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass

from tether.cli.watch_state import TableView
from tether.models import table as t
from tether.reconcile.scaledown import Removal
from tether.reconcile.transition import Transition
from tether.reconcile.whatif import Prediction, pod_network


@dataclass(frozen=True)
class Report:
    """Everything plan found and predicted."""

    view: TableView
    replicas: int
    counted: int  # pods of the workload now (ready or not)
    removal: Removal | None
    predictions: list[Prediction]
    switch_cost: Transition | None
    sessions: dict | None = None  # plan_sessions.sessions_report, with --sessions


def label(policy: t.Policy) -> str:
    """``ring-hash (min ring 1024)``, ``maglev (table 65537)``, ``maglev (auto)``."""
    if policy.algorithm == "maglev":
        return f"maglev (table {policy.table_size or 'auto'})"
    if policy.algorithm == "ring-hash":
        return f"ring-hash (min ring {policy.min_ring_size or 1024})"
    return policy.algorithm or (policy.simple or "")


def _new_pods(r: Report) -> int:
    return len(r.predictions[0].scenarios[0].added) if r.predictions else 0


def to_json(r: Report) -> str:
    """The JSON document (see module docstring)."""
    doc = r.view.doc
    preds = []
    for p in r.predictions:
        tables = {s.doc.table.size for s in p.scenarios if s.doc.table is not None}
        preds.append(
            {
                "label": label(p.policy),
                "isCurrent": p.policy == doc.policy,
                "algorithm": p.policy.algorithm,
                "tableSize": sorted(tables),
                "moved": {
                    "mean": p.mean,
                    "sd": p.sd,
                    "min": min(p.moved),
                    "max": max(p.moved),
                    "scenarios": len(p.scenarios),
                },
                "optimum": p.optimum,
                "maxOverAvg": statistics.fmean(s.max_over_avg for s in p.scenarios),
                "shares": p.shares(),
                "scenarioList": [
                    {
                        "removed": list(s.removed),
                        "added": list(s.added),
                        "moved": s.transition.moved,
                    }
                    for s in p.scenarios
                ],
            }
        )
    rm = r.removal
    body = {
        "service": {
            "namespace": doc.service.namespace,
            "name": doc.service.name,
            "port": doc.service.port,
            "subset": doc.subset,
        },
        "current": {
            "label": label(doc.policy),
            "algorithm": doc.policy.algorithm,
            "readyPods": r.view.ready,
            "pods": r.counted,
        },
        "replicas": r.replicas,
        "removal": None
        if rm is None
        else {"certain": list(rm.certain), "tied": list(rm.tied), "choose": rm.choose},
        "newPods": _new_pods(r),
        "addressNetwork": str(pod_network([e.address for e in doc.endpoints])),
        "predictions": preds,
        "switchCost": r.switch_cost.moved if r.switch_cost else None,
        "sessions": r.sessions,
    }
    return json.dumps(body, indent=1, sort_keys=True)


def _count(n: int) -> str:
    return f"{n} scenario" + ("s" if n != 1 else "")


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def print_text(r: Report) -> None:
    """A rich table per policy, and one sentence that compares them."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    doc = r.view.doc
    where = f"{doc.service.name}.{doc.service.namespace}:{doc.service.port}"
    console.print(
        f"[bold]{where}[/]: {label(doc.policy)}, {r.view.ready} ready pods "
        f"({r.counted} counted) → {r.replicas} replicas"
    )
    table = Table("policy", "keys moved (mean ± sd)", "range", "optimum", "max/avg load")
    for p in r.predictions:
        name = label(p.policy) + (" (current)" if p.policy == doc.policy else "")
        table.add_row(
            name,
            f"{_pct(p.mean)} ± {100 * p.sd:.1f}",
            f"{_pct(min(p.moved))} – {_pct(max(p.moved))} ({_count(len(p.scenarios))})",
            _pct(p.optimum),
            f"{statistics.fmean(s.max_over_avg for s in p.scenarios):.2f}",
        )
    console.print(table)
    current = next((p for p in r.predictions if p.policy == doc.policy), None)
    other = next((p for p in r.predictions if p.policy != doc.policy), None)
    if current and other:
        line = (
            f"{label(other.policy)} would move {_pct(other.mean)} instead of {_pct(current.mean)}"
        )
        if r.switch_cost is not None:
            line += f"; switching to it now moves {_pct(r.switch_cost.moved)} of keys once"
        console.print(line + ".")
    if r.sessions is not None:
        console.print(_sessions_line(r))
    first = current or r.predictions[0]
    shares = ", ".join(f"{k} {_pct(v)}" for k, v in first.shares().items())
    console.print(f"expected shares after, {label(first.policy)}: {shares}")
    if _new_pods(r):
        net = pod_network([e.address for e in doc.endpoints])
        console.print(
            f"{_new_pods(r)} new pod(s) have no address yet: each scenario draws them in {net}; "
            "the range is the prediction's uncertainty."
        )
    if r.removal is not None:
        rm = r.removal
        text = f"the ReplicaSet deletes {', '.join(rm.certain) or 'no pod for sure'}"
        if rm.choose:
            text += f" and {rm.choose} of {', '.join(rm.tied)} (a tie: every choice is a scenario)"
        console.print(text + ".")


def _sessions_line(r: Report) -> str:
    s = r.sessions
    gateways = ", ".join(f"{g['pod']} {g['status']}" for g in s["gateways"]) or "none found"
    moves = "; ".join(
        f"{label(p.policy)}: {e['expectedMoved']['mean']:.0f} ± {e['expectedMoved']['sd']:.0f}"
        for p, e in zip(r.predictions, s["predictions"], strict=True)
    )
    return f"active sessions: {s['active']} (gateways: {gateways}); expected to move: {moves}"


def draw(r: Report, path: str) -> None:
    """The picture of the scenario closest to the mean, under the first policy shown."""
    from tether.cli.picture import draw as draw_png
    from tether.reconcile.whatif import with_endpoints

    p = r.predictions[0]
    s = min(p.scenarios, key=lambda s: abs(s.transition.moved - p.mean))
    doc = r.view.doc
    base = doc if p.policy == doc.policy else with_endpoints(doc, p.policy, doc.endpoints)
    title = (
        f"plan {doc.service.name}.{doc.service.namespace}: {label(p.policy)}, "
        f"{r.view.ready}→{r.replicas} pods, {_pct(s.transition.moved)} of keys move "
        f"(optimum {_pct(s.transition.optimum)})"
    )
    draw_png(base, s.doc, s.transition, s.transition.after, title, path)
