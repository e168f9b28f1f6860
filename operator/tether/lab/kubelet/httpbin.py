"""httpbin-like routes of the default pod backend, as pure functions of a request.

Every response carries `X-Pod-Name`, `X-Pod-Namespace` and `X-Pod-IP`; every JSON body carries
`pod`, `namespace` and `podIP`, so a client can tell which pod answered.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlsplit

MAX_DELAY = 10.0
TEAPOT = b"""
    -=[ teapot ]=-

       _...._
     .'  _ _ `.
    | ."` ^ `". _,
    \\_;`"---"`|//
      |       ;/
      \\_     _/
        `\"\"\"`
"""
REDIRECT_CODES = {301, 302, 303, 305, 307}


@dataclass(frozen=True)
class Pod:
    """The identity a backend stamps on its responses."""

    name: str
    namespace: str
    ip: str


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    client_ip: str = ""
    port: int = 80


@dataclass
class Response:
    """A response to send; `delay` seconds pass before it is sent (for /delay); with `drip`
    = (n, interval) the body is n bytes `*` sent one per interval (for /drip)."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    drip: tuple[int, float] | None = None


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def _headers(req: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in req.headers:
        key = _title(name)
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def _args(query: str) -> dict[str, str | list[str]]:
    args: dict[str, str | list[str]] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        prev = args.get(k)
        args[k] = v if prev is None else [*(prev if isinstance(prev, list) else [prev]), v]
    return args


def _json(pod: Pod, doc: dict, status: int = 200, headers=None, delay: float = 0.0) -> Response:
    doc = {**doc, "pod": pod.name, "namespace": pod.namespace, "podIP": pod.ip}
    body = (json.dumps(doc, indent=2) + "\n").encode()
    return Response(status, body, headers=headers or [], delay=delay)


def _url(req: Request) -> str:
    host = _headers(req).get("Host", f"{req.client_ip}:{req.port}")
    return f"http://{host}{req.target}"


def _cookies(req: Request) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in req.headers:
        if name.lower() == "cookie":
            try:
                jar.load(value)
            except Exception:  # a malformed Cookie header is ignored, as httpbin does
                continue
    return {k: m.value for k, m in jar.items()}


def _echo(req: Request, pod: Pod, delay: float = 0.0) -> Response:
    query = urlsplit(req.target).query
    doc = {"args": _args(query), "headers": _headers(req), "origin": req.client_ip,
           "url": _url(req)}  # fmt: skip
    return _json(pod, doc, delay=delay)


def _anything(req: Request, pod: Pod) -> Response:
    resp = _echo(req, pod)
    doc = json.loads(resp.body)
    data = req.body.decode(errors="replace")
    try:
        parsed = json.loads(req.body) if req.body else None
    except ValueError:
        parsed = None
    doc.update(method=req.method, data=data, json=parsed, form={}, files={})
    return _json(pod, doc)


def _status(codes: str, pod: Pod) -> Response:
    try:
        choices = [int(c) for c in codes.split(",") if c]
        code = random.choice(choices)
    except (ValueError, IndexError):
        return Response(400, b"Invalid status code\n", "text/plain")
    if not 100 <= code <= 599:
        return Response(400, b"Invalid status code\n", "text/plain")
    headers = []
    if code in REDIRECT_CODES:
        headers.append(("Location", "/redirect/1"))
    if code == 401:
        headers.append(("WWW-Authenticate", 'Basic realm="Fake Realm"'))
    body = TEAPOT if code == 418 else b""
    return Response(code, body, "text/plain", headers)


def _set_cookies(req: Request, pod: Pod, delete: bool) -> Response:
    args = parse_qsl(urlsplit(req.target).query, keep_blank_values=True)
    headers = [("Location", "/cookies")]
    for k, v in args:
        if delete:
            headers.append(("Set-Cookie", f"{k}=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"))
        else:
            headers.append(("Set-Cookie", f"{k}={v}; Path=/"))
    return _json(pod, {"cookies": dict(args)}, 302, headers)


def handle(req: Request, pod: Pod) -> Response:
    """Answer one request like httpbin does (the subset the lab needs).

    Routes: /get /headers /cookies /cookies/set /cookies/delete /status/<codes> /delay/<s>
    /drip?numbytes=&duration=&delay=&code= /ip /user-agent /uuid /anything[/...]
    /response-headers /healthz /readyz and `/`.
    """
    path = urlsplit(req.target).path
    parts = [p for p in path.split("/") if p]
    head = parts[0] if parts else ""
    if head == "status" and len(parts) == 2:
        return _status(parts[1], pod)
    if head == "delay" and len(parts) == 2:
        try:
            seconds = min(max(float(parts[1]), 0.0), MAX_DELAY)
        except ValueError:
            return Response(400, b"Invalid delay\n", "text/plain")
        return _echo(req, pod, delay=seconds)
    if head == "drip":
        return _drip(req)
    if head == "anything":
        return _anything(req, pod)
    if head == "cookies" and len(parts) == 2 and parts[1] in ("set", "delete"):
        return _set_cookies(req, pod, parts[1] == "delete")
    simple = {
        "get": lambda: _echo(req, pod),
        "headers": lambda: _json(pod, {"headers": _headers(req)}),
        "cookies": lambda: _json(pod, {"cookies": _cookies(req)}),
        "ip": lambda: _json(pod, {"origin": req.client_ip}),
        "user-agent": lambda: _json(pod, {"user-agent": _headers(req).get("User-Agent")}),
        "uuid": lambda: _json(pod, {"uuid": str(uuid.uuid4())}),
        "response-headers": lambda: _response_headers(req, pod),
        "healthz": lambda: Response(200, b"ok\n", "text/plain"),
        "readyz": lambda: Response(200, b"ok\n", "text/plain"),
        "": lambda: _json(pod, {"service": "tether-lab httpbin", "routes": ROUTES}),
    }
    if len(parts) <= 1 and head in simple:
        return simple[head]()
    return _json(pod, {"error": f"no route for {path}"}, 404)


def _drip(req: Request) -> Response:
    args = dict(parse_qsl(urlsplit(req.target).query))
    try:
        count = min(max(int(args.get("numbytes", 10)), 1), 10 * 1024)
        duration = min(max(float(args.get("duration", 2)), 0.0), MAX_DELAY)
        delay = min(max(float(args.get("delay", 0)), 0.0), MAX_DELAY)
        code = int(args.get("code", 200))
    except ValueError:
        return Response(400, b"Invalid drip parameters\n", "text/plain")
    return Response(code, b"*" * count, "application/octet-stream", delay=delay,
                    drip=(count, duration / count))  # fmt: skip


def _response_headers(req: Request, pod: Pod) -> Response:
    args = parse_qsl(urlsplit(req.target).query, keep_blank_values=True)
    return _json(pod, dict(args), headers=list(args))


ROUTES = [
    "/get", "/headers", "/cookies", "/cookies/set?k=v", "/cookies/delete?k", "/status/<codes>",
    "/delay/<seconds>", "/drip?numbytes=n&duration=s", "/ip", "/user-agent", "/uuid",
    "/anything", "/response-headers?k=v", "/healthz",
]  # fmt: skip
