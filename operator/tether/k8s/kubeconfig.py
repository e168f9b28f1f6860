"""Connect to a cluster the way kubectl does, for the `kubectl tether` commands.

Precedence, as kubectl: ``--kubeconfig`` (one file) > ``$KUBECONFIG`` (a list of files joined
by ``:``, merged: the first file to name a context, cluster or user, or to set
``current-context``, wins) > ``~/.kube/config`` > the in-cluster ServiceAccount.
``--context`` picks a context (default: the current one). The namespace is ``-n`` if given,
else the context's namespace, else ``default`` (in a pod: the pod's own namespace).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client, config

SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Cluster:
    """An API client for one context, and the namespace kubectl would default to."""

    api: client.ApiClient
    namespace: str
    context: str | None


def _files(kubeconfig: str | None) -> str | None:
    """The kubeconfig path (list) kubectl would read, or None when there is none."""
    if kubeconfig:
        return kubeconfig
    paths = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    existing = [p for p in paths.split(os.pathsep) if p and os.path.exists(p)]
    return os.pathsep.join(existing) or None


def _first_current_context(files: str) -> str | None:
    """kubectl's rule: the first file that sets ``current-context`` wins (the Python client
    would take the last)."""
    for path in files.split(os.pathsep):
        with open(path) as f:
            ctx = (yaml.safe_load(f) or {}).get("current-context")
        if ctx:
            return ctx
    return None


def connect(
    kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
) -> Cluster:
    """A Cluster for these kubectl-style flags; ConfigException when nothing is configured."""
    files = _files(kubeconfig)
    if files is None:
        if context:
            raise config.ConfigException(f"context {context!r} given but no kubeconfig found")
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)
        ns = SA_NAMESPACE.read_text().strip() if SA_NAMESPACE.exists() else "default"
        return Cluster(client.ApiClient(cfg), namespace or ns, None)
    context = context or _first_current_context(files)
    api = config.new_client_from_config(config_file=files, context=context, persist_config=False)
    contexts, current = config.list_kube_config_contexts(files)
    chosen = next((c for c in contexts if c["name"] == context), None) if context else current
    ctx_ns = ((chosen or {}).get("context") or {}).get("namespace")
    return Cluster(api, namespace or ctx_ns or "default", (chosen or {}).get("name"))
