"""A pod's ServiceAccount credentials: a bound token from the TokenRequest API, written as the
files a pod would see (`serviceaccount/{token,ca.crt,namespace}`) plus a kubeconfig.

The token is bound to the pod (`boundObjectRef`), so it stops working when the pod is deleted,
and the apiserver reports the pod's name in the token's `extra` (SelfSubjectReview shows it).
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from tether.lab import layout, pki
from tether.lab.kubelet.api import Api

TOKEN_SECONDS = 24 * 3600


def service_account(pod: dict) -> str:
    """Return the pod's ServiceAccount name (`default` when unset)."""
    spec = pod.get("spec", {})
    return spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"


async def automount(api: Api, pod: dict) -> bool:
    """Return whether the pod gets a token: the pod's automountServiceAccountToken wins, then
    the ServiceAccount's, default true (Kubernetes' rule)."""
    explicit = pod.get("spec", {}).get("automountServiceAccountToken")
    if explicit is not None:
        return bool(explicit)
    ns = pod["metadata"]["namespace"]
    sa = await api.get(f"/api/v1/namespaces/{ns}/serviceaccounts/{service_account(pod)}")
    return sa.get("automountServiceAccountToken", True) is not False


async def request_token(api: Api, pod: dict, seconds: int = TOKEN_SECONDS) -> tuple[str, float]:
    """Return (token, expiry as a UNIX time) for the pod's ServiceAccount, bound to the pod."""
    meta = pod["metadata"]
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }
    path = f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{service_account(pod)}/token"
    status = (await api.post(path, body))["status"]
    expiry = datetime.fromisoformat(status["expirationTimestamp"].replace("Z", "+00:00"))
    return status["token"], expiry.timestamp()


def write_files(
    pod_dir: Path, pod: dict, token: str | None, ca_file: Path, server: str | None = None
) -> Path:
    """Write serviceaccount/{token,ca.crt,namespace} and a kubeconfig; return the kubeconfig.

    Without a token (automount disabled) the kubeconfig has no credentials (anonymous).
    `server` is the API server URL the pod uses (`tether.lab.apipath`; default 6443).
    """
    sa_dir = pod_dir / "serviceaccount"
    sa_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca_file, sa_dir / "ca.crt")
    ns = pod["metadata"]["namespace"]
    (sa_dir / "namespace").write_text(ns)
    if token:
        pki.write_private(sa_dir / "token", token)
    server = server or f"https://127.0.0.1:{layout.APISERVER_PORT}"
    user = f"system:serviceaccount:{ns}:{service_account(pod)}"
    text = pki.kubeconfig(server, sa_dir / "ca.crt", token or "", user, namespace=ns)
    kubeconfig = pod_dir / "kubeconfig"
    pki.write_private(kubeconfig, text)
    return kubeconfig
