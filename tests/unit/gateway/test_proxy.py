"""The proxy itself on real loopback sockets: bodies, keep-alive, headers, errors, shutdown."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

from .conftest import backend_of, get, header
from .docs import make_document
from .harness import raw_request


def _simple(h, n=1, **kw):
    backends = [h.backend(f"b{i}") for i in range(n)]
    doc = make_document([("127.0.0.1", b.port, b.name) for b in backends], algorithm=None, **kw)
    h.write_table("svc.json", doc)
    gw = h.gateway()
    h.wait(lambda: gw.loaded)
    return gw, backends


def test_get_and_post_with_content_length_pass_through(h):
    gw, (b,) = _simple(h)
    status, _, body, c = get(gw.port, "/status/418")
    assert status == 418 and backend_of(body) == "b0"
    status, _, body, _ = get(gw.port, "/echo", method="POST", body=b"x" * 100_000, conn=c)
    assert status == 200 and body == b"x" * 100_000
    assert b.requests[-1]["body"] == b"x" * 100_000


def test_chunked_bodies_both_directions(h):
    gw, (_b,) = _simple(h)
    pieces = [b"alpha-", b"beta-", b"gamma"]
    status, _, body, c = get(gw.port, "/echo", method="POST", body=iter(pieces), chunked=True)
    assert status == 200 and body == b"alpha-beta-gamma"
    status, headers, body, _ = get(gw.port, "/chunked", conn=c)
    assert status == 200 and header(headers, "transfer-encoding") == ["chunked"]
    assert backend_of(body) == "b0"  # the whole JSON arrived, re-chunked intact


def test_upstream_connections_are_reused(h):
    gw, (b,) = _simple(h)
    c = None
    for _ in range(5):
        status, _, body, c = get(gw.port, "/get", conn=c)
        assert status == 200
    assert b.connections == 1
    assert {json.loads(r)["conn"] for r in [body]} == {1}


def test_hop_by_hop_headers_are_stripped_both_ways(h):
    gw, (b,) = _simple(h)
    _status, headers, _, _ = get(
        gw.port,
        "/hop",
        headers={
            "Connection": "X-Foo",
            "X-Foo": "private",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic eA==",
            "TE": "trailers",
            "X-Kept": "yes",
        },
    )
    seen = {k for k, _ in b.requests[-1]["headers"]}
    assert {"x-foo", "keep-alive", "proxy-authorization", "te", "connection"} & seen == set()
    assert "x-kept" in seen
    names = {k.lower() for k, _ in headers}
    assert {"x-private", "upgrade", "keep-alive", "connection"} & names == set()
    assert "x-backend" in names


def test_x_forwarded_for_is_appended_and_proto_set(h):
    gw, (b,) = _simple(h)
    get(gw.port, "/get", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    got = dict(b.requests[-1]["headers"])
    assert got["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert got["x-forwarded-proto"] == "http"  # the peer is not a trusted proxy


def test_malformed_request_gets_400(h):
    gw, _ = _simple(h)
    out = raw_request(gw.port, b"GARBAGE / NOT-HTTP\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and b"malformed request" in out


def test_oversized_head_gets_431(h):
    gw, _ = _simple(h)
    gw.config = replace(gw.config, max_header_bytes=1024)
    out = raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431 ")


def test_refused_upstream_gives_502(h):
    dead = h.backend("dead")
    h.stop_backend(dead)
    doc = make_document([("127.0.0.1", dead.port, "dead")], algorithm=None)
    h.write_table("svc.json", doc)
    gw = h.gateway(connect_attempts=2)
    h.wait(lambda: gw.loaded)
    status, _, body, _ = get(gw.port, "/get")
    assert status == 502 and b"upstream connect failed" in body


def test_no_ready_endpoint_gives_503(h):
    b = h.backend("b0")
    doc = make_document([("127.0.0.1", b.port, "b0", False)], algorithm=None)
    h.write_table("svc.json", doc)
    gw = h.gateway()
    h.wait(lambda: gw.loaded)
    status, _, body, _ = get(gw.port, "/get")
    assert status == 503 and b"no healthy endpoint" in body


def test_unknown_host_without_default_gives_404(h):
    b = h.backend("b0")
    for name in ("one", "two"):
        doc = make_document([("127.0.0.1", b.port, "b0")], algorithm=None, name=name)
        h.write_table(f"{name}.json", doc)
    gw = h.gateway()
    h.wait(lambda: gw.loaded)
    status, _, body, _ = get(gw.port, "/get", headers={"Host": "elsewhere.example"})
    assert status == 404 and b"no route" in body
    status, _, body, _ = get(gw.port, "/get", headers={"Host": "two.default.svc.cluster.local"})
    assert status == 200


def test_upstream_timeout_gives_504(h):
    b = h.backend("b0")
    h.write_table("svc.json", make_document([("127.0.0.1", b.port, "b0")], algorithm=None))
    gw = h.gateway(upstream_timeout=0.3)
    h.wait(lambda: gw.loaded)
    status, _, body, _ = get(gw.port, "/slow?s=3")
    assert status == 504 and b"upstream timeout" in body


def test_head_request_and_pipelining(h):
    gw, _ = _simple(h)
    status, headers, body, _c = get(gw.port, "/get", method="HEAD")
    assert status == 200 and body == b"" and header(headers, "content-length")
    out = raw_request(
        gw.port,
        b"GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\nGET /status/202 HTTP/1.1\r\nHost: a\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert out.index(b"HTTP/1.1 201") < out.index(b"HTTP/1.1 202")


def test_readiness_only_after_first_load(h):
    import os

    b = h.backend("b0")
    missing = os.path.join(h.tables, "later")
    gw = h.gateway(tables_dir=missing)
    out = raw_request(gw.admin_port, b"GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 503") and b"tables not loaded" in out
    staged = missing + ".tmp"  # the directory appears with its table (an empty one is a load)
    os.mkdir(staged)
    with open(os.path.join(staged, "svc.json"), "w") as fh:
        fh.write(make_document([("127.0.0.1", b.port, "b0")], algorithm=None).dumps())
    os.rename(staged, missing)
    h.wait(lambda: gw.loaded)
    out = raw_request(gw.admin_port, b"GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
    status, _, _, _ = get(gw.port, "/get")
    assert status == 200


def test_metrics_endpoint_counts_requests(h):
    gw, _ = _simple(h)
    get(gw.port, "/status/418")
    out = raw_request(gw.admin_port, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n").decode()
    assert 'tether_gateway_requests_total{code="418",route="default/httpbin:8000"' in out
    assert "tether_gateway_upstream_latency_seconds_count" in out
    assert "tether_gateway_table_generation" in out


def test_graceful_shutdown_drains_in_flight_requests(h):
    gw, _ = _simple(h)
    result = {}

    def slow():
        result["r"] = get(gw.port, "/slow?s=0.6")

    t = threading.Thread(target=slow)
    t.start()
    h.wait(lambda: any(c.active is not None for c in gw.clients))

    async def stop():
        await gw.shutdown()

    h.run(stop(), timeout=10)
    t.join(5)
    status, headers, body, _ = result["r"]
    assert status == 200 and backend_of(body) == "b0"
    assert header(headers, "connection") == ["close"]
    refused = False
    try:
        get(gw.port, "/get")
    except OSError:
        refused = True
    assert refused


def test_access_log_line_has_the_documented_fields(h, tmp_path):
    b = h.backend("b0")
    h.write_table("svc.json", make_document([("127.0.0.1", b.port, "b0")], algorithm=None))
    log = tmp_path / "access.log"
    gw = h.gateway(access_log=str(log))
    h.wait(lambda: gw.loaded)
    get(gw.port, "/status/418?x=1")
    h.call(gw.accesslog.flush)
    line = json.loads(log.read_text().splitlines()[-1])
    assert line["path"] == "/status/418?x=1" and line["status"] == 418
    assert line["upstream_addr"] == f"127.0.0.1:{b.port}" and line["upstream_pod"] == "b0"
    assert line["route"] == "default/httpbin:8000" and line["affinity"] == "roundRobin"
    assert line["cookie_generated"] is False and line["duration_ms"] >= 0


def test_slow_client_gets_408_and_big_body_413(h):
    b = h.backend("b0")
    h.write_table("svc.json", make_document([("127.0.0.1", b.port, "b0")], algorithm=None))
    gw = h.gateway(header_timeout=0.3, max_body_bytes=1000)
    h.wait(lambda: gw.loaded)
    out = raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: a\r\n")  # head never finishes
    assert out.startswith(b"HTTP/1.1 408 ")
    status, _, body, _ = get(gw.port, "/echo", method="POST", body=b"x" * 5000)
    assert status == 413 and b"larger than 1000" in body


def test_large_response_streams_to_a_slow_reader(h):
    gw, (_b,) = _simple(h)
    big = b"z" * 3_000_000
    status, _, body, c = get(gw.port, "/echo", method="POST", body=big)
    assert status == 200 and body == big
    status, _, body, _ = get(gw.port, "/get", conn=c)  # the pooled connection still works
    assert status == 200 and backend_of(body) == "b0"


def test_http10_client_gets_unchunked_body_and_close(h):
    gw, _ = _simple(h)
    out = raw_request(gw.port, b"GET /chunked HTTP/1.0\r\nHost: a\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower() and b"connection: close" in head.lower()
    assert backend_of(body) == "b0"  # raw JSON, no chunk framing
    out = raw_request(
        gw.port,
        b"GET /get HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"
        b"GET /get HTTP/1.0\r\nHost: a\r\n\r\n",
    )
    assert out.count(b"HTTP/1.1 200") == 2 and b"connection: keep-alive" in out.lower()


def test_head_limit_holds_across_reads(h):
    import socket

    b = h.backend("b0")
    h.write_table("svc.json", make_document([("127.0.0.1", b.port, "b0")], algorithm=None))
    gw = h.gateway(max_header_bytes=1024)
    h.wait(lambda: gw.loaded)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: " + b"a" * 700 + b"\r\n")
        h.wait(lambda: any(c.cur is not None for c in gw.clients))
        s.sendall(b"X-B: " + b"b" * 700 + b"\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 431 ")
