"""The default backend's routes answer like httpbin and always name the pod."""

import json

import pytest

from tether.lab.kubelet.httpbin import Pod, Request, handle

POD = Pod("httpbin-7d9c-abcde", "shop", "10.244.0.7")


def _req(target, headers=(), method="GET", body=b""):
    return Request(method, target, list(headers), body, client_ip="10.244.0.2", port=80)


def test_get_echoes_args_headers_and_names_the_pod():
    resp = handle(_req("/get?a=1&a=2&b=x", [("host", "httpbin"), ("x-trace", "t1")]), POD)
    doc = json.loads(resp.body)
    assert resp.status == 200
    assert doc["args"] == {"a": ["1", "2"], "b": "x"}
    assert doc["headers"]["X-Trace"] == "t1"
    assert doc["origin"] == "10.244.0.2"
    assert doc["url"] == "http://httpbin/get?a=1&a=2&b=x"
    assert (doc["pod"], doc["namespace"], doc["podIP"]) == (POD.name, POD.namespace, POD.ip)


def test_cookies_are_parsed_from_every_cookie_header():
    req = _req("/cookies", [("Cookie", "sticky-session-key=abc; other=1"), ("Cookie", "z=9")])
    assert json.loads(handle(req, POD).body)["cookies"] == {
        "sticky-session-key": "abc",
        "other": "1",
        "z": "9",
    }


def test_cookies_set_redirects_with_set_cookie():
    resp = handle(_req("/cookies/set?k=v"), POD)
    assert resp.status == 302
    assert ("Set-Cookie", "k=v; Path=/") in resp.headers
    assert ("Location", "/cookies") in resp.headers


@pytest.mark.parametrize("code", [200, 204, 418, 500, 503])
def test_status_returns_the_code(code):
    resp = handle(_req(f"/status/{code}"), POD)
    assert resp.status == code
    assert (b"teapot" in resp.body) == (code == 418)


def test_status_picks_among_listed_codes_and_rejects_garbage():
    codes = {handle(_req("/status/201,202"), POD).status for _ in range(200)}
    assert codes == {201, 202}
    assert handle(_req("/status/abc"), POD).status == 400
    assert handle(_req("/status/999"), POD).status == 400


def test_delay_is_capped_and_echoes():
    assert handle(_req("/delay/0.25"), POD).delay == 0.25
    assert handle(_req("/delay/60"), POD).delay == 10.0
    assert json.loads(handle(_req("/delay/1"), POD).body)["pod"] == POD.name
    assert handle(_req("/delay/soon"), POD).status == 400


def test_anything_echoes_method_and_json_body():
    resp = handle(_req("/anything/x", method="POST", body=b'{"k": 1}'), POD)
    doc = json.loads(resp.body)
    assert (doc["method"], doc["json"], doc["pod"]) == ("POST", {"k": 1}, POD.name)


def test_unknown_route_is_404_naming_the_pod():
    resp = handle(_req("/nope/deeper"), POD)
    assert resp.status == 404
    assert json.loads(resp.body)["pod"] == POD.name
