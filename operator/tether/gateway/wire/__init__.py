"""The gateway's head fast path: one native call per request head and per response head.

Most requests a gateway sees are small and well-formed, with no body or a Content-Length
one, and their head arrives in one read; most responses are one Content-Length body. For
those, ``scan_request`` / ``scan_response`` validate a strict subset of HTTP/1.1 and return
the bytes to forward (the original head with hop-by-hop lines removed and the gateway's lines
spliced in), so no per-header Python callback runs; a request's Content-Length body is framed
by counting. Anything outside that subset (chunked requests, chunked or close-delimited
responses, 1xx, Upgrade, Connection naming other headers, duplicate Host/Content-Length/
Connection, obs-fold, bare CR/LF, unknown methods, absolute-form targets, a Host outside
``name[:port]``, heads not complete yet or oversized) returns None and the caller feeds the
same bytes to llhttp, which stays the judge of validity.

Invariants (tested on random heads): the native module and ``reference`` return identical
results; every head accepted here is accepted by llhttp with the same method, target,
header values, body length and keep-alive decision, and both parsers sit at a message
boundary after it (and its body).
"""

from __future__ import annotations

from . import reference
from .reference import F_HTTP10, F_KEEP_ALIVE, MAX_RESPONSE_HEAD

try:
    from . import _wire
except ImportError:  # pragma: no cover - only where the extension failed to build
    _wire = None

NATIVE: bool = _wire is not None
scan_request = _wire.scan_request if _wire else reference.scan_request
scan_response = _wire.scan_response if _wire else reference.scan_response
header_values = _wire.header_values if _wire else reference.header_values

__all__ = [
    "F_HTTP10",
    "F_KEEP_ALIVE",
    "MAX_RESPONSE_HEAD",
    "NATIVE",
    "header_values",
    "scan_request",
    "scan_response",
]
