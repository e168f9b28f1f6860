"""Every response on the wire carries the pod's identity headers and a correct length."""

from tether.lab.kubelet.backend import render
from tether.lab.kubelet.httpbin import Pod, Response

POD = Pod("web-0", "default", "10.244.0.9")


def _parse(raw: bytes):
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers, body


def test_identity_headers_and_length():
    status, headers, body = _parse(render(Response(200, b"hello"), POD, keep_alive=True))
    assert status == "HTTP/1.1 200 OK"
    assert headers["X-Pod-Name"] == "web-0"
    assert headers["X-Pod-Namespace"] == "default"
    assert headers["X-Pod-IP"] == "10.244.0.9"
    assert headers["Content-Length"] == "5" and body == b"hello"
    assert headers["Connection"] == "keep-alive"


def test_head_sends_no_body_and_close_is_announced():
    raw = render(Response(200, b"hello"), POD, keep_alive=False, head=True)
    _, headers, body = _parse(raw)
    assert body == b"" and headers["Content-Length"] == "5"
    assert headers["Connection"] == "close"


def test_unknown_status_code_still_renders():
    status, _, _ = _parse(render(Response(599), POD, keep_alive=True))
    assert status == "HTTP/1.1 599 Unknown"
