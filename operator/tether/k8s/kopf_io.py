"""The Kubernetes API as the operator reaches it: kopf's own asyncio client, used directly.

kopf authenticates (kubeconfig or in-cluster ServiceAccount, re-login on 401), retries
transient failures and streams JSON lines of watch requests. tether's
caches (``tether.k8s.informer``) and writes (``tether.k8s.tables``) use that client instead of
a second one. kopf 1.45.2 (pinned in pyproject.toml) keeps it in ``kopf._cogs``; this module is
the only place tether touches those internals, so a kopf upgrade is checked here (and by
``tests/unit/handlers/test_kopf_io.py``, which fails when their shape changes).

Every call must run inside the operator's context (tasks started from a kopf startup handler
inherit it): kopf finds its credentials through a context variable.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
from kopf._cogs.clients import api, errors
from kopf._cogs.configs.configuration import OperatorSettings
from kopf._cogs.structs import references

log = logging.getLogger("tether.k8s")

Resource = references.Resource
APIError = errors.APIError
Conflict = errors.APIConflictError  # 409: a resourceVersion precondition failed, or exists
NotFound = errors.APINotFoundError  # 404
Forbidden = errors.APIForbiddenError  # 403 (after kopf's own retries)
Settings = OperatorSettings

SERVICES = Resource("", "v1", "services", kind="Service", namespaced=True)
ENDPOINTSLICES = Resource(
    "discovery.k8s.io", "v1", "endpointslices", kind="EndpointSlice", namespaced=True
)
PODS = Resource("", "v1", "pods", kind="Pod", namespaced=True)
CONFIGMAPS = Resource("", "v1", "configmaps", kind="ConfigMap", namespaced=True)
SECRETS = Resource("", "v1", "secrets", kind="Secret", namespaced=True)
PEERINGS = Resource("kopf.dev", "v1", "clusterkopfpeerings", namespaced=False)
BACKENDLBPOLICIES = Resource(
    "gateway.networking.k8s.io", "v1alpha2", "backendlbpolicies", kind="BackendLBPolicy",
    namespaced=True,
)  # fmt: skip


def destinationrules(version: str) -> Resource:
    """The DestinationRule resource of one Istio API version (v1, v1beta1, v1alpha3)."""
    return Resource(
        "networking.istio.io", version, "destinationrules", kind="DestinationRule", namespaced=True
    )


def url(
    resource: Resource,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
    params: Mapping[str, str] | None = None,
) -> str:
    """The API path of a collection or one object (relative to the server)."""
    return resource.get_url(
        namespace=namespace, name=name, subresource=subresource, params=dict(params or {})
    )


def namespace_matches(namespace: str, patterns: tuple[str, ...]) -> bool:
    """kopf's `--namespace` pattern semantics (globs, ``!`` exclusions); no patterns = all."""
    return not patterns or any(references.match_namespace(namespace, p) for p in patterns)


async def request(
    settings: Settings,
    method: str,
    path: str,
    payload: object | None = None,
    *,
    content_type: str = "application/json",
    backoffs: tuple[float, ...] = (0.5, 1.0, 2.0),
) -> Any:
    """One API call; returns the decoded JSON body. Raises ``Conflict``/``NotFound``/APIError.

    Only transient failures (connection errors, 5xx, 403 during upgrades, 429) are retried,
    with ``backoffs``; a precondition failure (409) is returned to the caller at once.
    """
    response = await api.request(
        method,
        path,
        settings=settings,
        payload=payload,
        headers={"Content-Type": content_type},
        backoffs=backoffs,
        logger=log,
    )
    async with response:
        return await response.json()


async def list_page(
    settings: Settings, path: str, params: Mapping[str, str]
) -> tuple[list[dict], str, str]:
    """One page of a list: (items, the list's resourceVersion, continue token or '')."""
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
    body = await request(settings, "get", f"{path}?{query}" if query else path)
    meta = body.get("metadata") or {}
    return body.get("items") or [], meta.get("resourceVersion") or "", meta.get("continue") or ""


async def stream(
    settings: Settings, path: str, params: Mapping[str, str], read_timeout: float
) -> AsyncIterator[dict]:
    """One watch request: yields decoded events until the server ends it.

    A connection silent for ``read_timeout`` seconds (no event, no bookmark) raises
    TimeoutError, so a dead API server is noticed.
    """
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=read_timeout)
    async for event in api.stream(
        f"{path}?{query}", settings=settings, timeout=timeout, logger=log
    ):
        yield event


TRANSIENT = (APIError, aiohttp.ClientError, TimeoutError, errors.APISessionClosed)
