"""HTTP → HTTPS redirect on the plain listener (``--https-redirect-port``).

Every request passes the same parsing, checks and limits as a proxied one, then gets ``308
Permanent Redirect`` to ``https://<Host name>[:port]<target>`` (the port is left out when it is
443); 308 keeps the method and body. ACME HTTP-01 challenges (``/.well-known/acme-challenge/``)
are proxied as usual, so a certificate issuer can reach the app through the gateway. The
native lane never serves this class: it takes the Python path, which is complete on its own.
"""

from __future__ import annotations

from .exchange import Exchange
from .http import split_host_port
from .proxy import ClientProtocol

ACME_PREFIX = b"/.well-known/acme-challenge/"


def location(host: bytes, port: int, target: bytes) -> bytes:
    """The https URL for a request's Host and target (the Host's own port is dropped)."""
    name, _ = split_host_port(host)
    authority = name if port == 443 else b"%s:%d" % (name, port)
    return b"https://" + authority + target


class RedirectProtocol(ClientProtocol):
    """A client connection of the plain listener when HTTPS redirection is on."""

    __slots__ = ()

    def _dispatch(self, ex: Exchange) -> None:
        if ex.status or ex.path.startswith(ACME_PREFIX):
            super()._dispatch(ex)
            return
        if not ex.host:
            self.local_response(ex, 400, "a Host header is needed to redirect to https")
            return
        target = ex.path if ex.path[:1] == b"/" else b"/"
        url = location(ex.host, self.gw.config.https_redirect_port, target)
        ex.local = True
        ex.status = 308
        close = not ex.keep_alive or not ex.body_done or self.gw.draining
        self.transport.write(
            b"HTTP/1.1 308 Permanent Redirect\r\nlocation: %s\r\ncontent-length: 0\r\n"
            b"server: tether-gateway\r\n%s\r\n" % (url, b"connection: close\r\n" if close else b"")
        )
        self._end(ex, close=close)
