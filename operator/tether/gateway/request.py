"""What a request head must satisfy before it is routed (slow path; the fast path's subset
already does): RFC 9112 versions, request targets and Host (§3.2), and the declared body size.

Every check raises ``Refuse`` with the status and the reason the client reads; the caller
answers it in the request's turn and closes the connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .http import valid_host

if TYPE_CHECKING:
    from .exchange import Exchange


class Refuse(Exception):
    """A request the gateway answers itself (status, reason) and then closes the connection."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def check_version(version: str, transfer_encoding: bool) -> bool:
    """Whether the request is HTTP/1.0; refuse any version but 1.1 and 1.0 (505).

    An HTTP/1.0 request with Transfer-Encoding is refused (RFC 9112 §6.1: its framing is
    faulty; nginx answers 400 too).
    """
    if version == "1.1":
        return False
    if version != "1.0":
        raise Refuse(505, f"HTTP/{version} is not supported (HTTP/1.1 and HTTP/1.0 are)")
    if transfer_encoding:
        raise Refuse(400, "HTTP/1.0 request with Transfer-Encoding")
    return True


def check_target(ex: Exchange) -> None:
    """Origin form passes; absolute form (``http://host/path``) becomes the origin form with
    its authority as Host (RFC 9112 §3.2.2); ``*`` only with OPTIONS; anything else is 400."""
    url = ex.path
    if url[:1] == b"/":
        return
    if url == b"*":
        if ex.method != b"OPTIONS":
            raise Refuse(400, "asterisk-form request target without OPTIONS")
        return
    scheme, sep, rest = url.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        raise Refuse(400, "malformed request target")
    end = len(rest)
    for stop in (b"/", b"?", b"#"):
        i = rest.find(stop)
        if 0 <= i < end:
            end = i
    authority, path = rest[:end], rest[end:]
    if b"@" in authority:
        raise Refuse(400, "userinfo in the request target")
    if not authority or not valid_host(authority):
        raise Refuse(400, "malformed authority in the request target")
    ex.host = authority
    ex.path = path if path[:1] == b"/" else b"/" + path
    ex.headers = [h for h in ex.headers if h[0] != b"host"]
    ex.headers.append((b"host", b"Host", authority))


def check_host(ex: Exchange, http10: bool) -> None:
    """RFC 9112 §3.2: HTTP/1.1 needs exactly one Host; it must be a valid ``host[:port]``."""
    host = ex.host
    if host is None:
        if not http10:
            raise Refuse(400, "missing Host header")
        return
    if not valid_host(host):
        raise Refuse(400, "malformed Host header")


def declared_length(headers: list[tuple[bytes, bytes, bytes]]) -> int:
    """The request's Content-Length (llhttp has validated it: one value, digits), else 0."""
    for lname, _, value in headers:
        if lname == b"content-length":
            return int(value)
    return 0
