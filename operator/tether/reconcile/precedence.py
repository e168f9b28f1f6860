"""Which load balancer and which hash key apply to one service port and subset.

Precedence, exactly as Istio builds a cluster (``MergeTrafficPolicy``): start from the top-level
policy; a top-level ``portLevelSettings`` entry for the port (first match) replaces its
loadBalancer/connectionPool/outlierDetection/tls *wholesale* (unset = default, not inherited);
a subset's policy then overrides field by field (a set ``loadBalancer`` replaces the whole
object), and the subset's own port-level entry replaces the four fields wholesale again. So per
field: subset port-level > subset > DR port-level > DR top level.

The hash key is chosen as Istio's route builder does: the first *non-nil* ``consistentHash`` in
that same order, the port-level ones included (Istio only consults them when a VirtualService
names the port, istio/istio#41257; tether always does, since tables are per port).
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.models.destinationrule import ConsistentHashLB, LoadBalancerSettings, TrafficPolicy
from tether.reconcile.merge import MergedRule


@dataclass(frozen=True)
class EffectiveLoadBalancer:
    """What Envoy would get for one cluster: its load balancer and the route's hash policy."""

    settings: LoadBalancerSettings | None  # cluster-level lb, None = Istio defaults
    hash: ConsistentHashLB | None  # route-level hash source, None = no hash policy
    origin: str  # where ``settings`` came from, e.g. "subset v2 port 9080"


def _port_merged(
    policy: TrafficPolicy | None, port: int
) -> tuple[LoadBalancerSettings | None, bool]:
    """(load balancer, from port-level?) of ``policy`` for ``port``: Istio's port-level replace."""
    if policy is None:
        return None, False
    entry = policy.port_policy(port)
    if entry is not None:
        return entry.load_balancer, True
    return policy.load_balancer, False


def _hash_of(lb: LoadBalancerSettings | None) -> ConsistentHashLB | None:
    return lb.consistent_hash if lb is not None else None


def effective_load_balancer(
    rule: MergedRule | None, port: int, subset: str | None = None
) -> EffectiveLoadBalancer:
    """The load balancer and hash source for ``port``/``subset``, Istio's precedence.

    Raises KeyError for a subset the merged rule does not define (Istio builds no cluster).
    """
    top = rule.traffic_policy if rule is not None else None
    settings, from_port = _port_merged(top, port)
    origin = f"port {port}" if from_port else "top level"
    top_entry = top.port_policy(port) if top is not None else None
    hashes = [
        _hash_of(top_entry.load_balancer) if top_entry else None,
        _hash_of(top.load_balancer) if top else None,
    ]
    if subset is not None:
        defined = rule.subset(subset) if rule is not None else None
        if defined is None:
            raise KeyError(f"subset {subset!r} is not defined")
        sp = defined.traffic_policy
        if sp is not None:
            if sp.load_balancer is not None:
                settings, origin = sp.load_balancer, f"subset {subset}"
            entry = sp.port_policy(port)
            if entry is not None:
                settings, origin = entry.load_balancer, f"subset {subset} port {port}"
            hashes = [
                _hash_of(entry.load_balancer) if entry else None,
                _hash_of(sp.load_balancer),
                *hashes,
            ]
    chosen = next((h for h in hashes if h is not None), None)
    return EffectiveLoadBalancer(settings, chosen, origin)
