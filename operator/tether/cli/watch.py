"""``tether watch`` / ``kubectl tether watch SERVICE[:PORT]``: live reassignments of one Service.

It lists and watches the Service's table ConfigMaps (as the gateway does) and its
EndpointSlices, and prints each table change with its transition matrix (``watch_state``,
``watch_render``). Output: a rich live view on a terminal, one plain line per update
otherwise, ``-o json`` for JSON lines. ``--once`` prints the current table and exits;
``--changes N`` exits after N changes; ``--png FILE`` redraws FILE on every update.
``--sessions`` adds the gateways' real sessions: active now, and per change the sessions it
moved, summed over the gateway replicas (``watch_sessions``).
"""

from __future__ import annotations

import argparse
import queue
import sys
import time

from tether.cli.kubectl_plugin import (
    UsageError,
    add_kube_flags,
    current,
    no_table,
    prepare,
    tables_namespace,
)
from tether.k8s.watch import Event


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``watch`` subcommand; its func returns 0, 1 (no table for --once) or 2."""
    p = subparsers.add_parser(
        "watch",
        help="watch a Service's table: key-space shares and reassignments, live",
        description=(
            "Show each pod's share of the key space and, on every table change, which share of "
            "the keys moved from which pod to which (the transition matrix), against the "
            "optimum and the operator's own figure, and the time from the EndpointSlice "
            "change to the published table."
        ),
    )
    p.add_argument("service", metavar="SERVICE[:PORT]", help="PORT: number or name (lowest)")
    add_kube_flags(p)
    p.add_argument("--subset", help="a DestinationRule subset's table")
    p.add_argument(
        "-o",
        "--output",
        choices=("rich", "plain", "json"),
        help="rich on a terminal, else plain (one line per update); json: one object per line",
    )
    p.add_argument("--once", action="store_true", help="print the current table and exit")
    p.add_argument("--changes", type=int, metavar="N", help="exit after N table changes")
    p.add_argument("--png", metavar="FILE", help="draw ownership before/after into FILE")
    add_session_flags(p)
    p.add_argument(
        "--sessions-interval", type=float, default=1.0, metavar="S", help="poll period (1 s)"
    )
    p.set_defaults(func=run)


def add_session_flags(p: argparse.ArgumentParser) -> None:
    """--sessions and where the gateways are (shared with plan)."""
    from tether.cli.watch_sessions import ADMIN_PORT, GATEWAY_SELECTOR

    g = p.add_argument_group("sessions (read from the gateways through the API server)")
    g.add_argument(
        "--sessions", action="store_true", help="show the gateways' active and moved sessions"
    )
    g.add_argument("--gateway-namespace", help="the gateways' namespace (--tables-namespace)")
    g.add_argument("--gateway-selector", default=GATEWAY_SELECTOR, help="gateway pod labels")
    g.add_argument("--gateway-admin-port", type=int, default=ADMIN_PORT, help="(9901)")


def gateways_of(cluster, args: argparse.Namespace) -> tuple:
    """(cluster, namespace, selector, port) of the gateways, for watch_sessions."""
    ns = args.gateway_namespace or tables_namespace(args)
    return cluster, ns, args.gateway_selector, args.gateway_admin_port


class _Printer:
    """Writes updates in the chosen format; the rich one keeps a live view on screen."""

    def __init__(self, mode: str, title: str, png: str | None) -> None:
        self.mode, self.png, self.live = mode, png, None
        if mode == "rich":
            from rich.live import Live

            from tether.cli.watch_live import LiveView

            self.view = LiveView(title)
            self.live = Live(self.view.renderable(), auto_refresh=False, transient=False)

    def __enter__(self) -> _Printer:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def show(self, u) -> None:
        """Print (or redraw) one update, and redraw the picture if asked."""
        from tether.cli import watch_render as r

        if u.type == "sessions":
            self.show_sessions(u)
        elif self.mode == "json":
            print(r.json_line(u), flush=True)
        elif self.mode == "plain":
            print(r.plain_line(u), flush=True)
        else:
            self.view.add(u)
            self.live.update(self.view.renderable(), refresh=True)
        if self.png and u.view is not None:
            from tether.cli.picture import draw_update

            draw_update(u, self.png)

    def show_sessions(self, u) -> None:
        """Print (or redraw) one sessions update."""
        import json

        from tether.cli import watch_sessions_render as sr

        if self.mode == "json":
            line = json.dumps(sr.sessions_json(u), separators=(",", ":"), sort_keys=True)
            print(line, flush=True)
        elif self.mode == "plain":
            print(sr.sessions_plain(u), flush=True)
        else:
            self.view.add_sessions(sr.sessions_text(u))
            self.live.update(self.view.renderable(), refresh=True)


def _once_sessions(cluster, args, snapshot, out) -> None:
    from tether.cli.watch_sessions import Sessions, read_gateways

    key = snapshot.view.doc.key
    items = read_gateways(*gateways_of(cluster, args), key)
    ev = Event("sessions", "POLL", {"route": key}, tuple(items), time.monotonic(), snapshot.at)
    for u in Sessions().feed(ev):
        out.show(u)


def run(args: argparse.Namespace) -> int:
    """Watch until interrupted (or --once / --changes); see the module docstring."""
    from tether.cli.watch_state import Tracker
    from tether.k8s import service_view as sv

    try:
        cluster, name, port = prepare(args)
    except UsageError as exc:
        print(f"kubectl tether watch: error: {exc}", file=sys.stderr)
        return 2
    ns, tables_ns = cluster.namespace, tables_namespace(args)
    mode = args.output or ("rich" if sys.stdout.isatty() else "plain")
    title = f"{name}.{ns}" + (f":{port}" if port else "")
    if args.once:
        snapshot = current(cluster, args, name, port)
        if snapshot is None:
            print(no_table(cluster, args, name), file=sys.stderr)
            return 1
        with _Printer(mode, title, args.png) as out:
            out.show(snapshot)
            if args.sessions:
                _once_sessions(cluster, args, snapshot, out)
        return 0
    tracker = Tracker(port, args.subset)
    events: queue.Queue = queue.Queue()
    sv.watch_slices(cluster, ns, name, events.put)
    sv.watch_tables(cluster, tables_ns, ns, name, events.put)
    sessions = None
    if args.sessions:
        from tether.cli.watch_sessions import Sessions, SessionsPoller

        sessions = Sessions()
        key = lambda: tracker.view.doc.key if tracker.view is not None else None  # noqa: E731
        SessionsPoller(events.put, key, *gateways_of(cluster, args), args.sessions_interval).start()
    changes = 0
    waiting_said = False
    with _Printer(mode, title, args.png) as out:
        while not _done(args, changes, sessions):
            ev = events.get()
            if ev.source == "sessions":
                for u in sessions.feed(ev):
                    out.show(u)
                continue
            for u in tracker.feed(ev):
                out.show(u)
                changes += u.type == "change"
                if sessions is not None and u.type == "change":
                    before = u.previous.doc.checksum if u.previous else None
                    sessions.expect(before, u.view.doc.checksum, ev.seen)
            if ev.source == "tables" and ev.type == "SYNC" and tracker.view is None:
                if not waiting_said and mode != "json":
                    print(no_table(cluster, args, name) + "; waiting", file=sys.stderr)
                waiting_said = True
    return 0


def _done(args, changes: int, sessions) -> bool:
    """--changes N reached (with --sessions: and their sessions shown)."""
    if args.changes is None or changes < args.changes:
        return False
    return sessions is None or (sessions.shown_current and not sessions.expected)
