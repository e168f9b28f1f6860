"""Pure-Python twin of ``_wire.c``: the head fast path, statement for statement in spirit.

The native module must return exactly what these functions return for every input (the unit
tests hold them equal on random heads). See the package docstring for what the fast path
accepts and why everything else is handed to llhttp.
"""

from __future__ import annotations

F_KEEP_ALIVE = 1  # llhttp's should_keep_alive() for this request
F_HTTP10 = 2  # the request line says HTTP/1.0
WIRE_TRUSTED = 1  # scan mode: the peer is a trusted proxy (its X-Forwarded-Proto is kept)
WIRE_HTTPS = 2  # scan mode: the connection came through the TLS listener

METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE")
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VALUE = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
_TARGET = bytes(range(0x21, 0x7F))
_DIGITS = b"0123456789"
# Host values the fast path accepts: a reg-name without comma, then an optional ":" and at
# most 5 digits (http.valid_host accepts more: IPv6 literals, which llhttp's path checks).
_HOST = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+;="
MAX_RESPONSE_HEAD = 65536  # a longer response head is left to llhttp's path (502 there)

# Lower-cased header names and what the fast path does with them. llhttp reads
# Proxy-Connection like Connection (keep-alive), so it takes the slow path.
_REQ_DROP = frozenset(
    (b"keep-alive", b"proxy-authorization", b"proxy-authenticate", b"te", b"trailer")
)
_RESP_DROP = frozenset((b"keep-alive", b"proxy-authenticate", b"trailer"))
_SLOW_NAMES = frozenset((b"upgrade", b"transfer-encoding", b"proxy-connection"))
_MAX_CL_DIGITS = 18  # 10^18 - 1 fits in int64 in the C twin
_MAX_SPANS = 64  # the C twin's fixed arrays: more dropped, Cookie or XFF lines go to llhttp

_XFF = b"x-forwarded-for: "
_XFP = b"\r\nx-forwarded-proto: "


def _only(data: bytes, allowed: bytes) -> bool:
    return not data.translate(None, allowed)


def _lines(buf: bytes, pos: int, last: int):
    """Yield (line_start, line_end, name, value) for header lines in buf[pos:last]; value has
    leading SP/HTAB removed (trailing kept, as llhttp reports it). None marks a bad line."""
    while pos < last:
        eol = buf.find(b"\r\n", pos, last + 2)
        line = buf[pos:eol]
        colon = line.find(b":")
        if colon <= 0 or not _only(line[:colon], _TCHAR):
            yield None
            return
        value = line[colon + 1 :].lstrip(b" \t")
        if not _only(value, _VALUE):
            yield None
            return
        yield pos, eol + 2, line[:colon].lower(), value
        pos = eol + 2


def _token(value: bytes) -> bytes:
    """A Connection value as one lower-cased token (trailing SP/HTAB ignored, as llhttp does)."""
    return value.rstrip(b" \t").lower()


def _connection_once(seen: bytes | None, value: bytes) -> bytes | None:
    """The head's single Connection token (close or keep-alive); None declines the head."""
    if seen is not None:
        return None
    token = _token(value)
    return token if token in (b"close", b"keep-alive") else None


def _host_ok(value: bytes) -> bool:
    """A Host value in the fast path's subset (see _HOST)."""
    name, colon, port = value.partition(b":")
    if not _only(name, _HOST):
        return False
    return not colon or (len(port) <= 5 and _only(port, _DIGITS))


def _content_length_once(seen: int, value: bytes) -> int | None:
    """The head's single Content-Length (digits only, bounded); None declines the head."""
    if seen >= 0 or not value or len(value) > _MAX_CL_DIGITS or not _only(value, _DIGITS):
        return None
    return int(value)


