"""`kubectl tether plan --sessions`: the active sessions a change would move, from the gateways.

The gateways report their active sessions per pod, by the pod the current table sends each
session to (``watch_sessions``; summed over the replicas). For a scenario of the current
policy, the expected number of sessions that move is

    Σ over old pods p of active(p) × (share of p's keys that move) = active(p) × moved(p) / share(p)

with ``moved(p)`` the off-diagonal sum of p's row of the scenario's transition matrix. It
assumes a pod's sessions are spread over its key space like any keys: the expectation is exact,
the outcome is one draw around it. Under another policy the sessions' owners are not known, so
the expectation is the active total × that policy's moved fraction.
"""

from __future__ import annotations

import statistics

from tether.reconcile.whatif import Prediction


def active_by_endpoint(gateways: list[dict], route: str) -> tuple[dict[str, int], list[dict]]:
    """(endpoint → active sessions summed over the gateways, per-gateway status)."""
    total: dict[str, int] = {}
    status = []
    for g in gateways:
        if "error" in g:
            status.append({"pod": g["pod"], "status": f"error: {g['error']}"})
            continue
        summary = g["summary"]
        r = next((r for r in summary.get("routes") or () if r.get("route") == route), None)
        by_owner = r is not None and r.get("podsBy") == "owner"
        status.append(
            {
                "pod": g["pod"],
                "status": "counted" if by_owner else "not countable" if r else "no sessions",
                "active": r["active"] if r else 0,
                "windowSeconds": summary.get("windowSeconds"),
                "effectiveWindowSeconds": summary.get("effectiveWindowSeconds"),
            }
        )
        for p in r["pods"] if by_owner else ():
            if p["endpoint"]:
                total[p["endpoint"]] = total.get(p["endpoint"], 0) + p["active"]
    return total, status


def expected_moves(active: dict[str, int], doc, p: Prediction, current: bool) -> list[float]:
    """Expected moved sessions per scenario of ``p`` (see the module docstring)."""
    by_key = {e.authority: e.hash_key for e in doc.endpoints}
    n = sum(active.values())
    out = []
    for s in p.scenarios:
        tr = s.transition
        if not current:
            out.append(n * tr.moved)
            continue
        expect = 0.0
        for endpoint, count in active.items():
            key = by_key.get(endpoint, endpoint)
            share = tr.before.get(key, 0.0)
            if share > 0:
                moved = sum(v for b, v in tr.row(key).items() if b != key)
                expect += count * moved / share
        out.append(expect)
    return out


def sessions_report(gateways: list[dict], doc, preds: list[Prediction]) -> dict:
    """The ``sessions`` object of plan's JSON."""
    active, status = active_by_endpoint(gateways, doc.key)
    names = {e.authority: e.pod for e in doc.endpoints}
    predictions = []
    for p in preds:
        values = expected_moves(active, doc, p, p.policy == doc.policy)
        predictions.append(
            {
                "isCurrent": p.policy == doc.policy,
                "expectedMoved": {
                    "mean": statistics.fmean(values),
                    "sd": statistics.pstdev(values),
                    "min": min(values),
                    "max": max(values),
                },
                "scenarios": values,
            }
        )
    return {
        "active": sum(active.values()),
        "byPod": [
            {"pod": names.get(ep, ep), "endpoint": ep, "active": n}
            for ep, n in sorted(active.items())
        ],
        "gateways": status,
        "predictions": predictions,
    }
