"""The lab's credentials: a CA, serving certificates, the ServiceAccount signing key, tokens.

Keys are ECDSA P-256 (fast to generate); `openssl` does the work. Everything is written under
the lab's `pki/` folder with mode 0600 for keys.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import yaml

CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

# User, groups: every control-plane client is a cluster admin; pods get ServiceAccount tokens
# (TokenRequest) and are subject to RBAC like anywhere else.
IDENTITIES = {
    "admin": ("admin", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", "system:masters"),
    "kube-scheduler": ("system:kube-scheduler", "system:masters"),
    "kubelet": ("tether-lab:kubelet", "system:masters"),
}


def _openssl(*args: str, cwd: Path) -> None:
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {out.stderr.strip()}")


def _signed_cert(pki: Path, name: str, cn: str, sans: list[str]) -> None:
    _openssl("req", "-new", *CURVE, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={cn}", cwd=pki)  # fmt: skip
    (pki / f"{name}.ext").write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={','.join(sans)}\n"
    )
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "3650", "-out", f"{name}.crt",
             "-extfile", f"{name}.ext", cwd=pki)  # fmt: skip
    for leftover in (f"{name}.csr", f"{name}.ext"):
        (pki / leftover).unlink()


def create(pki: Path, node_ips: list[str], service_ip: str) -> dict[str, str]:
    """Write CA, apiserver and kubelet certs, SA key pair and a token file; return the tokens.

    Invariant: `tokens.csv` maps each IDENTITIES entry to a fresh random token, and
    `apiserver.crt` is valid for 127.0.0.1, localhost and the in-cluster service names.
    """
    pki.mkdir(parents=True, mode=0o700, exist_ok=True)
    _openssl("req", "-x509", *CURVE, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
             "-subj", "/CN=tether-lab-ca", cwd=pki)  # fmt: skip
    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           "kubernetes.default.svc.cluster.local"]  # fmt: skip
    _signed_cert(pki, "apiserver", "kube-apiserver",
                 [f"DNS:{d}" for d in dns] + ["IP:127.0.0.1", f"IP:{service_ip}"])  # fmt: skip
    _signed_cert(pki, "kubelet", "tether-lab-kubelet",
                 ["DNS:localhost", "IP:127.0.0.1"] + [f"IP:{ip}" for ip in node_ips])  # fmt: skip
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key", cwd=pki)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    tokens = {who: secrets.token_urlsafe(32) for who in IDENTITIES}
    lines = [
        f'{tokens[who]},{user},{user},"{groups}"' for who, (user, groups) in IDENTITIES.items()
    ]
    (pki / "tokens.csv").write_text("\n".join(lines) + "\n")
    for key in pki.glob("*.key"):
        key.chmod(0o600)
    (pki / "tokens.csv").chmod(0o600)
    return tokens


def kubeconfig(server: str, ca_file: Path, token: str, user: str, namespace: str = "") -> str:
    """Return a kubeconfig (YAML) for `server` verified against `ca_file`, authenticating by
    `token` (anonymous when it is empty)."""
    context = {"cluster": "tether-lab", "user": user}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "tether-lab",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token} if token else {}}],
        "contexts": [{"name": "tether-lab", "context": context}],
        "current-context": "tether-lab",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically with mode 0600 (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)
