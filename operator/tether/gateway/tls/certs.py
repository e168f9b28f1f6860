"""TLS certificates of the gateway's TLS listener: contexts, SNI selection, hot reload.

Invariants:
- Every certificate gets its own ``SSLContext`` from ``ssl.create_default_context
  (Purpose.CLIENT_AUTH)``: TLS 1.2 at least (1.3 with ``--tls-min-version 1.3``), forward-secret
  AEAD ciphers only for TLS 1.2 (``CIPHERS``; TLS 1.3 suites are OpenSSL's), no compression,
  no renegotiation, server cipher preference, ALPN ``http/1.1`` only (HTTP/2 is out of scope).
- A certificate is replaced only by one that loads (certificate and key parse and match); a
  bad update keeps the last good one for that name and counts an error.
- Adding, replacing or removing a certificate affects new handshakes only: established
  connections keep what they negotiated, so a reload drops no connection.
- SNI (case-insensitive): an exact DNS name wins, then a wildcard one label deep
  (``*.example.com``), then the default certificate: the first one in source order.
- Key material never touches the file system: OpenSSL reads it from an anonymous memory file.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

log = logging.getLogger("tether.gateway.tls")

CIPHERS = "@SECLEVEL=2:ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!aDSS"
MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class CertificateError(ValueError):
    """A certificate/key pair that cannot serve (unparsable, mismatched, no name)."""


@dataclass(frozen=True)
class Certificate:
    """One loaded certificate: its context, the DNS names it serves, and its expiry."""

    name: str
    context: ssl.SSLContext
    dns_names: tuple[str, ...]
    not_after: float  # Unix time


def base_context(min_version: str = "1.2") -> ssl.SSLContext:
    """A server context with the gateway's TLS defaults (module docstring), no certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = MIN_VERSIONS[min_version]
    ctx.set_ciphers(CIPHERS)
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _memory_file(data: bytes) -> int:
    fd = os.memfd_create("tether-tls", os.MFD_CLOEXEC)
    os.write(fd, data)
    return fd


def load_certificate(name: str, cert_pem: bytes, key_pem: bytes, min_version: str) -> Certificate:
    """Build the context of one PEM certificate chain and key; CertificateError if unusable."""
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise CertificateError(f"{name}: certificate does not parse: {exc}") from None
    leaf = chain[0]
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = sans.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:  # an old certificate: its common name is the only name it has
        names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    ctx = base_context(min_version)
    cert_fd, key_fd = _memory_file(cert_pem), _memory_file(key_pem)
    try:
        ctx.load_cert_chain(f"/proc/self/fd/{cert_fd}", f"/proc/self/fd/{key_fd}")
    except ssl.SSLError as exc:
        raise CertificateError(f"{name}: certificate and key do not load: {exc}") from None
    finally:
        os.close(cert_fd)
        os.close(key_fd)
    dns = tuple(n.lower().rstrip(".") for n in names)
    return Certificate(name, ctx, dns, leaf.not_valid_after_utc.timestamp())


class CertStore:
    """The certificates the TLS listener serves, by name, and the SNI choice among them."""

    def __init__(
        self,
        min_version: str = "1.2",
        first: Iterable[str] = (),
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self.min_version = min_version
        self.first = tuple(first)  # these names come first in the default order
        self.on_error = on_error
        self.certs: dict[str, Certificate] = {}
        self._exact: dict[str, Certificate] = {}
        self._wild: dict[str, Certificate] = {}
        self.default: Certificate | None = None

    def put(self, name: str, cert_pem: bytes, key_pem: bytes) -> bool:
        """Load and serve a certificate under ``name``; False (last good kept) if it fails."""
        try:
            cert = load_certificate(name, cert_pem, key_pem, self.min_version)
        except CertificateError as exc:
            self.error(name, str(exc))
            return False
        self.certs[name] = cert
        self._index()
        log.info("tls: serving %s for %s", name, ", ".join(cert.dns_names) or "(no name)")
        return True

    def error(self, name: str, why: str) -> None:
        """A certificate for ``name`` was rejected: log it and tell the gateway."""
        log.error("tls certificate %s rejected, keeping the last good one: %s", name, why)
        if self.on_error is not None:
            self.on_error(name, why)

    def remove(self, name: str) -> None:
        """Stop serving ``name`` (new handshakes only)."""
        if self.certs.pop(name, None) is not None:
            self._index()
            log.info("tls: %s removed", name)

    def _index(self) -> None:
        rank = {n: i for i, n in enumerate(self.first)}
        order = sorted(self.certs, key=lambda n: (rank.get(n, len(rank)), n))
        exact: dict[str, Certificate] = {}
        wild: dict[str, Certificate] = {}
        for name in order:
            cert = self.certs[name]
            for dns in cert.dns_names:
                if dns.startswith("*."):
                    wild.setdefault(dns[2:], cert)
                else:
                    exact.setdefault(dns, cert)
        self._exact, self._wild = exact, wild
        self.default = self.certs[order[0]] if order else None

    def select(self, server_name: str | None) -> Certificate | None:
        """The certificate for an SNI name (None: the client sent none): see module docstring."""
        if server_name:
            host = server_name.lower().rstrip(".")
            cert = self._exact.get(host)
            if cert is not None:
                return cert
            _, dot, parent = host.partition(".")
            if dot:
                cert = self._wild.get(parent)
                if cert is not None:
                    return cert
        return self.default

    def expiry(self) -> dict[str, float]:
        """Name -> Unix time its certificate expires (for metrics)."""
        return {name: cert.not_after for name, cert in self.certs.items()}

    def server_context(self) -> ssl.SSLContext:
        """The listener's context: each handshake switches to the context SNI selects."""
        ctx = base_context(self.min_version)

        def choose(sslobj, server_name, _ctx):
            cert = self.select(server_name)
            if cert is None:
                return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE  # nothing to serve yet
            sslobj.context = cert.context
            return None

        ctx.sni_callback = choose
        return ctx
