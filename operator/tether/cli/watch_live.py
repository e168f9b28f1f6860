"""The rich live view of `kubectl tether watch` (a terminal on stdout).

Top: the table (service, algorithm, size, ConfigMap) and one bar per pod (its share of the key
space; a full bar is twice the fair share), with ready/terminating. Middle: the last change's
transition matrix (old pod → new pod, % of all keys; moved cells highlighted), moved against the
optimum and the operator's own figure, and the slice→table time. Bottom: recent changes.
"""

from __future__ import annotations

from collections import deque

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tether.cli import watch_render as r
from tether.cli.watch_state import Update

HISTORY = 8


class LiveView:
    """Holds the latest table and changes; ``renderable()`` draws them."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.current: Update | None = None
        self.last_change: Update | None = None
        self.history: deque[Update] = deque(maxlen=HISTORY)
        self.sessions: deque[str] = deque(maxlen=3)  # --sessions: the latest sentences

    def add(self, u: Update) -> None:
        """Take one update into the view."""
        self.current = u
        if u.type == "change":
            self.last_change = u
            self.history.appendleft(u)

    def add_sessions(self, text: str) -> None:
        """Take one sessions sentence (watch_sessions_render.sessions_text) into the view."""
        self.sessions.appendleft(text)

    def _header(self) -> Panel:
        u = self.current
        if u is None or u.view is None:
            what = "no table yet" if u is None else "table removed"
            return Panel(Text(f"{self.title}: {what}", style="yellow"))
        d = r.describe_policy(u.view.doc)
        algo = d["algorithm"] or f"{d['policy']} (no key space)"
        size = f" · table size {d['tableSize']}" if d["tableSize"] is not None else ""
        pods = Table(box=None, show_header=True, pad_edge=False)
        for col in ("pod", "state", "share", ""):
            pods.add_column(col)
        for pod, state, share, bar in r.bars(u.view):
            style = "green" if state == "ready" else "red"
            pods.add_row(pod, Text(state, style=style), f"{100 * share:5.1f} %", bar)
        head = Text(f"{algo}{size} · ConfigMap {u.view.configmap}", style="bold")
        return Panel(Group(head, pods), title=self.title)

    def _change(self) -> Panel | None:
        u = self.last_change
        if u is None or u.transition is None:
            return None
        rows, cols, grid, prefix = r.matrix_rows(u)
        pods = f" (pods {prefix}…)" if prefix else ""
        m = Table(title=f"keys from old pod (row) to new pod (column), % of all keys{pods}")
        m.add_column("old \\ new")
        for c in cols:
            m.add_column(c, justify="right")
        for name, line in zip(rows, grid, strict=True):
            cells = []
            for col, v in zip(cols, line, strict=True):
                moved = col != name and name != "(none)"
                text = "" if v == 0 else f"{100 * v:.1f}"
                cells.append(Text(text, style="bold red" if moved and v else ""))
            m.add_row(name, *cells)
        t, ready, moved, optimum, operator, latency = r.history_row(u)
        summary = Text(
            f"{t}  ready {ready}  moved {moved} (optimum {optimum}, operator {operator})  "
            f"EndpointSlice→table {latency}"
        )
        parts = [summary, m]
        if u.since_start is not None:
            s = u.since_start
            parts.append(
                Text(
                    f"since the watch started: ready {u.first.ready}→{u.view.ready}, "
                    f"{100 * s.moved:.1f} % of keys moved (optimum {100 * s.optimum:.1f} %)",
                    style="bold",
                )
            )
        return Panel(Group(*parts), title="last change")

    def _history(self) -> Table:
        h = Table(title="changes", box=None)
        for col in ("time", "ready", "moved", "optimum", "operator", "slice→table"):
            h.add_column(col)
        for u in self.history:
            h.add_row(*r.history_row(u))
        return h

    def renderable(self) -> Group:
        """Everything, top to bottom."""
        parts = [self._header()]
        if self.sessions:
            parts.append(Panel(Group(*map(Text, self.sessions)), title="sessions (gateways)"))
        change = self._change()
        if change is not None:
            parts.append(change)
        if self.history:
            parts.append(self._history())
        return Group(*parts)
