"""How `kubectl tether watch` shows an update: JSON lines, plain lines, or a rich live view.

JSON (``-o json``): one object per line, keys documented in the README ("Watching
reassignments"). Plain (not a terminal): one ``key=value`` line per update, for CI logs.
Fractions are 0..1 in JSON and percentages in the human formats.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from tether.cli.watch_state import TableView, Update
from tether.models import table as t
from tether.reconcile.transition import NOBODY


def labels(*views: TableView | None) -> dict[str, str]:
    """Endpoint hash key → pod name (the key itself when no pod is known)."""
    out: dict[str, str] = {NOBODY: "(none)"}
    for v in views:
        if v is not None:
            out.update({e.hash_key: e.pod or e.hash_key for e in v.doc.endpoints})
    return out


def describe_policy(doc: t.TableDocument) -> dict:
    """Algorithm, table size and hash key of a document, for display."""
    p = doc.policy
    if p.type != "consistentHash":
        return {"algorithm": None, "policy": p.simple, "tableSize": None, "hashKey": None}
    key = p.hash_key.model_dump(by_alias=True, exclude_none=True) if p.hash_key else None
    size = doc.table.size if doc.table is not None else None
    return {"algorithm": p.algorithm, "policy": "consistentHash", "tableSize": size, "hashKey": key}


def _pods(view: TableView) -> list[dict]:
    return [
        {
            "pod": e.pod,
            "endpoint": e.hash_key,
            "ready": e.ready,
            "terminating": e.terminating,
            "share": view.shares.get(e.hash_key, 0.0),
        }
        for e in view.doc.endpoints
    ]


def update_json(u: Update) -> dict:
    """The JSON object of one update (see module docstring)."""
    view = u.view or u.previous
    doc = view.doc
    out = {
        "type": u.type,
        "time": u.at.isoformat().replace("+00:00", "Z"),
        "service": {
            "namespace": doc.service.namespace,
            "name": doc.service.name,
            "port": doc.service.port,
            "subset": doc.subset,
        },
        "configMap": view.configmap,
        "checksum": u.view.doc.checksum if u.view else None,
        **describe_policy(doc),
        "pods": _pods(u.view) if u.view else [],
        "operatorKeysMoved": u.view.operator_moved if u.view else None,
    }
    if u.type == "change":
        names = labels(u.previous, u.view)
        tr = u.transition
        out["change"] = {
            "fromChecksum": u.previous.doc.checksum if u.previous else None,
            "readyBefore": u.previous.ready if u.previous else 0,
            "readyAfter": u.view.ready,
            "matrix": [
                {
                    "from": names.get(a, a),
                    "fromEndpoint": a or None,
                    "to": names.get(b, b),
                    "toEndpoint": b or None,
                    "fraction": v,
                }
                for (a, b), v in sorted(tr.cells.items())
            ]
            if tr
            else None,
            "moved": tr.moved if tr else None,
            "optimum": tr.optimum if tr else None,
            "errorBound": tr.error_bound if tr else None,
            "sliceToTableSeconds": u.slice_to_table,
        }
        since = u.since_start
        out["sinceStart"] = (
            {
                "readyBefore": u.first.ready,
                "readyAfter": u.view.ready,
                "moved": since.moved,
                "optimum": since.optimum,
            }
            if since
            else None
        )
    return out


def json_line(u: Update) -> str:
    """One compact JSON line."""
    return json.dumps(update_json(u), separators=(",", ":"), sort_keys=True)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _since(s: dict | None) -> str:
    return "-" if not s else f"{s['readyBefore']}→{s['readyAfter']}:{_pct(s['moved'])}"


def plain_line(u: Update) -> str:
    """One ``key=value`` line: the same facts as JSON, flows of moved keys only."""
    d = update_json(u)
    svc = d["service"]
    parts = [
        d["time"],
        u.type,
        f"{svc['namespace']}/{svc['name']}:{svc['port']}"
        + (f"/{svc['subset']}" if svc["subset"] else ""),
        f"algorithm={d['algorithm'] or d['policy']}",
        f"size={d['tableSize'] if d['tableSize'] is not None else '-'}",
    ]
    ch = d.get("change")
    if ch:
        parts += [
            f"ready={ch['readyBefore']}→{ch['readyAfter']}",
            f"moved={_pct(ch['moved'])}",
            f"optimum={_pct(ch['optimum'])}",
            f"operator={_pct(d['operatorKeysMoved'])}",
            f"since_start={_since(d.get('sinceStart'))}",
            "slice_to_table="
            + ("-" if ch["sliceToTableSeconds"] is None else f"{ch['sliceToTableSeconds']:.3f}s"),
        ]
        flows = [c for c in ch["matrix"] or () if c["from"] != c["to"] and c["fromEndpoint"]]
        if flows:
            parts.append(
                "flows=" + ",".join(f"{c['from']}>{c['to']}:{_pct(c['fraction'])}" for c in flows)
            )
    pods = ",".join(
        f"{p['pod']}:{_pct(p['share'])}"
        + ("" if p["ready"] else "(terminating)" if p["terminating"] else "(not-ready)")
        for p in d["pods"]
    )
    parts.append(f"pods={pods or '-'}")
    return " ".join(parts)


def short_names(names: dict[str, str]) -> tuple[dict[str, str], str]:
    """Pod names without their common ``deployment-replicaset-`` prefix, and that prefix."""
    values = list(names.values())
    first = min(values, default="")
    last = max(values, default="")
    common = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), None)
    prefix = first[: len(first) if common is None else common]
    prefix = prefix[: prefix.rfind("-") + 1]
    short = {k: v[len(prefix) :] for k, v in names.items()}
    if not prefix or len(set(short.values())) < len(short) or not all(short.values()):
        return names, ""
    return short, prefix


def matrix_rows(u: Update) -> tuple[list[str], list[str], list[list[float]], str]:
    """(row labels, column labels, fractions, common pod-name prefix left out) of a change's
    matrix, pods in name order."""
    names, prefix = short_names(labels(u.previous, u.view))
    tr = u.transition
    rows = sorted({a for a, _ in tr.cells}, key=lambda k: names.get(k, k))
    cols = sorted({b for _, b in tr.cells}, key=lambda k: names.get(k, k))
    grid = [[tr.cells.get((a, b), 0.0) for b in cols] for a in rows]
    return [names.get(a, a) for a in rows], [names.get(b, b) for b in cols], grid, prefix


def history_row(u: Update) -> Sequence[str]:
    """Time, ready n→m, moved, optimum, operator figure, slice→table: one history line."""
    tr = u.transition
    latency = "-" if u.slice_to_table is None else f"{1000 * u.slice_to_table:.0f} ms"
    before = u.previous.ready if u.previous else 0
    after = u.view.ready if u.view else 0
    return (
        u.at.strftime("%H:%M:%S"),
        f"{before}→{after}",
        _pct(tr.moved if tr else None),
        _pct(tr.optimum if tr else None),
        _pct(u.view.operator_moved if u.view else None),
        latency,
    )


def bars(view: TableView, width: int = 30) -> Iterable[tuple[str, str, float, str]]:
    """(pod, state, share, bar) per endpoint of a table, for the live view."""
    for e in view.doc.endpoints:
        share = view.shares.get(e.hash_key, 0.0)
        state = "ready" if e.ready else "terminating" if e.terminating else "not ready"
        filled = round(share * width * max(1, view.ready) / 2) if view.ready else 0
        yield e.pod or e.hash_key, state, share, "█" * min(filled, width)
