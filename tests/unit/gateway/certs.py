"""Test certificates (``cryptography``): a private CA and leaf certificates it signs.

``Pki(tmpdir)`` writes ``ca.pem``; ``leaf(names, serial)`` returns PEM bytes of a certificate
for DNS ``names`` (the first is also its common name) and its key; ``write`` drops a pair into
a certificate directory the way the gateway reads it (atomically, by rename).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class Pki:
    """A CA in ``root``; see module docstring."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("tether test CA"))
            .issuer_name(_name("tether test CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_path = self.root / "ca.pem"
        self.ca_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def leaf(self, names: list[str], serial: int = 1, days: int = 2) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) for ``names``, signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def write(directory: str | Path, name: str, cert_pem: bytes, key_pem: bytes) -> None:
    """Publish ``name/tls.crt`` and ``name/tls.key`` in ``directory`` at once, as the kubelet
    updates a mounted Secret: a fresh hidden directory, then a symlink swapped by rename."""
    version = f".{name}-{os.urandom(4).hex()}"
    os.mkdir(os.path.join(directory, version))
    for file, data in (("tls.crt", cert_pem), ("tls.key", key_pem)):
        Path(directory, version, file).write_bytes(data)
    tmp = os.path.join(directory, f".{name}.tmp")  # hidden: never read as a certificate
    os.symlink(version, tmp)
    os.replace(tmp, os.path.join(directory, name))


def write_files(directory: str | Path, name: str, cert_pem: bytes, key_pem: bytes) -> None:
    """Put ``name.crt`` and ``name.key`` in ``directory`` (the plain layout)."""
    Path(directory, name + ".key").write_bytes(key_pem)
    Path(directory, name + ".crt").write_bytes(cert_pem)


def serial_of(der: bytes) -> int:
    """Serial number of a DER certificate (what ``getpeercert(binary_form=True)`` gives)."""
    return x509.load_der_x509_certificate(der).serial_number
