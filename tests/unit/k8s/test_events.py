"""Events are posted as tether-operator, in the background, and a burst beyond the queue is
dropped and counted rather than queued without bound."""

from __future__ import annotations

import asyncio

from tether.k8s import events, kopf_io

REF = {"apiVersion": "v1", "kind": "Service", "namespace": "default", "name": "web", "uid": "u"}


def test_events_name_tether_operator_and_a_full_queue_drops(monkeypatch):
    posted = []

    async def request(settings, method, path, payload=None, **_):
        posted.append((method, path, payload))
        return payload

    monkeypatch.setattr(kopf_io, "request", request)

    async def main():
        poster = events.EventPoster(None, "pod-a/1", limit=3, workers=1)
        results = [poster.post(REF, "Normal", "TablePublished", f"m{i}") for i in range(5)]
        while poster.posted < 3:
            await asyncio.sleep(0.01)
        await poster.close()
        return poster, results

    poster, results = asyncio.run(main())
    assert results == [True, True, True, False, False] and poster.dropped == 2
    method, path, body = posted[0]
    assert (method, path) == ("post", "/api/v1/namespaces/default/events")
    assert body["reportingComponent"] == "tether-operator"
    assert body["source"] == {"component": "tether-operator"}
    assert body["reportingInstance"] == "pod-a/1" and body["involvedObject"] == REF
