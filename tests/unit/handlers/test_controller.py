"""Controller.sync against tether's caches and a fake API with real preconditions.

Writes exactly what differs from the live ConfigMaps, repairs drift, never writes from a
stale view (409) and never writes while its gate is closed.
"""

from __future__ import annotations

import asyncio
import copy
import json

import pytest

from tether.handlers import metrics
from tether.handlers.cluster import ClusterView
from tether.handlers.controller import Config, Controller
from tether.k8s import kopf_io
from tether.k8s.tables import RuleStatus, TableWriter
from tether.models import table as t

from .fake_api import NS, FakeApi, endpointslice, seed_rule, service

KEY = ("default", "httpbin")
TABLE = t.configmap_name("default", "httpbin", 8000)


class Events:
    def __init__(self) -> None:
        self.posted: list[tuple[dict, str, str, str]] = []

    def post(self, ref, type, reason, message) -> bool:
        self.posted.append((ref, type, reason, message))
        return True


class Replica:
    """One operator replica's view + controller over the fake API."""

    def __init__(self, api: FakeApi, services=(), slices=(), rules=()) -> None:
        self.api = api
        self.marks: list = []
        self.view = ClusterView(
            None, tables_namespace=NS, domain="cluster.local", dr_version="v1",
            mark=lambda *keys: self.marks.extend(keys),
        )  # fmt: skip
        self.open = True
        self.events = Events()
        self.ctl = Controller(
            Config(), self.view, TableWriter(None, NS), RuleStatus(None), self.events,
            may_write=lambda: self.open,
        )  # fmt: skip
        self.view.services.replace(list(services))
        self.view.slices.replace(list(slices))
        self.view.pods.replace([])
        for rule in rules:
            api.rules[(rule["metadata"]["namespace"], rule["metadata"]["name"])] = rule
        self.view.rules.replace(list(rules))
        self.view.tables.replace(api.list_configmaps())
        self.marks.clear()

    def sync(self, *keys):
        return asyncio.run(self.ctl.sync(dict.fromkeys(keys or [KEY], 0.0)))

    def rule_watch(self) -> None:
        """The watch brings the rules' current state (status written by the operator)."""
        for rule in self.api.rules.values():
            self.view.rules.handle("MODIFIED", copy.deepcopy(rule))


@pytest.fixture
def api(monkeypatch) -> FakeApi:
    fake = FakeApi()
    monkeypatch.setattr(kopf_io, "request", fake.request)
    return fake


def _endpoints(api: FakeApi) -> int:
    return len(json.loads(api.configmaps[TABLE]["data"][t.DATA_KEY])["endpoints"])


def test_second_sync_of_the_same_state_writes_nothing(api):
    r = Replica(api, [service()], [endpointslice()], [seed_rule()])
    r.sync()
    assert [v for v, _ in api.writes] == ["create", "status"]
    assert [p[2] for p in r.events.posted] == ["TablePublished"]
    api.deliver(r.view.tables)
    r.rule_watch()
    r.marks.clear()
    r.sync()
    r.sync(KEY, ("#rule", "default/httpbin"))
    assert len(api.writes) == 2 and len(r.events.posted) == 1


def test_restarted_replica_adopts_tables_without_writing(api):
    first = Replica(api, [service()], [endpointslice()], [seed_rule()])
    first.sync()
    first.rule_watch()
    api.writes.clear()
    second = Replica(api, [service()], [endpointslice()], list(api.rules.values()))
    second.sync(KEY, ("#rule", "default/httpbin"))
    assert api.writes == []


def test_tables_of_a_service_deleted_while_down_are_removed(api):
    Replica(api, [service()], [endpointslice()]).sync()
    second = Replica(api)  # restarted; the Service is gone
    second.sync(*second.view.all_keys())
    assert api.configmaps == {} and api.writes[-1] == ("delete", TABLE)


def test_scale_writes_once_with_the_moved_fraction(api):
    r = Replica(api, [service()], [endpointslice(n=3)], [seed_rule()])
    r.sync()
    r.rule_watch()
    r.marks.clear()
    r.view.slices.handle("MODIFIED", endpointslice(n=5, rv="2"))
    assert r.marks == [KEY]
    r.sync()
    assert [v for v, _ in api.writes].count("update") == 1 and _endpoints(api) == 5
    assert "3→5 endpoints" in r.events.posted[-1][3]
    status = api.rules[("default", "httpbin")]["status"]
    assert status["endpoints"] == 5 and 0 < status["keysMoved"] < 1


