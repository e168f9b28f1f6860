"""Who may write: tether's reading of kopf's peering object (``ClusterKopfPeering``).

kopf keeps one entry per running replica in the peering object's ``status``:
``{identity: {priority, lifetime, lastseen}}``, refreshed by each replica's keep-alive every
``lifetime - 5..10`` s. kopf pauses its own watchers by that object, but its pause does not
reach tether's caches and writer, so tether reads the same object and applies kopf's rule,
made stricter so that two replicas never write at once:

- **kopf's rule**: a peer is dead once ``lastseen + lifetime`` has passed; a replica stands
  by while a live peer has a higher priority, or the same priority (kopf then pauses both).
- **own entry first**: a replica acts only once its own keep-alive is in the object (so the
  other replicas can see it) and has been there for ``settle`` seconds (so replicas that
  start together have registered, and a lower-priority one has stopped).
- **self-fencing**: a replica stops acting when its own entry is within ``margin`` seconds of
  expiring (its keep-alives are not landing): the successor only takes over after expiry.

``judge`` is pure; ``Leadership`` (``tether.handlers.leader``) runs it on every peering event
and at the next instant the verdict could change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Peer:
    identity: str
    priority: int
    lastseen: datetime
    lifetime: float

    @property
    def deadline(self) -> datetime:
        """When the entry expires if no keep-alive refreshes it."""
        return self.lastseen + timedelta(seconds=self.lifetime)


def _when(value: Any) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def parse_peers(obj: Mapping[str, Any]) -> dict[str, Peer]:
    """The peers listed in a ClusterKopfPeering object (entries kopf could not read skipped)."""
    out = {}
    for identity, info in (obj.get("status") or {}).items():
        if not isinstance(info, Mapping):
            continue
        seen = _when(info.get("lastseen"))
        try:
            peer = Peer(
                identity, int(info.get("priority", 0)), seen, float(info.get("lifetime", 60))
            )
        except (TypeError, ValueError):
            continue
        if seen is not None:
            out[identity] = peer
    return out


@dataclass(frozen=True)
class Verdict:
    active: bool
    reason: str
    recheck: datetime | None  # the next instant the verdict may change without an event


def judge(
    peers: Mapping[str, Peer],
    me: str,
    now: datetime,
    *,
    visible_since: datetime | None,
    settle: float = 2.0,
    margin: float = 3.0,
) -> Verdict:
    """Whether replica ``me`` may write now (see the module docstring for the rule).

    ``visible_since`` is when this replica first saw its own entry (None: not yet).
    """
    own = peers.get(me)
    if own is None or visible_since is None:
        return Verdict(False, "own keep-alive not visible yet", None)
    times: list[datetime] = []
    live = [p for p in peers.values() if p.identity != me and p.deadline > now]
    blockers = [p for p in live if p.priority >= own.priority]
    times += [p.deadline for p in blockers]
    fence = own.deadline - timedelta(seconds=margin)
    settled = visible_since + timedelta(seconds=settle)
    if blockers:
        top = max(blockers, key=lambda p: p.priority)
        why = "same priority as" if top.priority == own.priority else "standing by for"
        return Verdict(False, f"{why} {top.identity}", min(times))
    if fence <= now:
        return Verdict(False, "own keep-alive is about to expire", None)
    if settled > now:
        return Verdict(False, "settling", settled)
    return Verdict(True, "highest priority", fence)
