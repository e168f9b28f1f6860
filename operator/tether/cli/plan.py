"""``tether plan`` / ``kubectl tether plan SERVICE --replicas N``: what a scale would move.

Reads the Service's published table and its pods, changes nothing, and predicts with
``reconcile.whatif`` the fraction of keys that would move and the new per-pod shares, for the
current policy and for another one (``--algorithm``/``--table-size``, else the other
algorithm), plus the one-off cost of switching. How pods that do not exist yet are handled,
and how a scale-down picks its pods, is in ``whatif`` and ``scaledown``. ``--sessions`` reads
the gateways' active sessions and predicts how many would move (``plan_sessions``).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from tether.cli.kubectl_plugin import UsageError, add_kube_flags, current, no_table, prepare
from tether.models import table as t


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``plan`` subcommand; its func returns 0, 1 (no table) or 2 (bad input)."""
    p = subparsers.add_parser(
        "plan",
        help="predict the keys a scale (or an algorithm change) would move, changing nothing",
        description=(
            "Predict, without changing anything, the fraction of keys that scaling the "
            "Service's pods to --replicas would move and the new per-pod shares, under the "
            "current policy and under another (--algorithm/--table-size, else the other "
            "algorithm)."
        ),
    )
    p.add_argument("service", metavar="SERVICE[:PORT]")
    add_kube_flags(p)
    p.add_argument("--replicas", type=int, required=True, metavar="N")
    p.add_argument("--algorithm", choices=("maglev", "ring-hash"))
    p.add_argument("--table-size", metavar="M|auto", help="Maglev table size (prime) or auto")
    p.add_argument("--subset", help="a DestinationRule subset's table")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument("--samples", type=int, default=64, help="address draws for new pods (64)")
    p.add_argument("--png", metavar="FILE", help="draw the predicted ownership before/after")
    from tether.cli.watch import add_session_flags

    add_session_flags(p)
    p.set_defaults(func=run)


def _maglev_size(text: str | None, current: t.Policy) -> int | None:
    from tether.hashing import MaglevConfig

    if text == "auto":
        return None
    if text is None:
        return current.table_size if current.algorithm == "maglev" else 65537
    try:
        size = int(text)
    except ValueError:
        raise ValueError(f"--table-size must be a prime or auto, got {text!r}") from None
    return MaglevConfig(size).table_size  # Envoy's validation and message


def alternative(current: t.Policy, algorithm: str | None, table_size: str | None) -> t.Policy:
    """The policy to compare with: as asked, else the other algorithm; same hash key."""
    if algorithm is None:
        if table_size is not None:
            algorithm = "maglev"
        else:
            algorithm = "ring-hash" if current.algorithm == "maglev" else "maglev"
    common = {
        "type": "consistentHash",
        "hashKey": current.hash_key,
        "hashBalanceFactor": current.hash_balance_factor,
    }
    if algorithm == "maglev":
        size = _maglev_size(table_size, current)
        return t.Policy(algorithm="maglev", tableSize=size, **common)
    if table_size is not None:
        raise ValueError("--table-size applies to maglev")
    ring = current.algorithm == "ring-hash"
    return t.Policy(
        algorithm="ring-hash",
        minRingSize=current.min_ring_size if ring else 1024,
        maxRingSize=current.max_ring_size if ring else 8388608,
        hashFunction=current.hash_function if ring else "xx-hash",
        **common,
    )


def _removal(cluster, doc: t.TableDocument, replicas: int):
    """(Removal or None, pods counted): what a scale to ``replicas`` deletes, if anything."""
    from tether.k8s.service_view import sibling_pods
    from tether.reconcile.scaledown import pod_facts, removal

    names = [e.pod for e in doc.endpoints if e.pod]
    pods = [pod_facts(p) for p in sibling_pods(cluster, doc.service.namespace, names)]
    if replicas >= len(pods):
        return None, len(pods)
    return removal(pods, len(pods) - replicas, datetime.now(UTC)), len(pods)


def run(args: argparse.Namespace) -> int:
    """Print the prediction (text or JSON); see the module docstring."""
    from tether.cli import plan_report
    from tether.reconcile.whatif import predict, switch

    try:
        if args.replicas < 0 or args.samples < 1:
            raise UsageError("--replicas must be >= 0 and --samples >= 1")
        cluster, name, port = prepare(args)
    except UsageError as exc:
        print(f"kubectl tether plan: error: {exc}", file=sys.stderr)
        return 2
    snapshot = current(cluster, args, name, port)
    if snapshot is None:
        print(no_table(cluster, args, name), file=sys.stderr)
        return 1
    view = snapshot.view
    doc = view.doc
    try:
        other = alternative(doc.policy, args.algorithm, args.table_size)
    except ValueError as exc:
        print(f"kubectl tether plan: error: {exc}", file=sys.stderr)
        return 2
    rm, counted = _removal(cluster, doc, args.replicas)
    policies = [doc.policy] if doc.policy.type == "consistentHash" else []
    policies += [other] if other != doc.policy else []
    preds = [predict(doc, args.replicas, p, rm, samples=args.samples) for p in policies]
    cost = switch(doc, other) if doc.policy.type == "consistentHash" else None
    sessions = None
    if args.sessions and preds:
        from tether.cli.plan_sessions import sessions_report
        from tether.cli.watch import gateways_of
        from tether.cli.watch_sessions import read_gateways

        gateways = read_gateways(*gateways_of(cluster, args), doc.key)
        sessions = sessions_report(gateways, doc, preds)
    report = plan_report.Report(view, args.replicas, counted, rm, preds, cost, sessions)
    if args.output == "json":
        print(plan_report.to_json(report))
    else:
        plan_report.print_text(report)
    if args.png:
        plan_report.draw(report, args.png)
    return 0
