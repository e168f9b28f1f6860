"""API objects (plain dicts, as the API serves them) for the watch and plan unit tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from tether.k8s.tables import CHECKSUM_ANNOTATION, MOVED_ANNOTATION
from tether.k8s.watch import Event
from tether.models import table as t

_rv = itertools.count(1)


def configmap(doc: t.TableDocument, moved: float | None = None, name: str | None = None) -> dict:
    """The table ConfigMap the operator writes for ``doc``."""
    ann = {CHECKSUM_ANNOTATION: doc.checksum}
    if moved is not None:
        ann[MOVED_ANNOTATION] = f"{moved:.6f}"
    return {
        "metadata": {
            "name": name or t.configmap_name("default", "httpbin", doc.service.port, doc.subset),
            "namespace": "tether-system",
            "resourceVersion": str(next(_rv)),
            "annotations": ann,
            "labels": {t.TABLE_LABEL: t.TABLE_LABEL_VALUE},
        },
        "data": {t.DATA_KEY: doc.dumps()},
    }


def endpointslice(name: str, endpoints, port_name: str = "http") -> dict:
    """An EndpointSlice of httpbin: ``endpoints`` is [(ip, ready)]."""
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "httpbin"},
        },
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [ip],
                "conditions": {"ready": ready, "serving": ready, "terminating": not ready},
                "targetRef": {"kind": "Pod", "name": f"pod-{ip.rsplit('.', 1)[-1]}"},
            }
            for ip, ready in endpoints
        ],
    }


AT = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def event(source: str, type_: str, obj=None, items=(), seen: float = 0.0) -> Event:
    """A watch event seen at monotonic time ``seen``."""
    return Event(source, type_, obj, tuple(items), seen, AT)
