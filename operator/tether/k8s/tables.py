"""Table ConfigMaps and DestinationRule status: the operator's writes to the API.

Every write is checked against the cluster, not against a memory of it:

- ``LiveTable`` is what a ConfigMap holds now, as the operator's watch cache of the tables
  namespace last saw it (``tether.k8s.informer``), with its resourceVersion.
- ``needs_write`` compares the exact ConfigMap the operator would write with that live one
  (document text, tether's labels and annotations); equal means no write.
- Every update and delete carries the live object's resourceVersion as a precondition, and a
  create fails if the name exists: a writer whose view is stale gets ``409 Conflict`` and
  writes nothing (``kopf_io.Conflict``); it re-reads and decides again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tether.k8s import kopf_io
from tether.models import table as t

log = logging.getLogger(__name__)

CHECKSUM_ANNOTATION = "tether.dev/checksum"
SOURCE_ANNOTATION = "tether.dev/source"
MOVED_ANNOTATION = "tether.dev/keys-moved"  # last change's moved fraction, survives restarts
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class LiveTable:
    """One table ConfigMap as it is in the cluster now."""

    name: str
    resource_version: str
    service_key: tuple[str, str]
    text: str | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @property
    def moved(self) -> float | None:
        """The keys-moved fraction of the table's last change (annotation), if readable."""
        try:
            return float(self.annotations[MOVED_ANNOTATION])
        except (KeyError, ValueError):
            return None


def parse_table(obj: Mapping[str, Any]) -> LiveTable:
    """A ConfigMap dict (list/watch/write response) → LiveTable (only what tether compares)."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    own = (CHECKSUM_ANNOTATION, SOURCE_ANNOTATION, MOVED_ANNOTATION)
    return LiveTable(
        name=meta.get("name") or "",
        resource_version=meta.get("resourceVersion") or "",
        service_key=(
            labels.get(t.LABEL_SERVICE_NAMESPACE, ""),
            labels.get(t.LABEL_SERVICE_NAME, ""),
        ),
        text=(obj.get("data") or {}).get(t.DATA_KEY),
        labels={k: labels[k] for k in _labels_of("", "") if k in labels},
        annotations={k: annotations[k] for k in own if k in annotations},
    )


def _labels_of(namespace: str, name: str) -> dict[str, str]:
    return {
        t.TABLE_LABEL: t.TABLE_LABEL_VALUE,
        t.LABEL_SERVICE_NAMESPACE: namespace,
        t.LABEL_SERVICE_NAME: name,
        **t.MANAGED_BY,
    }


def table_body(
    name: str, namespace: str, doc: t.TableDocument, text: str, moved: float | None
) -> dict[str, Any]:
    """The exact ConfigMap tether writes for one sealed document."""
    annotations = {CHECKSUM_ANNOTATION: doc.checksum or doc.compute_checksum()}
    if moved is not None:
        annotations[MOVED_ANNOTATION] = f"{moved:.6f}"
    if doc.source is not None:
        annotations[SOURCE_ANNOTATION] = f"{doc.source.namespace}/{doc.source.name}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": _labels_of(doc.service.namespace, doc.service.name),
            "annotations": annotations,
        },
        "data": {t.DATA_KEY: text},
    }


def needs_write(live: LiveTable | None, body: Mapping[str, Any]) -> bool:
    """True unless the live ConfigMap already holds this body's text, labels and annotations.

    The moved fraction is informational: a live value is kept when the content is equal.
    """
    if live is None:
        return True
    meta = body["metadata"]
    wanted = {k: v for k, v in meta["annotations"].items() if k != MOVED_ANNOTATION}
    have = {k: v for k, v in live.annotations.items() if k != MOVED_ANNOTATION}
    return (
        live.text != body["data"][t.DATA_KEY]
        or dict(live.labels) != meta["labels"]
        or have != wanted
    )


class TableWriter:
    """Conditional create / replace / delete of table ConfigMaps in one namespace."""

    def __init__(self, settings: kopf_io.Settings, namespace: str) -> None:
        self.settings = settings
        self.namespace = namespace

    def _path(self, name: str | None = None) -> str:
        return kopf_io.url(kopf_io.CONFIGMAPS, namespace=self.namespace, name=name)

    async def create(self, body: Mapping[str, Any]) -> dict:
        """Create; Conflict if the name exists (someone wrote it since the cache saw it)."""
        return await kopf_io.request(self.settings, "post", self._path(), body)

    async def replace(self, body: Mapping[str, Any], resource_version: str) -> dict:
        """Replace, only if the ConfigMap is still at ``resource_version`` (else Conflict)."""
        meta = {**body["metadata"], "resourceVersion": resource_version}
        name = meta["name"]
        return await kopf_io.request(
            self.settings, "put", self._path(name), {**body, "metadata": meta}
        )

    async def delete(self, name: str, resource_version: str) -> None:
        """Delete, only if still at ``resource_version``; already gone counts as done."""
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"resourceVersion": resource_version},
        }
        with contextlib.suppress(kopf_io.NotFound):
            await kopf_io.request(self.settings, "delete", self._path(name), options)


class StatusPatch:
    """Writes the status subresource of one resource kind (merge patch, only what tether owns)."""

    def __init__(self, settings: kopf_io.Settings, resource: kopf_io.Resource) -> None:
        self.settings = settings
        self.resource = resource

    async def patch(
        self,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        resource_version: str | None = None,
    ) -> bool:
        """Merge-patch ``status`` (conditional on ``resource_version`` when given).

        False when the object no longer exists; Conflict when it changed since it was read.
        """
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        path = kopf_io.url(self.resource, namespace=namespace, name=name, subresource="status")
        try:
            await kopf_io.request(self.settings, "patch", path, body, content_type=MERGE_PATCH)
        except kopf_io.NotFound:
            return False
        return True


class RuleStatus(StatusPatch):
    """The status of DestinationRules of one Istio API version."""

    def __init__(self, settings: kopf_io.Settings, version: str = "v1") -> None:
        super().__init__(settings, kopf_io.destinationrules(version))


def load_credentials() -> None:
    """Configure the Kubernetes client from KUBECONFIG or the in-cluster service account."""
    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


def ensure_peering(name: str) -> bool:
    """Create the ClusterKopfPeering ``name`` if missing (kopf refuses to run without it).

    Returns True when it was created. Safe with several replicas starting at once. Runs
    before kopf starts, so it uses the synchronous Kubernetes client.
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.CustomObjectsApi()
    body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
    try:
        api.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", body)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True
