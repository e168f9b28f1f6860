"""Table documents built exactly as the operator builds them, for the key-space tests."""

from __future__ import annotations

from tether.models import table as t
from tether.reconcile import tables

COOKIE = t.HashKey(kind="cookie", name="sticky-session-key", ttlSeconds=0)


def policy(algorithm: str = "maglev", size: int | None = None, **kw) -> t.Policy:
    """A consistent-hash policy; ring-hash defaults to Istio's minimum ring of 1024."""
    if algorithm == "maglev":
        return t.Policy(
            type="consistentHash", algorithm="maglev", tableSize=size or 65537, hashKey=COOKIE
        )
    if algorithm == "ring-hash":
        return t.Policy(
            type="consistentHash",
            algorithm="ring-hash",
            minRingSize=size or 1024,
            maxRingSize=8388608,
            hashKey=COOKIE,
            **kw,
        )
    return t.Policy(type="consistentHash", algorithm=algorithm, hashKey=COOKIE)


def endpoint(ip: str, port: int = 8080, ready: bool = True, weight: int = 1, pod=None):
    """One endpoint as the planner lists it (terminating when not ready)."""
    return t.Endpoint(
        address=ip,
        port=port,
        pod=pod or f"pod-{ip.rsplit('.', 1)[-1]}",
        ready=ready,
        serving=ready,
        terminating=not ready,
        weight=weight,
        hashKey=f"{ip}:{port}",
    )


def doc(endpoints, pol: t.Policy | None = None, port: int = 8000, subset=None) -> t.TableDocument:
    """A sealed document whose table is built by the operator's own builder."""
    pol = pol or policy()
    eps = tuple(sorted(endpoints, key=lambda e: e.hash_key))
    body = t.TableDocument(
        schemaVersion=t.SCHEMA_VERSION,
        service=t.Service(
            namespace="default",
            name="httpbin",
            host="httpbin.default.svc.cluster.local",
            port=port,
            portName="http" if port == 8000 else f"p{port}",
        ),
        subset=subset,
        subsetLabels={"track": subset} if subset else None,
        policy=pol,
        endpoints=eps,
    )
    return body.model_copy(update={"table": tables.build(pol, eps)}).sealed()


def ips(n: int, start: int = 2) -> list[str]:
    """n pod addresses in the lab's pod CIDR."""
    return [f"10.244.0.{i}" for i in range(start, start + n)]


def docs_for(n: int, pol: t.Policy | None = None, start: int = 2) -> t.TableDocument:
    """A document of n ready endpoints."""
    return doc([endpoint(ip) for ip in ips(n, start)], pol)
