"""Graceful drain for consistent-hash (soft) affinity: keys stay on a pod while it drains.

Envoy drops a terminating endpoint from its table at once, so every key that hashed to it moves
immediately, even though the pod keeps serving for its grace period. ``DrainStack`` keeps the
previous tables and routes a key to where it went before while that endpoint is terminating but
still serving; a draining endpoint never receives a key it did not already have.

Rule, folding the kept tables oldest → newest: start with the oldest table's pick ``e``; at each
newer table ``T`` the key stays on ``e`` only if ``e`` left ``T`` (not ready there) and is
draining now; otherwise it takes ``T``'s pick (so a key moved by a scale-up moves as in Envoy).
The result is the current table's pick or a draining endpoint.

A table is dropped from the old end once no endpoint it has (and the next table lacks) is still
draining; that never changes any pick (the fold from the next table gives the same result).
At most ``max_tables`` are kept (the oldest goes first).

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
    draining: frozenset[str] = frozenset()  # terminating endpoints that still serve
    max_tables: int = 8

    @classmethod
    def start(cls, table: TableView, max_tables: int = 8) -> DrainStack:
        """A stack holding only ``table``."""
        return cls((table,), frozenset(), max_tables)

    def advance(self, table: TableView, draining: frozenset[str]) -> DrainStack:
        """A new table was published; ``draining`` is the endpoint set's draining endpoints."""
        return DrainStack((*self.tables, table), draining, self.max_tables)._pruned()

    def with_draining(self, draining: frozenset[str]) -> DrainStack:
        """Endpoint flags changed without a new table (e.g. a draining pod stopped serving)."""
        return DrainStack(self.tables, draining, self.max_tables)._pruned()

    def _pruned(self) -> DrainStack:
        tables = self.tables[-self.max_tables :]
        while len(tables) > 1 and not any(
            a in self.draining and a not in tables[1].ready for a in tables[0].ready
        ):
            tables = tables[1:]
        return DrainStack(tables, self.draining, self.max_tables)

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
        draining = self.draining
        for table in tables[1:]:
            now = table.pick(h)
            if now != chosen and not (chosen in draining and chosen not in table.ready):
                chosen = now
        return chosen
