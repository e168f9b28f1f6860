"""Read-only views of one Service for `kubectl tether`: its table ConfigMaps, slices and pods.

The table ConfigMaps are found exactly as the gateway finds them (label ``tether.dev/table=v1``
in the tables namespace), narrowed to one Service by the operator's
``tether.dev/service-namespace`` / ``tether.dev/service-name`` labels. EndpointSlices are the
Service's own (``kubernetes.io/service-name``). Nothing here writes to the API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tether.k8s.kubeconfig import Cluster
from tether.k8s.watch import Event, Watcher, list_items
from tether.models import table as t

SLICE_LABEL = "kubernetes.io/service-name"


def table_selector(namespace: str, name: str) -> str:
    """Label selector of one Service's table ConfigMaps."""
    return (
        f"{t.TABLE_LABEL}={t.TABLE_LABEL_VALUE},"
        f"{t.LABEL_SERVICE_NAMESPACE}={namespace},{t.LABEL_SERVICE_NAME}={name}"
    )


def list_tables(cluster: Cluster, tables_ns: str, namespace: str, name: str) -> list[dict]:
    """The Service's table ConfigMaps now, as raw dicts."""
    core = client.CoreV1Api(cluster.api)
    items, _ = list_items(
        core.list_namespaced_config_map, tables_ns, label_selector=table_selector(namespace, name)
    )
    return items


def _started(source: str, sink, list_fn, namespace: str, selector: str) -> Watcher:
    w = Watcher(source, sink, list_fn, namespace, label_selector=selector)
    w.start()
    return w


def watch_tables(
    cluster: Cluster, tables_ns: str, namespace: str, name: str, sink: Callable[[Event], None]
) -> Watcher:
    """A started Watcher of the Service's table ConfigMaps (source ``tables``)."""
    list_fn = client.CoreV1Api(cluster.api).list_namespaced_config_map
    return _started("tables", sink, list_fn, tables_ns, table_selector(namespace, name))


def watch_slices(
    cluster: Cluster, namespace: str, name: str, sink: Callable[[Event], None]
) -> Watcher:
    """A started Watcher of the Service's EndpointSlices (source ``slices``)."""
    list_fn = client.DiscoveryV1Api(cluster.api).list_namespaced_endpoint_slice
    return _started("slices", sink, list_fn, namespace, f"{SLICE_LABEL}={name}")


def _controller(pod: dict) -> str | None:
    refs = (pod.get("metadata") or {}).get("ownerReferences") or []
    return next((r["uid"] for r in refs if r.get("controller")), None)


def sibling_pods(cluster: Cluster, namespace: str, names: Iterable[str]) -> list[dict]:
    """Active pods with the same controller (ReplicaSet) as the named pods, these included.

    These are the pods a ``kubectl scale`` counts and chooses from, pending ones too.
    """
    wanted = set(names)
    core = client.CoreV1Api(cluster.api)
    items, _ = list_items(core.list_namespaced_pod, namespace)
    owners = {_controller(p) for p in items if p["metadata"]["name"] in wanted} - {None}
    return [
        p
        for p in items
        if (p["metadata"]["name"] in wanted or _controller(p) in owners)
        and not p["metadata"].get("deletionTimestamp")
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]


def service_exists(cluster: Cluster, namespace: str, name: str) -> bool:
    """True when the Service exists (for a clearer message when it has no table)."""
    try:
        client.CoreV1Api(cluster.api).read_namespaced_service(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
