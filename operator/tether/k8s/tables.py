"""Table ConfigMaps and DestinationRule status: the operator's only writes to the API.

Every call here is async (the blocking Kubernetes client runs in a worker thread) and
idempotent. Writes are conditional on content: a ConfigMap is written only when the checksum
of its document differs from the one already stored (annotation ``tether.dev/checksum``), so a
restart, a resync or a burst of identical events never causes a write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tether.models import table as t

log = logging.getLogger(__name__)

CHECKSUM_ANNOTATION = "tether.dev/checksum"
SOURCE_ANNOTATION = "tether.dev/source"
MOVED_ANNOTATION = "tether.dev/keys-moved"  # last change's moved fraction, survives restarts
DR_GROUP = "networking.istio.io"
DR_PLURAL = "destinationrules"


@dataclass(frozen=True)
class PublishedTable:
    """What is stored in one table ConfigMap now."""

    name: str
    service_key: tuple[str, str]
    checksum: str | None
    text: str | None
    moved: float | None = None


def load_credentials() -> None:
    """Configure the Kubernetes client from KUBECONFIG or the in-cluster service account."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


class TableStore:
    """CRUD for table ConfigMaps in one namespace, keyed by ConfigMap name."""

    def __init__(self, namespace: str, api: client.CoreV1Api | None = None) -> None:
        self.namespace = namespace
        self._api = api or client.CoreV1Api()

    async def list(self) -> dict[str, PublishedTable]:
        """All table ConfigMaps (label ``tether.dev/table=v1``) currently in the namespace."""
        selector = f"{t.TABLE_LABEL}={t.TABLE_LABEL_VALUE}"
        resp = await asyncio.to_thread(
            self._api.list_namespaced_config_map, self.namespace, label_selector=selector
        )
        out = {}
        for cm in resp.items:
            labels = cm.metadata.labels or {}
            key = (labels.get(t.LABEL_SERVICE_NAMESPACE, ""), labels.get(t.LABEL_SERVICE_NAME, ""))
            annotations = cm.metadata.annotations or {}
            try:
                moved = float(annotations[MOVED_ANNOTATION])
            except (KeyError, ValueError):
                moved = None
            out[cm.metadata.name] = PublishedTable(
                name=cm.metadata.name,
                service_key=key,
                checksum=annotations.get(CHECKSUM_ANNOTATION),
                text=(cm.data or {}).get(t.DATA_KEY),
                moved=moved,
            )
        return out

    async def put(
        self, name: str, doc: t.TableDocument, text: str, exists: bool, moved: float | None = None
    ) -> None:
        """Create or replace one table ConfigMap with exactly this document text."""
        labels = {
            t.TABLE_LABEL: t.TABLE_LABEL_VALUE,
            t.LABEL_SERVICE_NAMESPACE: doc.service.namespace,
            t.LABEL_SERVICE_NAME: doc.service.name,
            **t.MANAGED_BY,
        }
        annotations = {CHECKSUM_ANNOTATION: doc.checksum or doc.compute_checksum()}
        if moved is not None:
            annotations[MOVED_ANNOTATION] = f"{moved:.6f}"
        if doc.source is not None:
            annotations[SOURCE_ANNOTATION] = f"{doc.source.namespace}/{doc.source.name}"
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=name, namespace=self.namespace, labels=labels, annotations=annotations
            ),
            data={t.DATA_KEY: text},
        )
        if exists:
            try:
                await asyncio.to_thread(
                    self._api.replace_namespaced_config_map, name, self.namespace, body
                )
                return
            except ApiException as exc:
                if exc.status != 404:
                    raise
        try:
            await asyncio.to_thread(self._api.create_namespaced_config_map, self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            await asyncio.to_thread(
                self._api.replace_namespaced_config_map, name, self.namespace, body
            )

    async def delete(self, name: str) -> None:
        """Delete one table ConfigMap; already gone counts as done."""
        try:
            await asyncio.to_thread(self._api.delete_namespaced_config_map, name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise


class RuleStatus:
    """Writes the status subresource of DestinationRules (merge patch, only what we own)."""

    def __init__(self, version: str = "v1", api: client.CustomObjectsApi | None = None) -> None:
        self.version = version
        self._api = api or client.CustomObjectsApi()

    async def patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> bool:
        """Merge-patch ``status``; False when the DR no longer exists."""
        try:
            await asyncio.to_thread(
                self._api.patch_namespaced_custom_object_status,
                DR_GROUP,
                self.version,
                namespace,
                DR_PLURAL,
                name,
                {"status": dict(status)},
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True


def ensure_peering(name: str) -> bool:
    """Create the ClusterKopfPeering ``name`` if missing (kopf refuses to run without it).

    Returns True when it was created. Safe with several replicas starting at once.
    """
    api = client.CustomObjectsApi()
    body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
    try:
        api.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", body)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True
