"""Controller.sync against fake indexes and a fake API: writes exactly what changed."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from tether.handlers import controller as ctl_mod
from tether.handlers.controller import Config, Controller, rule_entry
from tether.k8s.tables import PublishedTable
from tether.models import table as t

from ..reconcile.cluster_fakes import FIXTURES, pods, service, slice_


class Index(dict):
    """kopf.Index look-alike: key -> list of values."""

    def put(self, key, value):
        self[key] = [value]


class FakeTables:
    def __init__(self, existing=None):
        self.store = dict(existing or {})
        self.ops = []

    async def list(self):
        return {
            n: PublishedTable(n, (d.service.namespace, d.service.name), d.checksum, d.dumps())
            for n, d in self.store.items()
        }

    async def put(self, name, doc, text, exists, moved=None):
        self.ops.append(("put", name))
        self.store[name] = t.loads(text)

    async def delete(self, name):
        self.ops.append(("delete", name))
        self.store.pop(name, None)


class FakeStatus:
    def __init__(self):
        self.patches = []

    async def patch(self, namespace, name, status):
        self.patches.append((f"{namespace}/{name}", status))
        return True


@pytest.fixture(autouse=True)
def no_kopf_events(monkeypatch):
    events = []
    monkeypatch.setattr(ctl_mod.kopf, "event", lambda body, **kw: events.append(kw))
    return events


def _controller(tables=None):
    c = Controller(Config(), tables or FakeTables(), FakeStatus())
    c.indexes.services, c.indexes.slices = Index(), Index()
    c.indexes.pods, c.indexes.rules = Index(), Index()
    return c


def _cluster(c, n=3, rule_obj=None):
    c.indexes.services.put(("default", "httpbin"), service())
    c.indexes.slices.put(("default", "httpbin"), slice_(pods(n)))
    if rule_obj is not None:
        c.indexes.rules["all"] = [rule_entry(rule_obj)]


def _seed():
    return yaml.safe_load((FIXTURES / "seed.yaml").read_text())


def _sync(c, *keys):
    asyncio.run(c.sync(dict.fromkeys(keys or [("default", "httpbin")], 0.0)))


def test_second_sync_of_the_same_state_writes_nothing(no_kopf_events):
    c = _controller()
    _cluster(c, rule_obj=_seed())
    _sync(c)
    assert [op for op, _ in c.tables.ops] == ["put"]
    assert len(c.rule_status.patches) == 1 and len(no_kopf_events) == 1
    # the watch brings the patched status back into the index, as the API would
    seed = _seed()
    seed["status"] = c.rule_status.patches[-1][1]
    c.indexes.rules["all"] = [rule_entry(seed)]
    _sync(c)
    _sync(c, ("default", "httpbin"), ("#rule", "default/httpbin"))
    assert len(c.tables.ops) == 1 and len(c.rule_status.patches) == 1
    assert len(no_kopf_events) == 1


def test_restarted_controller_adopts_tables_without_writing():
    first = _controller()
    _cluster(first, rule_obj=_seed())
    _sync(first)
    second = _controller(FakeTables(first.tables.store))
    _cluster(second, rule_obj=_seed())
    _sync(second)
    assert second.tables.ops == []


def test_tables_of_a_service_deleted_while_down_are_removed():
    first = _controller()
    _cluster(first)
    _sync(first)
    second = _controller(FakeTables(first.tables.store))  # restarted; the Service is gone
    _sync(second, ("other", "thing"))
    assert [op for op, _ in second.tables.ops] == ["delete"]
    assert second.tables.store == {}


def test_scale_writes_once_with_the_moved_fraction(no_kopf_events):
    c = _controller()
    _cluster(c, rule_obj=_seed())
    _sync(c)
    c.indexes.slices.put(("default", "httpbin"), slice_(pods(5)))
    _sync(c)
    assert len(c.tables.ops) == 2
    assert "3→5 endpoints" in no_kopf_events[-1]["message"]
    status = c.rule_status.patches[-1][1]
    assert status["endpoints"] == 5 and 0 < status["keysMoved"] < 1
