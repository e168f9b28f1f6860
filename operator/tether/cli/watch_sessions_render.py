"""How `kubectl tether watch --sessions` shows the gateways' sessions: JSON, plain, rich.

A ``sessions`` line sums the gateway replicas that reported (``gateways`` lists each one, with
its status: ``counted``, ``no active sessions``, ``not countable``, ``not reported`` or an
error). With ``change`` null it is the sessions active now, per pod; with ``change`` it is the
swap of that table change: ``active`` sessions at the swap, ``moved`` (their owner changed in
this swap: ``matrix``, old owner → new owner) and ``away`` (their next request goes to another
pod than their last one did: ``awayMatrix``, last pod → new owner).
"""

from __future__ import annotations

from tether.cli.watch_sessions import SessionsUpdate

_OK = ("counted", "no active sessions")


def _sum_cells(gateways, key: str) -> list[dict]:
    total: dict[tuple, int] = {}
    for g in gateways:
        for c in g.get(key) or ():
            k = (c["from"], c["fromEndpoint"], c["to"], c["toEndpoint"])
            total[k] = total.get(k, 0) + c["sessions"]
    return [
        {"from": a, "fromEndpoint": ae, "to": b, "toEndpoint": be, "sessions": n}
        for (a, ae, b, be), n in sorted(total.items(), key=lambda kv: (-kv[1], str(kv[0])))
    ]


def _total(gateways, key: str) -> int | None:
    values = [g.get(key) for g in gateways if g.get("status") in _OK]
    if not values or any(v is None for v in values):
        return None
    return sum(values)


def sessions_json(u: SessionsUpdate) -> dict:
    """The JSON object of a sessions update (keys in the module docstring and the README)."""
    gws = list(u.gateways)
    out = {
        "type": "sessions",
        "time": u.at.isoformat().replace("+00:00", "Z"),
        "route": u.route,
        "change": None,
        "gateways": gws,
        "complete": bool(gws) and all(g.get("status") in (*_OK, "no route") for g in gws),
        "active": sum(g.get("active") or 0 for g in gws),
        "away": _total(gws, "away"),
    }
    if u.change is None:
        pods: dict[tuple, int] = {}
        for g in gws:
            for p in g.get("pods") or ():
                pods[(p["pod"], p["endpoint"])] = (
                    pods.get((p["pod"], p["endpoint"]), 0) + p["active"]
                )
        out["pods"] = [
            {"pod": pod, "endpoint": ep, "active": n}
            for (pod, ep), n in sorted(pods.items(), key=str)
        ]
        return out
    out["change"] = {"fromChecksum": u.change[0], "toChecksum": u.change[1]}
    out["moved"] = _total(gws, "moved")
    out["matrix"] = _sum_cells(gws, "matrix")
    out["awayMatrix"] = _sum_cells(gws, "awayMatrix")
    return out


def _n(x) -> str:
    return "-" if x is None else str(x)


def sessions_plain(u: SessionsUpdate) -> str:
    """One ``key=value`` line: the same facts, moves as ``from>to:n``."""
    d = sessions_json(u)
    parts = [d["time"], "sessions", d["route"]]
    if d["change"]:
        parts.append(f"change={(d['change']['fromChecksum'] or '-')[:12]}>"
                     f"{d['change']['toChecksum'][:12]}")  # fmt: skip
        parts += [f"active={d['active']}", f"moved={_n(d['moved'])}", f"away={_n(d['away'])}"]
        flows = [f"{c['from']}>{c['to']}:{c['sessions']}" for c in d["matrix"]
                 if c["from"] != c["to"]]  # fmt: skip
        if flows:
            parts.append("flows=" + ",".join(flows))
    else:
        parts += [f"active={d['active']}", f"away={_n(d['away'])}"]
        parts.append("pods=" + (",".join(f"{p['pod']}:{p['active']}" for p in d["pods"]) or "-"))
    gws = ",".join(f"{g['pod']}:{g.get('status')}" for g in d["gateways"])
    parts.append(f"gateways={gws or '-'}")
    return " ".join(parts)


def sessions_text(u: SessionsUpdate) -> str:
    """A sentence for the live view."""
    d = sessions_json(u)
    n = len([g for g in d["gateways"] if g.get("status") in _OK])
    where = f"{n} gateway{'s' if n != 1 else ''}"
    if d["change"] is None:
        pods = ", ".join(f"{p['pod']} {p['active']}" for p in d["pods"]) or "none"
        return f"active sessions now: {d['active']} on {where} ({pods})"
    return (
        f"sessions: {_n(d['moved'])} of {d['active']} active moved in this change; "
        f"{_n(d['away'])} now away from their last pod ({where})"
    )
