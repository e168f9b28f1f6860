"""Which DestinationRules apply to a Service: Istio's host resolution and matching.

Decisions (documented for users in the README):

- Short hosts resolve in the DestinationRule's namespace (``ResolveShortnameToFQDN``); a host
  with any dot is taken as written, so ``reviews.prod`` matches nothing in Kubernetes.
- Wildcard hosts match by suffix as Istio's ``host.Name.Matches`` does: ``*.ns.svc.cluster.local``
  matches every Service of ``ns``, ``*`` matches every Service.
- tether's gateway stands in for every client, so a rule is looked up as Istio looks it up for a
  client outside the Service's namespace, minus ``exportTo``: rules in the Service's namespace
  first, then rules in the mesh root namespace (default ``istio-system``). Within a namespace
  the most specific host wins (exact, then the longest wildcard). Rules in other namespaces
  only affect clients there, so tether ignores them. ``exportTo`` is not applied (the gateway
  acts for all namespaces); rules with a ``workloadSelector`` select client workloads, not the
  gateway, and are ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from tether.models.destinationrule import DestinationRule

DEFAULT_DOMAIN = "cluster.local"
DEFAULT_ROOT_NAMESPACE = "istio-system"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve_host(host: str, dr_namespace: str, domain: str = DEFAULT_DOMAIN) -> str:
    """Istio ``ResolveShortnameToFQDN``: only dot-less, non-IP, non-``*`` hosts are expanded."""
    if not host or host == "*" or _is_ip(host) or "." in host:
        return host
    out = f"{host}.{dr_namespace}" if dr_namespace else host
    return f"{out}.svc.{domain}" if domain else out


def service_host(namespace: str, name: str, domain: str = DEFAULT_DOMAIN) -> str:
    """The FQDN Istio registers for a Kubernetes Service: ``name.namespace.svc.domain``."""
    return f"{name}.{namespace}.svc.{domain}"


def host_matches(rule_host: str, service_fqdn: str) -> bool:
    """Istio ``host.Name.Matches`` for a concrete service host: exact, or wildcard suffix."""
    if rule_host.startswith("*"):
        return service_fqdn.endswith(rule_host[1:])
    return rule_host == service_fqdn


def _specificity(rule_host: str) -> tuple[int, int]:
    """Exact hosts beat wildcards; longer wildcards beat shorter ones."""
    return (0, len(rule_host)) if rule_host.startswith("*") else (1, len(rule_host))


def rules_for_service(
    rules: Iterable[DestinationRule],
    namespace: str,
    name: str,
    *,
    domain: str = DEFAULT_DOMAIN,
    root_namespace: str | None = DEFAULT_ROOT_NAMESPACE,
) -> list[DestinationRule]:
    """The rules that apply to Service ``namespace/name``, all with the same resolved host.

    Pass the result to ``merge_rules``. Invariant: the result is empty, or every rule in it
    resolves to one host string (the most specific match) and lives in one namespace.
    """
    fqdn = service_host(namespace, name, domain)
    candidates = [r for r in rules if r.spec.workload_selector is None]
    for ns in (namespace, root_namespace):
        if ns is None:
            continue
        matching = [
            (resolve_host(r.spec.host, r.namespace, domain), r)
            for r in candidates
            if r.namespace == ns
        ]
        matching = [(h, r) for h, r in matching if host_matches(h, fqdn)]
        if matching:
            best = max((h for h, _ in matching), key=_specificity)
            return [r for h, r in matching if h == best]
    return []
