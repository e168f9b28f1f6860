"""`tether lab whoami`: what the API server makes of this process's credentials.

Meant to run inside a pod of tether's image: it loads $KUBECONFIG like any client would (the
lab's per-pod kubeconfig) or, on a real cluster, the in-cluster ServiceAccount token; asks
SelfSubjectReview who it is, and really tries to list a few resources in its namespace, so RBAC
on the pod's ServiceAccount shows in the result.
"""

from __future__ import annotations

import os
from pathlib import Path

LISTS = {
    "pods": "list_namespaced_pod",
    "secrets": "list_namespaced_secret",
    "configmaps": "list_namespaced_config_map",
    "services": "list_namespaced_service",
}


def whoami(resources: tuple[str, ...] = ("pods", "secrets")) -> dict:
    """Return {'username', 'groups', 'extra', 'namespace', 'list': {resource: HTTP status}}.

    The identity comes from the API server (SelfSubjectReview), not from local files.
    """
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    sa = Path("/var/run/secrets/kubernetes.io/serviceaccount")
    if (sa / "token").exists() and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
        source = str(sa / "token")
        namespace = (sa / "namespace").read_text().strip()
    else:
        config.load_kube_config()
        source = str(Path(os.environ.get("KUBECONFIG") or config.KUBE_CONFIG_DEFAULT_LOCATION))
        _, context = config.list_kube_config_contexts()
        namespace = context["context"].get("namespace", "default")
    review = client.AuthenticationV1Api().create_self_subject_review(client.V1SelfSubjectReview())
    user = review.status.user_info
    core = client.CoreV1Api()
    results = {}
    for resource in resources:
        try:
            getattr(core, LISTS[resource])(namespace, limit=1)
            results[resource] = 200
        except ApiException as e:
            results[resource] = e.status
    return {
        "username": user.username,
        "groups": user.groups or [],
        "extra": user.extra or {},
        "namespace": namespace,
        "list": results,
        "credentials": source,
    }
