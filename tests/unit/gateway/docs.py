"""Build sealed table documents the way the operator does (for gateway tests and benchmarks).

Only ready endpoints are hashed; table indices refer to the document's endpoint order.
"""

from __future__ import annotations

from tether.hashing import Host, Maglev, MaglevConfig, RingHash, RingHashConfig
from tether.models import table as t


def make_document(
    endpoints,
    *,
    namespace: str = "default",
    name: str = "httpbin",
    port: int = 8000,
    algorithm: str | None = "maglev",
    hash_key: t.HashKey | None = None,
    table_size: int = 65537,
    min_ring_size: int = 1024,
    balance: int = 0,
    simple: str = "ROUND_ROBIN",
    ship: bool = True,
) -> t.TableDocument:
    """``endpoints``: iterable of (ip, port, pod[, ready]). Returns a sealed document."""
    eps = []
    for e in endpoints:
        ip, p, pod = e[0], e[1], e[2]
        ready = e[3] if len(e) > 3 else True
        eps.append(
            t.Endpoint(
                address=ip,
                port=p,
                pod=pod,
                ready=ready,
                terminating=not ready,
                serving=ready,
                hashKey=f"{ip}:{p}",
            )
        )
    service = t.Service(
        namespace=namespace, name=name, host=f"{name}.{namespace}.svc.cluster.local", port=port
    )
    table = None
    if algorithm is None:
        policy = t.Policy(type="simple", simple=simple)
    else:
        policy = t.Policy(
            type="consistentHash",
            algorithm=algorithm,
            tableSize=table_size if algorithm == "maglev" else None,
            minRingSize=min_ring_size if algorithm == "ring-hash" else None,
            hashBalanceFactor=balance,
            hashKey=hash_key,
        )
        ready_idx = [i for i, ep in enumerate(eps) if ep.ready]
        hosts = [Host(eps[i].hash_key, eps[i].weight) for i in ready_idx]
        if algorithm == "maglev":
            m = Maglev.build(hosts, MaglevConfig(table_size))
            table = t.encode_maglev([ready_idx[i] for i in m.table], len(eps), ship=ship)
        elif algorithm == "ring-hash":
            r = RingHash.build(hosts, RingHashConfig(min_ring_size=min_ring_size))
            table = t.encode_ring(
                list(r.hashes), [ready_idx[i] for i in r.indices], len(eps), ship=ship
            )
    doc = t.TableDocument(
        schemaVersion=1, service=service, policy=policy, endpoints=tuple(eps), table=table
    )
    return doc.sealed()


def cookie_key(name: str = "sid", ttl: int | None = 0, path: str = "") -> t.HashKey:
    """A cookie hash key as the operator writes it from an Istio httpCookie."""
    return t.HashKey(kind="cookie", name=name, ttlSeconds=ttl, path=path)
