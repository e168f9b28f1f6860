"""The table document round-trips and refuses anything altered, truncated or unknown."""

import json

import pytest

from tether.models import table as t


def _doc(**over):
    eps = tuple(
        t.Endpoint(address=f"10.244.0.{i}", port=8080, pod=f"p{i}", hashKey=f"10.244.0.{i}:8080")
        for i in range(3)
    )
    base = dict(
        schemaVersion=1,
        service=t.Service(
            namespace="default", name="httpbin", host="httpbin.default.svc.cluster.local", port=8000
        ),
        policy=t.Policy(
            type="consistentHash",
            algorithm="maglev",
            tableSize=7,
            hashKey=t.HashKey(kind="cookie", name="sticky-session-key", ttlSeconds=0),
        ),
        endpoints=eps,
        table=t.encode_maglev([2, 1, 0, 1, 2, 0, 0], 3),
    )
    base.update(over)
    return t.TableDocument(**base)


def test_round_trip_keeps_table_and_policy():
    doc = t.loads(_doc().dumps())
    assert list(t.decode_maglev(doc.table, len(doc.endpoints))) == [2, 1, 0, 1, 2, 0, 0]
    assert doc.policy.hash_key.ttl_seconds == 0
    assert doc.key == "default/httpbin:8000"


def test_any_edit_is_detected():
    raw = json.loads(_doc().dumps())
    raw["endpoints"][0]["port"] = 9090
    with pytest.raises(t.TableDocumentError, match="checksum"):
        t.loads(json.dumps(raw))


def test_truncated_and_unknown_versions_are_refused():
    text = _doc().dumps()
    with pytest.raises(t.TableDocumentError):
        t.loads(text[:-10])
    raw = json.loads(text)
    raw["schemaVersion"] = 2
    with pytest.raises(t.TableDocumentError, match="schemaVersion"):
        t.loads(json.dumps(raw))


def test_table_pointing_past_endpoints_is_refused():
    doc = _doc(table=t.encode_maglev([0, 5, 1], 6))
    with pytest.raises(t.TableDocumentError, match="not listed"):
        t.decode_maglev(t.loads(doc.dumps()).table, 3)


def test_ring_round_trip():
    tab = t.encode_ring([1, 5, 2**64 - 1], [2, 0, 1], 3)
    hashes, idx = t.decode_ring(tab, 3)
    assert list(hashes) == [1, 5, 2**64 - 1] and list(idx) == [2, 0, 1]
    assert t.raw_digest_ring([1, 5, 2**64 - 1], [2, 0, 1], 3) == tab.digest


def test_configmap_names_are_valid_and_distinct():
    a = t.configmap_name("default", "httpbin", 8000)
    b = t.configmap_name("default", "httpbin", 8000, "v1")
    c = t.configmap_name("x" * 60, "y" * 60, 80)
    assert a != b and len(c) <= 63
    for n in (a, b, c):
        assert n[0].isalpha() and n[-1].isalnum() and n == n.lower()
