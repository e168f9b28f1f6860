"""Who may write, from kopf's peering object: kopf's rule, plus own-entry-first, settling
and self-fencing, so that two replicas never write at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tether.k8s.peering import judge, parse_peers

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _peers(**entries: tuple[int, float]):
    """name=(priority, seconds since lastseen); lifetime 15 s."""
    status = {
        name: {
            "priority": prio,
            "lifetime": 15,
            "lastseen": (NOW - timedelta(seconds=ago)).isoformat(),
        }
        for name, (prio, ago) in entries.items()
    }
    return parse_peers({"status": status})


def _judge(peers, visible=10.0):
    return judge(peers, "me", NOW, visible_since=NOW - timedelta(seconds=visible))


def test_highest_priority_acts_and_rechecks_before_its_own_entry_expires():
    v = _judge(_peers(me=(200, 1), other=(100, 1)))
    assert v.active and v.recheck == NOW + timedelta(seconds=11)  # 15 - 1 - margin 3


def test_a_live_higher_priority_peer_makes_it_stand_by_until_that_peer_expires():
    v = _judge(_peers(me=(100, 1), boss=(200, 5)))
    assert not v.active and "boss" in v.reason and v.recheck == NOW + timedelta(seconds=10)


def test_a_dead_higher_priority_peer_does_not_block():
    assert _judge(_peers(me=(100, 1), boss=(200, 16))).active


def test_same_priority_pauses_both_as_kopf_does():
    assert not _judge(_peers(me=(100, 1), twin=(100, 1))).active


def test_no_write_before_its_own_keepalive_is_visible_and_settled():
    assert not judge(_peers(other=(1, 1)), "me", NOW, visible_since=None).active
    v = _judge(_peers(me=(100, 0)), visible=0.5)
    assert not v.active and v.recheck == NOW + timedelta(seconds=1.5)


def test_it_fences_itself_when_its_keepalives_stop_landing():
    v = _judge(_peers(me=(200, 12.5)))  # expires in 2.5 s: less than the 3 s margin
    assert not v.active


def test_unreadable_entries_are_ignored():
    peers = parse_peers({"status": {"me": {"priority": 1, "lastseen": "2026-01-01T12:00:00+00:00"},
                                    "x": {"priority": "high"}, "y": "junk"}})  # fmt: skip
    assert set(peers) == {"me"}
