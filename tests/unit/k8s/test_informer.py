"""The watch cache: exact store after a relist, one notification per real change, and the
operator's own writes are not undone by older events."""

from __future__ import annotations

from tether.k8s import kopf_io
from tether.k8s.informer import Informer


def _obj(name: str, rv: str, value: str = "v", ns: str = "default") -> dict:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv},
            "data": {"v": value}}  # fmt: skip


def _informer(changes: list, namespaces=()) -> Informer:
    return Informer(
        "test", None, kopf_io.CONFIGMAPS, lambda o: o["data"]["v"],
        namespaces=namespaces, on_change=lambda k, old, new: changes.append((k, old, new)),
    )  # fmt: skip


def test_relist_keeps_exactly_the_listed_objects_and_reports_the_rest_deleted():
    changes: list = []
    inf = _informer(changes)
    inf.replace([_obj("a", "1"), _obj("b", "2")])
    assert inf.synced.is_set() and set(inf.store) == {("default", "a"), ("default", "b")}
    changes.clear()
    inf.replace([_obj("a", "1"), _obj("c", "5", "w")])  # after a 410: b is gone, c is new
    assert set(inf.store) == {("default", "a"), ("default", "c")}
    assert sorted(changes) == [(("default", "b"), "v", None), (("default", "c"), None, "w")]


def test_repeated_resource_version_is_not_a_change():
    changes: list = []
    inf = _informer(changes)
    inf.handle("ADDED", _obj("a", "1"))
    inf.handle("MODIFIED", _obj("a", "1"))
    inf.handle("MODIFIED", _obj("a", "2", "x"))
    inf.handle("DELETED", _obj("a", "3"))
    inf.handle("DELETED", _obj("a", "3"))
    assert changes == [(("default", "a"), None, "v"), (("default", "a"), "v", "x"),
                       (("default", "a"), "x", None)]  # fmt: skip


def test_own_write_is_not_undone_by_an_older_event():
    changes: list = []
    inf = _informer(changes)
    inf.handle("ADDED", _obj("a", "10", "old"))
    inf.put_local(("default", "a"), _obj("a", "12", "mine"))
    inf.handle("MODIFIED", _obj("a", "11", "between"))  # arrives late: older than the write
    inf.handle("MODIFIED", _obj("a", "12", "mine"))  # the echo of the write
    assert inf.get(("default", "a")) == "mine"
    assert changes == [(("default", "a"), None, "old")]
    inf.handle("MODIFIED", _obj("a", "13", "theirs"))  # a later change by someone else
    assert changes[-1] == (("default", "a"), "mine", "theirs")


def test_namespace_patterns_filter_like_kopf():
    changes: list = []
    inf = _informer(changes, namespaces=("team-*, !team-x", "extra"))
    for ns in ("team-a", "team-x", "other", "extra"):
        inf.handle("ADDED", _obj("s", "1", ns=ns))
    assert set(inf.store) == {("team-a", "s"), ("extra", "s")}
