"""An informer of a kind the cluster may lack (a CRD not installed, an RBAC rule missing):
synced with nothing, picked up once it is served, and never a crash."""

from __future__ import annotations

import asyncio

import pytest

from tether.k8s import kopf_io
from tether.k8s.informer import Informer


def _err(cls, code):
    return cls({"code": code, "message": "x"}, status=code, headers={})


def _obj(name: str, rv: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": rv}}


class Api:
    """list answers from a script; a watch ends at once, or fails with ``watch_error``."""

    def __init__(self, answers: list, watch_error: Exception | None = None) -> None:
        self.answers = answers
        self.watch_error = watch_error
        self.lists = 0

    async def list_page(self, settings, path, params):
        self.lists += 1
        answer = self.answers[min(self.lists, len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer, str(self.lists), ""

    async def stream(self, settings, path, params, timeout):
        await asyncio.sleep(0)
        if self.watch_error is not None:
            raise self.watch_error
        return
        yield  # an async generator that yields nothing


@pytest.fixture
def fast(monkeypatch):
    async def no_wait(failures, longest=30.0):
        await asyncio.sleep(0)

    monkeypatch.setattr(Informer, "_sleep", staticmethod(no_wait))


def _run(api: Api, monkeypatch, optional: bool, until) -> Informer:
    monkeypatch.setattr(kopf_io, "list_page", api.list_page)
    monkeypatch.setattr(kopf_io, "stream", api.stream)
    changes: list = []
    informer = Informer(
        "policies", None, kopf_io.BACKENDLBPOLICIES, lambda o: o["metadata"]["name"],
        on_change=lambda k, old, new: changes.append((k, old, new)), optional=optional,
    )  # fmt: skip
    informer.changes = changes

    async def go():
        task = asyncio.get_running_loop().create_task(informer.run())
        for _ in range(2000):
            if until(informer):
                break
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(go())
    return informer


def test_missing_crd_is_an_empty_synced_cache_and_its_objects_come_once_it_is_served(
    monkeypatch, fast
):
    api = Api([_err(kopf_io.NotFound, 404), _err(kopf_io.NotFound, 404), [_obj("shop", "7")]])
    informer = _run(api, monkeypatch, False, lambda i: i.get(("default", "shop")))
    assert informer.synced.is_set() and api.lists >= 3
    assert informer.changes == [(("default", "shop"), None, "shop")]


def test_optional_kind_without_rbac_is_synced_empty(monkeypatch, fast):
    api = Api([_err(kopf_io.Forbidden, 403)])
    informer = _run(api, monkeypatch, True, lambda i: i.synced.is_set())
    assert informer.synced.is_set() and informer.store == {}


def test_required_kind_without_rbac_never_claims_to_be_synced(monkeypatch, fast):
    api = Api([_err(kopf_io.Forbidden, 403)])
    informer = _run(api, monkeypatch, False, lambda i: api.lists > 20)
    assert api.lists > 20 and not informer.synced.is_set()


def test_refusal_after_the_first_list_keeps_the_cache(monkeypatch, fast):
    api = Api([[_obj("shop", "7")], _err(kopf_io.Forbidden, 403)], _err(kopf_io.Forbidden, 403))
    informer = _run(api, monkeypatch, True, lambda i: api.lists > 5)
    assert informer.get(("default", "shop")) == "shop"
