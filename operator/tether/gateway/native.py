"""The native lane (``wire/lane.c``): the common exchange without Python bytecode.

``enable()`` swaps the native ``data_received`` of ClientProtocol and UpstreamConnection in;
``disable()`` restores the Python methods, which stay complete on their own (the reference
the unit tests also run). The lane is on by default when the extension is built; set
``TETHER_GATEWAY_NATIVE=0`` to run the pure-Python gateway.

Route binding costs nothing per table change: ``lane_bind`` resolves the classes' slot offsets
once per process, and the lane keeps no state per route. For each request it reads
``gateway.router`` and that Router's Host cache (``Router._cache``). A table swap installs a
new Router whose cache starts empty, so the first request for each Host after a swap takes
Python's ``_dispatch``, which fills the cache. Both paths then pick from the same Route objects.
"""

from __future__ import annotations

import os

from xxhash import xxh64_intdigest

from tether.hashing.keys.parse import scan_cookie

from .accesslog import AccessLog
from .config import GatewayConfig
from .exchange import Exchange, exchange_template
from .metrics import BUCKETS, Histogram
from .proxy import ClientProtocol
from .routes import Route, Router, Target
from .sessions import SessionRoute
from .upstream import M_RAW_CLOSE, Pools, UpstreamConnection
from .wire import _wire

_PYTHON = (ClientProtocol.data_received, UpstreamConnection.data_received)
ClientProtocol._py_data_received = _PYTHON[0]
UpstreamConnection._py_data_received = _PYTHON[1]
_NATIVE: tuple | None = None


def install(gateway_cls: type) -> None:
    """Bind the lane to the gateway classes (server.py calls this once); on unless disabled."""
    global _NATIVE
    if _wire is None or _NATIVE is not None:
        return
    classes = (
        AccessLog, ClientProtocol, Exchange, gateway_cls, GatewayConfig, Histogram, Pools, Route,
        Router, SessionRoute, Target, UpstreamConnection,
    )  # fmt: skip
    _NATIVE = _wire.lane_bind(
        {cls.__name__: cls for cls in classes},
        exchange_template(), BUCKETS, M_RAW_CLOSE, scan_cookie, xxh64_intdigest,
    )  # fmt: skip
    if os.environ.get("TETHER_GATEWAY_NATIVE", "1") != "0":
        enable()


def enable() -> bool:
    """Use the native lane if it is built; True when it is in use."""
    if _NATIVE is None:
        return False
    ClientProtocol.data_received, UpstreamConnection.data_received = _NATIVE
    return True


def disable() -> None:
    """Use the pure-Python data path."""
    ClientProtocol.data_received, UpstreamConnection.data_received = _PYTHON


def active() -> bool:
    """True when the native lane handles data_received."""
    return _NATIVE is not None and ClientProtocol.__dict__["data_received"] is _NATIVE[0]
