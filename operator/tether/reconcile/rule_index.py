"""DestinationRules indexed by host, so finding the rules of a Service costs O(its rules).

``RuleIndex.candidates(namespace, name)`` returns every rule that could apply to the Service:
those whose resolved host is exactly the Service's FQDN, plus every wildcard rule (few in
practice). ``rules_for_service`` over the candidates gives the same answer as over all rules,
because a rule outside them cannot match the Service's host (``hosts.host_matches``).
``services_of_host`` is the other direction: which Services a rule's host may select.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tether.reconcile.hosts import DEFAULT_DOMAIN, host_matches, resolve_host, service_host
from tether.reconcile.plan import Rule

ServiceKey = tuple[str, str]


class RuleIndex:
    """Decodable rules by resolved host (exact hosts in a dict, wildcards in a small map)."""

    def __init__(self, domain: str = DEFAULT_DOMAIN) -> None:
        self.domain = domain
        self._host: dict[str, str] = {}  # rule key -> resolved host
        self._rule: dict[str, Rule] = {}  # rule key -> rule
        self._exact: dict[str, dict[str, Rule]] = {}  # host -> rule key -> rule
        self._wild: dict[str, Rule] = {}  # rule key -> rule (host starts with '*')

    def __len__(self) -> int:
        return len(self._rule)

    def host_of(self, rule: Rule) -> str:
        """The rule's host resolved as Istio does (short names in the rule's namespace)."""
        return resolve_host(rule.rule.spec.host, rule.rule.namespace, self.domain)

    def put(self, rule: Rule) -> None:
        """Add or replace one rule (keyed by namespace/name)."""
        self.remove(rule.key)
        host = self.host_of(rule)
        self._host[rule.key], self._rule[rule.key] = host, rule
        if host.startswith("*"):
            self._wild[rule.key] = rule
        else:
            self._exact.setdefault(host, {})[rule.key] = rule

    def remove(self, key: str) -> None:
        """Forget one rule; unknown keys are ignored."""
        host = self._host.pop(key, None)
        self._rule.pop(key, None)
        self._wild.pop(key, None)
        if host is not None and host in self._exact:
            self._exact[host].pop(key, None)
            if not self._exact[host]:
                del self._exact[host]

    def candidates(self, namespace: str, name: str) -> list[Rule]:
        """Every rule that may apply to Service namespace/name (a superset of the matches)."""
        exact = self._exact.get(service_host(namespace, name, self.domain), {})
        return [*exact.values(), *self._wild.values()]

    def services_of_host(
        self, host: str, all_services: Callable[[], Iterable[ServiceKey]]
    ) -> list[ServiceKey]:
        """Services whose FQDN the resolved ``host`` matches; a wildcard scans all of them."""
        if not host:
            return []
        if not host.startswith("*"):
            suffix = f".svc.{self.domain}"
            if not host.endswith(suffix):
                return []
            parts = host[: -len(suffix)].split(".")
            return [(parts[1], parts[0])] if len(parts) == 2 else []
        return [
            key for key in all_services() if host_matches(host, service_host(*key, self.domain))
        ]