def test_hand_edited_table_is_repaired_when_its_change_arrives(api):
    r = Replica(api, [service()], [endpointslice()])
    r.sync()
    api.deliver(r.view.tables)
    good = api.configmaps[TABLE]["data"][t.DATA_KEY]
    api.edit(TABLE, good.replace("10.244.0.2", "10.9.9.9"))
    api.deliver(r.view.tables)
    assert r.marks == [KEY]  # someone else's change makes its Service dirty
    before = metrics.REPAIRS._value.get()
    r.sync(*r.marks)
    assert api.configmaps[TABLE]["data"][t.DATA_KEY] == good
    assert metrics.REPAIRS._value.get() == before + 1


def test_deleted_table_is_recreated(api):
    r = Replica(api, [service()], [endpointslice()])
    r.sync()
    api.deliver(r.view.tables)
    api.remove(TABLE)
    api.deliver(r.view.tables)
    r.sync(*r.marks)
    assert TABLE in api.configmaps and _endpoints(api) == 3


def test_own_writes_do_not_come_back_as_changes(api):
    r = Replica(api, [service()], [endpointslice()])
    r.sync()
    r.view.slices.handle("MODIFIED", endpointslice(n=4, rv="2"))
    r.marks.clear()
    r.sync()
    api.deliver(r.view.tables)
    assert r.marks == []


def test_a_write_from_a_stale_view_of_the_table_is_refused(api):
    a = Replica(api, [service()], [endpointslice(n=10)])
    a.sync()
    api.deliver(a.view.tables)
    b = Replica(api, [service()], [endpointslice(n=10)])  # b's table cache stops here
    a.view.slices.handle("MODIFIED", endpointslice(n=11, rv="2"))
    a.sync()
    assert _endpoints(api) == 11
    b.view.slices.handle("MODIFIED", endpointslice(n=12, rv="3"))
    before = metrics.CONFLICTS._value.get()
    assert b.sync() == {KEY}  # replace preconditioned on the version b saw: 409
    assert _endpoints(api) == 11 and metrics.CONFLICTS._value.get() == before + 1
    api.deliver(b.view.tables)  # b sees the live table, decides again
    assert b.sync() == set() and _endpoints(api) == 12


def test_closed_gate_writes_nothing(api):
    r = Replica(api, [service()], [endpointslice()], [seed_rule()])
    r.open = False
    assert r.sync() == set()
    assert api.writes == [] and r.events.posted == [] and api.configmaps == {}


def test_gate_closing_mid_sync_stops_every_later_write(api):
    services = [service(f"s{i}") for i in range(40)]
    slices = [endpointslice(f"s{i}") for i in range(40)]
    r = Replica(api, services, slices)
    real = api.request

    async def then_close(*args, **kw):
        r.open = False  # leadership lost while the first write is in flight
        return await real(*args, **kw)

    api.request = then_close
    kopf_io.request = then_close
    r.sync(*[("default", f"s{i}") for i in range(40)])
    assert len(api.writes) == 1


def test_status_write_from_a_stale_rule_waits_for_the_watch(api):
    r = Replica(api, [service()], [endpointslice(n=3)], [seed_rule()])
    r.sync()  # status written; the rule in the cache is now one version behind
    r.view.slices.handle("MODIFIED", endpointslice(n=4, rv="2"))
    r.sync()  # its status patch is refused (409), not forced
    assert api.rules[("default", "httpbin")]["status"]["endpoints"] == 3
    r.marks.clear()
    r.rule_watch()
    r.sync(*r.marks)
    assert api.rules[("default", "httpbin")]["status"]["endpoints"] == 4


def test_status_only_change_of_a_rule_marks_only_its_status(api):
    r = Replica(api, [service()], [endpointslice()], [seed_rule()])
    r.sync()
    r.marks.clear()
    r.rule_watch()  # the operator's own status write comes back through the watch
    assert r.marks == [("#rule", "default/httpbin")]


def test_rule_host_change_marks_the_services_of_both_hosts(api):
    services = [service("httpbin"), service("other")]
    r = Replica(api, services, [endpointslice(), endpointslice("other")], [seed_rule()])
    r.sync(("default", "httpbin"), ("default", "other"))
    r.marks.clear()
    moved = seed_rule(rv="5")
    moved["spec"]["host"] = "other"
    moved["metadata"]["generation"] = 2
    r.view.rules.handle("MODIFIED", moved)
    assert set(r.marks) == {("default", "httpbin"), ("default", "other"),
                            ("#rule", "default/httpbin")}  # fmt: skip


def test_endpointslice_moving_to_another_service_marks_both(api):
    r = Replica(api, [service(), service("b")], [endpointslice()])
    relabelled = endpointslice(rv="2")
    relabelled["metadata"]["labels"]["kubernetes.io/service-name"] = "b"
    r.view.slices.handle("MODIFIED", relabelled)
    assert r.marks == [("default", "httpbin"), ("default", "b")]
    assert r.view.slices_of(("default", "httpbin")) == []
    assert len(r.view.slices_of(("default", "b"))) == 1