def scan_request(buf: bytes, start: int, peer: bytes, mode: int, limit: int):
    """Fast-path view of the request head at ``buf[start:]``, or None (not for the fast path:
    llhttp decides, including when the head is not complete yet or longer than ``limit``).

    Returns ``(end, head, method, path, host, cookies, xff, flags, clen)``: ``end`` is the
    offset after the head; ``clen`` the Content-Length body that follows it (0: none, and the
    next message starts at ``end``); ``head`` is what
    goes upstream: the original bytes minus hop-by-hop and X-Forwarded-* lines, the version
    forced to HTTP/1.1, then ``x-forwarded-for: [<xff>, ]<peer>`` and ``x-forwarded-proto``
    (the client's value only when ``mode & WIRE_TRUSTED`` and non-empty, else ``https`` when
    ``mode & WIRE_HTTPS``, else ``http``). ``host`` is the
    Host value or None; ``cookies`` a tuple of Cookie values; ``xff`` the client's
    X-Forwarded-For values joined with ``", "`` or None; ``flags`` F_KEEP_ALIVE | F_HTTP10.
    """
    hend = buf.find(b"\r\n\r\n", start)
    if hend < 0:
        return None
    end = hend + 4
    if end - start > limit:
        return None
    eol = buf.find(b"\r\n", start)
    line = buf[start:eol]
    parts = line.split(b" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    if method not in METHODS or target[:1] != b"/" or not _only(target, _TARGET):
        return None
    if version == b"HTTP/1.1":
        http10 = False
    elif version == b"HTTP/1.0":
        http10 = True
    else:
        return None
    out = [buf[start : eol - 1] + b"1\r\n" if http10 else buf[start : eol + 2]]
    host = None
    cookies: list[bytes] = []
    xffs: list[bytes] = []
    xfp = None
    conn = None
    clen = -1
    lines = 0
    for item in _lines(buf, eol + 2, hend):
        if item is None:
            return None
        lines += 1
        lo, hi, name, value = item
        if name == b"host":
            if host is not None or not _host_ok(value):
                return None
            host = value
        elif name == b"cookie":
            cookies.append(value)
        elif name == b"x-forwarded-for":
            xffs.append(value)
            continue
        elif name == b"x-forwarded-proto":
            xfp = value
            continue
        elif name == b"connection":
            conn = _connection_once(conn, value)
            if conn is None:
                return None
            continue
        elif name == b"content-length":
            clen = _content_length_once(clen, value)
            if clen is None:
                return None
        elif name in _REQ_DROP:
            continue
        elif name in _SLOW_NAMES:
            return None
        out.append(buf[lo:hi])
    if host is None or max(len(cookies), len(xffs), lines - (len(out) - 1)) > _MAX_SPANS:
        return None
    xff = b", ".join(xffs) if xffs else None
    out.append(_XFF)
    if xff is not None:
        out.append(xff + b", ")
    proto = xfp if (mode & WIRE_TRUSTED and xfp) else b"https" if mode & WIRE_HTTPS else b"http"
    out += (peer, _XFP, proto, b"\r\n\r\n")
    keep = conn == b"keep-alive" if http10 else conn != b"close"
    flags = (F_KEEP_ALIVE if keep else 0) | (F_HTTP10 if http10 else 0)
    out = b"".join(out)
    return end, out, method, target, host, tuple(cookies), xff, flags, max(clen, 0)


def scan_response(buf: bytes, extra: bytes, head_request: bool):
    """Fast-path relay of a response head at ``buf[0:]``, or None (llhttp decides).

    Accepted: a head of at most MAX_RESPONSE_HEAD bytes with a final status (≥ 200) over
    HTTP/1.1 or 1.0 whose body is framed by one
    Content-Length (or that has none: 204, 304, a HEAD request, each still with a length or
    status that says so), with no more bytes in ``buf`` than that body. Returns
    ``(out, status, body, left, keep)``: ``out`` is the head without hop-by-hop lines, then
    ``extra`` (complete header lines), the blank line and the ``body`` bytes present; ``left``
    the body bytes still to come; ``keep`` whether the upstream allows reusing the connection.
    """
    hend = buf.find(b"\r\n\r\n")
    if hend < 0:
        return None
    end = hend + 4
    if end > MAX_RESPONSE_HEAD:
        return None
    eol = buf.find(b"\r\n")
    line = buf[:eol]
    if line[:9] == b"HTTP/1.1 ":
        http10 = False
    elif line[:9] == b"HTTP/1.0 ":
        http10 = True
    else:
        return None
    code = line[9:12]
    if len(line) < 13 or line[12:13] != b" " or not _only(code, _DIGITS):
        return None
    if not _only(line[13:], _VALUE):
        return None
    status = int(code)
    if status < 200:
        return None
    out = [buf[: eol + 2]]
    conn = None
    clen = -1
    lines = 0
    for item in _lines(buf, eol + 2, hend):
        if item is None:
            return None
        lines += 1
        lo, hi, name, value = item
        if name == b"connection":
            conn = _connection_once(conn, value)
            if conn is None:
                return None
            continue
        if name in _RESP_DROP:
            continue
        if name in _SLOW_NAMES:
            return None
        if name == b"content-length":
            clen = _content_length_once(clen, value)
            if clen is None:
                return None
        out.append(buf[lo:hi])
    if (clen < 0 and status != 204 and status != 304) or lines - (len(out) - 1) > _MAX_SPANS:
        return None
    if head_request or status == 204 or status == 304:
        clen = 0
    avail = len(buf) - end
    if avail > clen:
        return None
    keep = conn == b"keep-alive" if http10 else conn != b"close"
    out += (extra, b"\r\n", buf[end:])
    return b"".join(out), status, avail, clen - avail, keep


def header_values(buf: bytes, start: int, end: int, lname: bytes) -> list[bytes]:
    """Values of header ``lname`` (lower-case) in the head ``buf[start:end]`` accepted by
    ``scan_request``, in order, leading SP/HTAB removed."""
    eol = buf.find(b"\r\n", start)
    return [it[3] for it in _lines(buf, eol + 2, end - 4) if it is not None and it[2] == lname]
