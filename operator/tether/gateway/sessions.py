"""Persistent sessions in the gateway: hard before soft, in the one place a request is picked.

A route whose table document has a ``session`` block gets a ``SessionRoute``: the settings
(``hashing.session.SessionSpec``), the endpoint states (ready, or draining: terminating but
still serving, when drain is on) and where each endpoint sits in ``route.targets`` (draining
endpoints are appended after the ready ones, which are the only ones the soft policy sees).

Per request (``ClientProtocol._dispatch``, both for plain requests and WebSocket upgrades):

1. ``decide`` reads the value (the cookie, only on paths Envoy's cookie-path rule matches; or
   the header), judges it under the gateway's key ring at wall-clock ``now`` and decides:
   honour the named endpoint, let the soft policy pick, or refuse (strict: 503).
2. ``prepare_write`` runs whenever a target is chosen (retries included): if Envoy's rule
   says a value is due (no valid value, another endpoint served, or a signed value to
   re-issue), the next value is issued for the endpoint actually used and added to the
   response: ``Set-Cookie`` (with ``Secure`` on the TLS listener, as for the hash cookie), or
   the session header, replacing an upstream header of that name.

Counters per route (``GatewayMetrics.session``): ``<action>/<reason>`` per decision,
``rejected/<reason>`` per value refused (malformed, unsigned, unknown key, bad signature),
``issued`` and ``no-keys`` (a value could not be signed: no key ring yet). Values are never
logged; the access log carries the decision (``session``, ``session_reason``).

The native lane honours the common case itself (a valid signed cookie naming a ready or
draining endpoint, nothing to re-issue) with ``SessionRoute.check`` (``wire/session.c``) and
hands everything else to this module.
"""

from __future__ import annotations

import logging
import time

from tether.hashing.keys.parse import cookie_needle, scan_cookie
from tether.hashing.session import (
    HONOUR,
    PICK,
    REJECT,
    REJECTED,
    Decision,
    KeyRing,
    Reading,
    SessionSpec,
    decide,
    issue,
    needs_write,
    path_matches,
    read_cookie_value,
    read_header_value,
    response_header,
)

log = logging.getLogger("tether.gateway")

STRICT_REFUSAL = "session endpoint unavailable (strict)"
HONOURED_NATIVELY = "honour/valid"  # the counter the native lane increments


class SessionRoute:
    """One route's session settings and endpoint map (immutable but for ``bind``)."""

    __slots__ = ("check", "counts", "index", "index_b", "match_all", "needle", "spec", "states")

    def __init__(self, spec: SessionSpec, states: dict[str, int], index: dict[str, int]) -> None:
        self.spec = spec
        self.states = states  # authority → READY | DRAINING (others are unavailable)
        self.index = index  # authority → position in route.targets
        self.index_b = {a.encode(): i for a, i in index.items()}  # the native lane's view
        self.match_all = not spec.path or spec.path == "/"
        self.needle = cookie_needle(spec.name, True) if spec.kind == "cookie" else spec.lname
        self.check = None  # wire.SessionCheck for the current key ring (native lane)
        self.counts: dict[str, int] = {}  # replaced by the gateway's live metrics dict

    @property
    def native_ok(self) -> bool:
        """Whether the native lane may honour this route's values (cookie, signed, all paths)."""
        spec = self.spec
        return (
            spec.kind == "cookie"
            and spec.signing == "signed"
            and self.match_all
            and self.needle is not None
        )

    def bind(self, ring: KeyRing | None) -> None:
        """Prepare the native check for ``ring`` (None: the lane leaves every value to Python)."""
        self.check = None
        if ring is None or not self.native_ok or not ring.keys:
            return
        from .wire import _wire

        if _wire is None:
            return
        keys = [(k.id, k.secret, k.activates_at, k.retires_at) for k in ring.keys]
        try:
            self.check = _wire.SessionCheck(self.spec.context, keys, self.spec.window)
        except (ValueError, TypeError) as exc:  # more keys than the native check holds
            log.warning("native session check off for this ring: %s", exc)

    def read(self, ex, ring: KeyRing | None, now: int) -> Reading | None:
        """The request's session value judged; None when the cookie path does not match."""
        spec = self.spec
        if spec.kind == "header":
            return read_header_value(spec, ex.header_values(self.needle), ring, now)
        if not self.match_all and not path_matches(spec.path, ex.path):
            return None
        needle, cookies = self.needle, ex.cookies
        value = scan_cookie(cookies, needle) if cookies and needle is not None else None
        return read_cookie_value(spec, value, ring, now)


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def decide_request(sroute: SessionRoute, ex, ring: KeyRing | None) -> Decision | None:
    """Hard before soft for one request: the decision (None: no session on this path).

    Sets ``ex.session`` (the decision) and ``ex.session_reading`` for ``prepare_write``.
    """
    now = int(time.time())
    reading = sroute.read(ex, ring, now)
    if reading is None:
        return None
    d = decide(reading, sroute.states, sroute.spec.strict)
    counts = sroute.counts
    if reading.status in REJECTED:
        _count(counts, f"rejected/{reading.status}")
    _count(counts, f"{d.action}/{d.reason}")
    ex.session = d
    ex.session_reading = reading
    return d


def honoured_index(sroute: SessionRoute, d: Decision) -> int | None:
    """Where an honoured decision sends the request (its endpoint's target index)."""
    return sroute.index.get(d.address) if d.action == HONOUR else None


def prepare_write(gw, ex, target) -> None:
    """Add the next session value to the response if one is due for ``target`` (see module)."""
    d: Decision = ex.session
    used = target.authority
    ex.extra_lines = None
    ex.resp_drop = None
    if d.action == REJECT or not needs_write(d, used):
        return
    sroute: SessionRoute = ex.route.session
    spec = sroute.spec
    now = int(time.time())
    reading: Reading = ex.session_reading
    made = issue(spec, used, gw.session_keys.ring, now, reading.fields)
    if made is None:
        _count(sroute.counts, "no-keys")
        return
    value, expires = made
    _, text = response_header(spec, value, expires, now)
    if spec.kind == "cookie":
        if ex.client.tls and "secure" not in (a.lower() for a, _ in spec.attributes):
            text += "; Secure"  # a session cookie set over TLS never travels in clear text
        ex.extra_lines = b"set-cookie: " + text.encode("latin-1") + b"\r\n"
    else:
        ex.extra_lines = spec.name.encode() + b": " + text.encode("latin-1") + b"\r\n"
        ex.resp_drop = spec.lname  # Envoy replaces the header: the upstream's copy goes
    _count(sroute.counts, "issued")


def log_members(ex) -> tuple[str, str]:
    """(session, session_reason) for the access log: the decision, or two empty strings."""
    d = ex.session
    if d is None:
        return "", ""
    return d.action, d.reason


__all__ = [
    "HONOUR",
    "HONOURED_NATIVELY",
    "PICK",
    "REJECT",
    "STRICT_REFUSAL",
    "SessionRoute",
    "decide_request",
    "honoured_index",
    "log_members",
    "prepare_write",
]
