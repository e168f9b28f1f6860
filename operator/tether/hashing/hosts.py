"""Hosts as the consistent-hash algorithms see them: a hash key string and an integer weight.

The key is what Envoy hashes for a host (``HashingLoadBalancer::hashKey``): the ``envoy.lb``
``hash_key`` metadata if set, else the hostname when ``use_hostname_for_hashing``, else the
address as ``ip:port`` (``[v6]:port``). Callers decide which; this module only carries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

_MAX_WEIGHT_SUM = 0xFFFFFFFF  # Envoy validates the per-priority weight sum fits in uint32


class Host(NamedTuple):
    """One upstream host: the string Envoy hashes for it and its load-balancing weight (≥ 1)."""

    key: str
    weight: int = 1


def validate_hosts(hosts: Sequence[Host]) -> None:
    """Raise ValueError unless every key is a non-empty str and every weight an int ≥ 1.

    The weight sum must fit in uint32, as Envoy's ``validateEndpoints`` requires.
    """
    total = 0
    for host in hosts:
        if not isinstance(host.key, str) or not host.key:
            raise ValueError(f"host key must be a non-empty string, got {host.key!r}")
        weight = host.weight
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ValueError(f"host {host.key!r}: weight must be an integer >= 1, got {weight!r}")
        total += weight
    if total > _MAX_WEIGHT_SUM:
        raise ValueError(f"sum of host weights {total} exceeds {_MAX_WEIGHT_SUM}")


def normalized_weights(hosts: Sequence[Host]) -> list[float]:
    """Envoy ``normalizeHostWeights`` without locality: ``w_i * 1.0 / sum(w)`` in host order.

    The doubles are bit-identical to Envoy's (same single IEEE division per host).
    """
    total = sum(h.weight for h in hosts)
    return [h.weight * 1.0 / total for h in hosts]


def canonical_order(hosts: Sequence[Host]) -> list[Host]:
    """Hosts sorted by key (then weight): the order the operator always builds tables in.

    Ring hash is host-order dependent in Envoy; building from this order makes the ring (and
    Maglev, which sorts by key anyway) a function of the host *set*, never of EndpointSlice
    order. Python str order equals the bytewise UTF-8 order Envoy's Maglev sort uses.
    """
    return sorted(hosts, key=lambda h: (h.key, h.weight))
