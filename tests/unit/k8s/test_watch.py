"""The list-then-watch thread: SYNC on every list, events in order, 410 relists, errors retry."""

from __future__ import annotations

import itertools
import json
import queue

from tether.k8s.watch import Watcher


class _Resp:
    def __init__(self, body: bytes = b"", lines: list[dict] | None = None) -> None:
        self.data = body
        self._lines = lines or []

    def stream(self, amt=None, decode_content=False):
        for line in self._lines:
            yield (json.dumps(line) + "\n").encode()

    def release_conn(self) -> None:
        pass


class _FakeApi:
    """Answers list and watch calls from a script; records the resourceVersions asked for."""

    def __init__(self, script: list) -> None:
        self.script = script
        self.calls: list[tuple[str, str | None]] = []

    def list_fn(self, namespace, watch=None, resource_version=None, **kw):
        assert kw.get("_preload_content") is False and kw.get("label_selector") == "a=b"
        self.calls.append(("watch" if watch else "list", resource_version))
        step = self.script.pop(0) if self.script else []
        if isinstance(step, Exception):
            raise step
        if watch:
            return _Resp(lines=step)
        items, rv = step
        return _Resp(json.dumps({"items": items, "metadata": {"resourceVersion": rv}}).encode())


def _obj(name: str, rv: str) -> dict:
    return {"metadata": {"name": name, "resourceVersion": rv}}


def test_list_watch_relist_on_410_and_retry_on_errors():
    api = _FakeApi(
        [
            ([_obj("a", "1")], "5"),
            [
                {"type": "ADDED", "object": _obj("b", "6")},
                {"type": "BOOKMARK", "object": _obj("", "8")},
            ],
            [{"type": "ERROR", "object": {"code": 410, "message": "too old"}}],
            ([_obj("a", "1"), _obj("b", "6")], "9"),
            OSError("connection reset"),
            [{"type": "DELETED", "object": _obj("a", "10")}],
        ]
    )
    seen: queue.Queue = queue.Queue()
    w = Watcher("tables", seen.put, api.list_fn, "ns", label_selector="a=b")
    w.start()
    events = [seen.get(timeout=10) for _ in range(4)]
    w.stop()
    assert [(e.type, e.obj and e.obj["metadata"]["name"]) for e in events] == [
        ("SYNC", None),
        ("ADDED", "b"),
        ("SYNC", None),
        ("DELETED", "a"),
    ]
    assert [len(e.items) for e in events] == [1, 0, 2, 0]
    # the watch resumes after the bookmark, relists after 410, resumes from the relist after
    # a broken connection
    assert api.calls[:6] == [
        ("list", None),
        ("watch", "5"),
        ("watch", "8"),
        ("list", None),
        ("watch", "9"),
        ("watch", "9"),
    ]
    assert all(b.seen >= a.seen for a, b in itertools.pairwise(events))
