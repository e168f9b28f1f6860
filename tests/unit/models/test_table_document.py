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


# -- persistent sessions: schemaVersion 2 ------------------------------------------------------

SESSION = t.SessionPolicy(
    kind="cookie",
    name="sid",
    path="/",
    strict=True,
    source=t.SessionSource(kind="Service", namespace="default", name="httpbin"),
)


def test_documents_without_sessions_are_unchanged_version_1():
    # The checksum an operator without session support wrote for this very document (computed
    # with the code before sessions existed): upgrading rewrites no ConfigMap.
    doc = _doc()
    assert doc.schema_version == t.schema_version_for(None) == 1
    assert doc.sealed().checksum == (
        "sha256:f700f41139b694f09e54aa50d08d8d98c8a961c95fbddbeba26835537140bfb1"
    )
    assert "session" not in json.loads(doc.dumps())


def test_session_documents_are_version_2_and_round_trip():
    doc = _doc(schemaVersion=t.schema_version_for(SESSION), session=SESSION)
    assert doc.schema_version == 2
    loaded = t.loads(doc.dumps())
    assert loaded.session == SESSION
    raw = json.loads(doc.dumps())
    assert raw["session"] == {
        "kind": "cookie",
        "name": "sid",
        "path": "/",
        "attributes": [],
        "strict": True,
        "signing": "signed",
        "drain": True,
        "source": {"kind": "Service", "namespace": "default", "name": "httpbin"},
    }


def test_version_and_session_block_must_agree():
    with pytest.raises(ValueError, match="schemaVersion 1 for a document with a session"):
        _doc(session=SESSION)
    raw = json.loads(_doc(schemaVersion=2, session=SESSION).dumps())
    raw["schemaVersion"] = 1
    with pytest.raises(t.TableDocumentError, match="schemaVersion"):
        t.loads(json.dumps(raw))


def test_unknown_versions_are_still_refused():
    text = _doc(schemaVersion=2, session=SESSION).dumps()
    for version in ("3", "0", "true", '"2"'):
        with pytest.raises(t.TableDocumentError, match="schemaVersion"):
            t.loads(text.replace('"schemaVersion":2', f'"schemaVersion":{version}'))


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"kind": "header", "path": "/"}, "header session has no cookie path"),
        ({"signing": "unsigned", "idleTimeoutSeconds": 60}, "idle timeout needs signed"),
        ({"name": ""}, "at least 1 character"),
        ({"absoluteTimeoutSeconds": 0}, "greater than or equal to 1"),
    ],
)
def test_session_block_checks(over, message):
    fields = SESSION.model_dump(by_alias=True) | over
    with pytest.raises(ValueError, match=message):
        t.SessionPolicy.model_validate(fields)


def _plain_canonical(doc: t.TableDocument) -> str:
    body = doc.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"checksum"})
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize(
    "over",
    [
        {},  # base64 data: spliced
        {"table": t.encode_maglev([2, 1, 0], 3, ship=False)},  # no data
        {"subset": "v1", "subsetLabels": {"data": "\x00", "x": '"\\u0000"'}},  # the hole's text
        {"table": t.encode_maglev([2, 1, 0], 3).model_copy(update={"data": 'AA\nAA\x00="\\'})},
        {"table": t.encode_maglev([2, 1, 0], 3).model_copy(update={"data": "é€AAAA"})},
    ],
)
def test_canonical_json_is_the_plain_serialisation(over):
    """The spliced table data gives exactly json.dumps' text, and falls back when it must."""
    doc = _doc(**over)
    assert doc.canonical_json() == _plain_canonical(doc)
    assert (
        doc.compute_checksum()
        == "sha256:" + t.hashlib.sha256(_plain_canonical(doc).encode()).hexdigest()
    )


def test_an_edit_of_the_table_data_is_detected():
    """Changing, re-padding or escaping the shipped base64 breaks the document's checksum."""
    text = _doc().dumps()
    data = json.loads(text)["table"]["data"]
    for edited in (data[:-4] + "AAA=", data + "\n", data.replace("A", "\\u0041", 1)):
        raw = json.loads(text)
        raw["table"]["data"] = edited
        with pytest.raises(t.TableDocumentError, match="checksum"):
            t.loads(json.dumps(raw))
