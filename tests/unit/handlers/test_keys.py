"""The session-key Secret: created when missing, rotated with overlap, pruned, left alone when
unreadable, written only by the acting replica and only against the live resourceVersion."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from tether.handlers.keys import LONGEST_WAIT, KeyManager, next_keyring
from tether.hashing.session.keyring import DAY, DEFAULT_POLICY, to_keyring
from tether.k8s import kopf_io
from tether.models import session_keys as sk

from .fake_api import NS, FakeApi

NOW = 1_800_000_000
SECRETS = iter(bytes([i]) * 32 for i in range(1, 1000))


def secret() -> bytes:
    return next(SECRETS)


def _ring(text: str) -> sk.SessionKeyRing:
    return sk.loads_keyring(text)


def test_absent_ring_is_created_with_one_key_signing_now():
    plan = next_keyring(None, NOW, DEFAULT_POLICY, secret)
    ring = _ring(plan.text)
    assert plan.action == "create" and len(ring.keys) == 1
    assert ring.keys[0].activates_at == NOW and ring.keys[0].retires_at is None
    assert to_keyring(ring).signing_key(NOW).id == ring.keys[0].id
    assert plan.next_check == LONGEST_WAIT


def test_a_fresh_ring_is_kept():
    text = next_keyring(None, NOW, DEFAULT_POLICY, secret).text
    plan = next_keyring(text, NOW + 10 * DAY, DEFAULT_POLICY, secret)
    assert (plan.action, plan.text) == ("keep", None)


def test_rotation_publishes_the_new_key_before_it_signs_and_keeps_the_old_one_verifying():
    first = next_keyring(None, NOW, DEFAULT_POLICY, secret).text
    later = NOW + 30 * DAY
    plan = next_keyring(first, later, DEFAULT_POLICY, secret)
    old, new = _ring(plan.text).keys
    assert plan.action == "rotate"
    assert new.activates_at == later + 300 and new.retires_at is None
    assert old.retires_at == later + 300 + 2 * DAY
    ring = to_keyring(_ring(plan.text))
    assert ring.signing_key(later + 299).id == old.id  # gateways learn the new key first
    assert ring.signing_key(later + 300).id == new.id
    assert ring.verifying_key(old.id, later + 300 + 2 * DAY - 1) is not None
    assert plan.next_check == min(300 + 2 * DAY, LONGEST_WAIT)


def test_retired_keys_are_pruned():
    first = next_keyring(None, NOW, DEFAULT_POLICY, secret).text
    rotated = next_keyring(first, NOW + 30 * DAY, DEFAULT_POLICY, secret).text
    plan = next_keyring(rotated, NOW + 33 * DAY, DEFAULT_POLICY, secret)
    assert plan.action == "prune"
    assert [k.id for k in _ring(plan.text).keys] == [_ring(rotated).keys[1].id]


def test_unreadable_ring_is_left_alone():
    plan = next_keyring('{"version": 1, "keys": []}', NOW, DEFAULT_POLICY, secret)
    assert (plan.action, plan.text) == ("invalid", None)


def test_a_ring_whose_keys_all_retired_starts_afresh_at_once():
    key = {"id": "k1", "secret": base64.b64encode(b"x" * 32).decode(), "activatesAt": NOW - 10,
           "retiresAt": NOW - 1}  # fmt: skip
    plan = next_keyring(json.dumps({"version": 1, "keys": [key]}), NOW, DEFAULT_POLICY, secret)
    ring = to_keyring(_ring(plan.text))
    assert plan.action == "rotate" and ring.signing_key(NOW) is not None


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api(monkeypatch) -> FakeApi:
    fake = FakeApi()
    monkeypatch.setattr(kopf_io, "request", fake.request)
    return fake


def _manager(api: FakeApi, clock: Clock, open_: list[bool]) -> KeyManager:
    km = KeyManager(None, NS, may_write=lambda: open_[0], clock=clock, secret=secret)
    km.informer.replace([dict(o) for o in api.secrets.values()])
    return km


def _stored(api: FakeApi) -> sk.SessionKeyRing:
    data = api.secrets[sk.SECRET_NAME]["data"][sk.SECRET_KEY]
    return sk.loads_keyring(base64.b64decode(data))


def test_manager_creates_the_secret_once_and_rotates_it_when_due(api):
    clock, open_ = Clock(), [True]

    async def scenario():
        km = _manager(api, clock, open_)
        await km.ensure()
        assert [w for w in api.writes] == [("secret-post", sk.SECRET_NAME)]
        body = api.secrets[sk.SECRET_NAME]
        assert body["type"] == "Opaque" and body["metadata"]["namespace"] == NS
        await km.ensure()  # the local copy of the write is enough: nothing more to do
        assert len(api.writes) == 1
        clock.now += 31 * DAY
        await km.ensure()
        assert api.writes[-1] == ("secret-put", sk.SECRET_NAME) and len(_stored(api).keys) == 2
        km.stop()

    asyncio.run(scenario())


def test_standby_replica_writes_no_secret(api):
    clock, open_ = Clock(), [False]

    async def scenario():
        km = _manager(api, clock, open_)
        await km.ensure()
        km.kick()
        await asyncio.sleep(0)
        assert api.writes == [] and km._task is None

    asyncio.run(scenario())


def test_a_replace_from_a_stale_view_is_refused_and_nothing_is_lost(api):
    clock, open_ = Clock(), [True]

    async def scenario():
        km = _manager(api, clock, open_)
        await km.ensure()
        created = _stored(api)
        stale = KeyManager(None, NS, may_write=lambda: True, clock=clock, secret=secret)
        stale.informer.replace([])  # has not seen the Secret yet: tries to create it
        await stale.ensure()
        assert _stored(api) == created and len(api.writes) == 1
        api.secret_watch.clear()

    asyncio.run(scenario())
