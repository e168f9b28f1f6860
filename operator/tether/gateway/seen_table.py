"""The recent-sessions table in plain Python: the reference ``wire/seen.c`` is tested against,
and the table the gateway uses where the extension is not built.

An entry is (key hash, route id, last-seen second, pod id). The table is set-associative: the
key hash and the route id choose a set of ``WAYS`` entries, so one session is one entry
whatever its request rate. A new session takes a free entry of its set, else the entry of the
set seen longest ago, and the evicted entry's last-seen second raises ``evicted``: every
session seen after that second is still in the table, so ``now - evicted`` is the window the
table covers completely.

Invariants (held equal to the native table by the unit tests): memory is fixed at creation
(``capacity`` entries, 20 bytes each natively); ``store`` is O(WAYS); a session seen within
the window and after the last eviction is always found by ``snapshot``.
"""

from __future__ import annotations

import struct
from array import array

WAYS = 8
RECORD = struct.Struct("<QII")  # snapshot record: key hash, route id, pod id
BYTES_PER_ENTRY = 20  # native layout: uint64 hash, uint64 (route id << 32 | second), uint32 pod
_M64 = (1 << 64) - 1
_NONE, _MAGLEV, _RING = 0, 1, 2


def _second(base: float, clock: float) -> int:
    return int(min(max(clock - base, 0.0), 4.0e9)) + 1


def _window_start(now: int, window: float) -> int:
    w = int(max(window, 0.0))
    return now - w if now > w else 1


class PySessionTable:
    """Same behaviour and interface as ``_wire.SessionTable`` (see module docstring)."""

    def __init__(self, capacity: int, clock: float = 0.0) -> None:
        bits = max(capacity - 1, 0).bit_length()
        if capacity and (capacity < 2 * WAYS or capacity != 1 << bits or bits > 30):
            raise ValueError("SessionTable: capacity must be 0 or a power of two from 16 to 2^30")
        self.capacity = capacity
        self._shift = 64 - (bits - 3)
        self._base = clock
        self._hash = [0] * capacity
        self._meta = [0] * capacity
        self._pod = [0] * capacity
        self.used = 0
        self.evicted = 0
        self.evictions = 0
        self.stores = 0

    def store(self, route: int, h: int, pod: int, clock: float) -> None:
        """Note that session (route, h) was just sent to ``pod``."""
        if not self.capacity or not route:
            return
        mix = ((h ^ (route * 0x9E3779B97F4A7C15 & _M64)) * 0xFF51AFD7ED558CCD) & _M64
        base = (mix >> self._shift) * WAYS
        sec = _second(self._base, clock)
        meta = route << 32 | sec
        self.stores += 1
        victim, oldest = base, 1 << 32
        for i in range(base, base + WAYS):
            m = self._meta[i]
            if m == 0:
                self._hash[i], self._meta[i], self._pod[i] = h, meta, pod
                self.used += 1
                return
            if self._hash[i] == h and m >> 32 == route:
                self._meta[i], self._pod[i] = meta, pod
                return
            if m & 0xFFFFFFFF < oldest:
                oldest, victim = m & 0xFFFFFFFF, i
        self.evicted = max(self.evicted, oldest)
        self.evictions += 1
        self._hash[victim], self._meta[victim], self._pod[victim] = h, meta, pod

    def snapshot(self, routes, clock: float, window: float) -> bytes:
        """Records (hash, route, pod) of the entries of ``routes`` (None: all) in the window."""
        wanted = None if routes is None else set(routes)
        start = _window_start(_second(self._base, clock), window)
        out = bytearray()
        for h, m, pod in zip(self._hash, self._meta, self._pod, strict=True):
            if m and m & 0xFFFFFFFF >= start and (wanted is None or m >> 32 in wanted):
                out += RECORD.pack(h, m >> 32, pod)
        return bytes(out)

    def stats(self, clock: float, window: float) -> tuple:
        """(capacity, used, active, seconds since the latest evicted last-seen second or None,
        evictions, stores)."""
        now = _second(self._base, clock)
        start = _window_start(now, window)
        active = sum(1 for m in self._meta if m and m & 0xFFFFFFFF >= start)
        age = now - min(self.evicted, now) if self.evicted else None
        return self.capacity, self.used, active, age, self.evictions, self.stores


def _owner(spec, h: int, served: int) -> int:
    if spec is None:
        return served
    pods, kind, a, b, pins = spec
    if pins is not None and served in pins:
        return served
    if kind == _NONE or not len(a):
        return 0
    if kind == _MAGLEV:
        i = a[h % len(a)]
    else:
        lo, hi = 0, len(a)
        while lo < hi:  # Envoy's ring: the first point >= h, wrapping
            mid = (lo + hi) // 2
            if a[mid] < h:
                lo = mid + 1
            else:
                hi = mid
        i = b[0 if lo == len(a) else lo]
    return pods[i] if i < len(pods) else 0


def py_session_cells(snapshot: bytes, route: int, old, new) -> tuple[dict, dict, int]:
    """({(old owner, new owner): n}, {(served, new owner): n for owners that differ}, total)
    over the snapshot's sessions of ``route``; a spec is (pods, kind, a, b, pins), old may be
    None (the pod that served each session last)."""
    if new is None:
        raise TypeError("cells: the new spec cannot be None")
    moves: dict[tuple[int, int], int] = {}
    away: dict[tuple[int, int], int] = {}
    total = 0
    for h, r, pod in RECORD.iter_unpack(snapshot):
        if r != route:
            continue
        total += 1
        after = _owner(new, h, pod)
        key = (_owner(old, h, pod), after)
        moves[key] = moves.get(key, 0) + 1
        if after != pod:
            away[(pod, after)] = away.get((pod, after), 0) + 1
    return moves, away, total


def spec_pins(sids) -> array | None:
    """The pins of a spec: sorted pod ids whose pinned sessions stay (None: none)."""
    return None if sids is None else array("I", sorted(set(sids)))
