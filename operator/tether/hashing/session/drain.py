"""Graceful drain for consistent-hash (soft) affinity: keys stay on a pod while it drains.

Envoy drops a terminating endpoint from its table at once, so every key that hashed to it moves
immediately, even though the pod keeps serving for its grace period. ``DrainStack`` keeps the
previous tables and routes a key to where it went before while that endpoint is terminating but
still serving; a draining endpoint never receives a key it did not already have.

Rule, folding the kept tables oldest → newest: start with the oldest table's pick ``e``; at each
newer table ``T`` the key stays on ``e`` only if ``e`` left ``T`` (not ready there) and was
draining while ``T`` was the current table (for the newest table: is draining now); otherwise it
takes ``T``'s pick (so a key moved by a scale-up moves as in Envoy). Judging each step with the
draining set of its own time is what keeps a key's history exact: a key held by a pod whose drain
has ended goes to the current table's pick, never to another pod that drains (that pod never
had it). The result is the current table's pick or an endpoint draining now.

Pruning never changes a pick: the oldest table is dropped when it held no key at the next step
(none of its endpoints was draining then and missing from the next table), and the whole stack
collapses to the current table once no endpoint draining now is in any older table. At most
``max_tables`` are kept (the oldest goes first: then, and only then, the rule is approximate).

Invariant: with no draining endpoint, ``pick(h)`` equals the current table's pick for every h.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Pick = Callable[[int], "str | None"]  # 64-bit request hash → endpoint authority (ip:port)


@dataclass(frozen=True, slots=True)
class TableView:
    """One published table: its pick and the authorities it hashes over (its ready endpoints)."""

    pick: Pick
    ready: frozenset[str]


@dataclass(frozen=True, slots=True)
class DrainStack:
    """The current table plus the previous ones that still matter for draining endpoints."""

    tables: tuple[TableView, ...]  # oldest … current (never empty)
    draining: frozenset[str] = frozenset()  # terminating endpoints that still serve, now
    max_tables: int = 8
    # the draining set while each of tables[1:-1] was current (empty for fewer than 3 tables)
    history: tuple[frozenset[str], ...] = ()

    @classmethod
    def start(cls, table: TableView, max_tables: int = 8) -> DrainStack:
        """A stack holding only ``table``."""
        return cls((table,), frozenset(), max_tables)

    def advance(self, table: TableView, draining: frozenset[str]) -> DrainStack:
        """A new table was published; ``draining`` is the endpoint set's draining endpoints."""
        history = (*self.history, self.draining) if len(self.tables) > 1 else ()
        return DrainStack((*self.tables, table), draining, self.max_tables, history)._pruned()

    def with_draining(self, draining: frozenset[str]) -> DrainStack:
        """Endpoint flags changed without a new table (e.g. a draining pod stopped serving)."""
        return DrainStack(self.tables, draining, self.max_tables, self.history)._pruned()

    def with_current(self, table: TableView) -> DrainStack:
        """The same stack with its newest table's view replaced (same endpoints, same picks)."""
        return DrainStack((*self.tables[:-1], table), self.draining, self.max_tables, self.history)

    def _drained_at(self, k: int) -> frozenset[str]:
        """The draining set while ``tables[k]`` (k ≥ 1) was current."""
        return self.draining if k == len(self.tables) - 1 else self.history[k - 1]

    def _pruned(self) -> DrainStack:
        tables, history = self.tables, self.history
        if len(tables) > self.max_tables:
            cut = len(tables) - self.max_tables
            tables, history = tables[cut:], history[cut:] if len(tables) - cut > 2 else ()
        stack = DrainStack(tables, self.draining, self.max_tables, history)
        while len(stack.tables) > 1:
            first, second = stack.tables[0], stack.tables[1]
            then = stack._drained_at(1)
            if any(a in then and a not in second.ready for a in first.ready):
                break
            stack = DrainStack(stack.tables[1:], stack.draining, stack.max_tables,
                               stack.history[1:])  # fmt: skip
        older = stack.tables[:-1]
        if older and not any(a in t.ready for t in older for a in stack.draining):
            stack = DrainStack(stack.tables[-1:], stack.draining, stack.max_tables)
        return stack

    @property
    def current(self) -> TableView:
        """The newest table."""
        return self.tables[-1]

    def pick(self, h: int) -> str | None:
        """Where the key with hash ``h`` goes (module docstring)."""
        tables = self.tables
        if len(tables) == 1:
            return tables[0].pick(h)
        chosen = tables[0].pick(h)
        last = len(tables) - 1
        for k in range(1, len(tables)):
            table = tables[k]
            now = table.pick(h)
            if now != chosen:
                then = self.draining if k == last else self.history[k - 1]
                if not (chosen in then and chosen not in table.ready):
                    chosen = now
        return chosen
