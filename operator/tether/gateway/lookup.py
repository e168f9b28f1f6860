"""Turn one validated table document into a host chooser (decode the shipped table or rebuild).

Index spaces: the document's table holds indices into ``doc.endpoints`` (document order). Only
``ready`` endpoints are hashed (terminating endpoints are never ready), so the gateway works in
the *compact* space of ready endpoints, in document order, and remaps the shipped table once
here. Invariant: every chooser returned answers compact indices 0..len(ready)-1, and a rebuilt
table is used only if its digest equals the document's ``table.digest``.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from tether.hashing import (
    BoundedLoad,
    Host,
    Ketama,
    Maglev,
    MaglevConfig,
    RingHash,
    RingHashConfig,
    normalized_weights,
)
from tether.models.table import (
    Endpoint,
    TableDocument,
    TableDocumentError,
    decode_maglev,
    decode_ring,
    raw_digest_maglev,
    raw_digest_ring,
)


def ready_endpoints(doc: TableDocument) -> tuple[list[int], list[Endpoint]]:
    """(document indices, endpoints) of the endpoints that take traffic, in document order.

    Exactly the operator's rule (``reconcile.tables``): ``ready`` endpoints; a terminating
    endpoint is never ready in an EndpointSlice.
    """
    idx = [i for i, ep in enumerate(doc.endpoints) if ep.ready]  # as the operator hashes them
    return idx, [doc.endpoints[i] for i in idx]


def _compact(indices: Sequence[int], doc_to_compact: dict[int, int]) -> list[int]:
    try:
        return [doc_to_compact[i] for i in indices]
    except KeyError as exc:
        raise TableDocumentError(f"table points at endpoint {exc} which is not ready") from None


def _rebuild(doc: TableDocument, hosts: list[Host], ready_idx: list[int]):
    """Rebuild the table from policy + ready endpoints; verify the digest in document space."""
    policy, table = doc.policy, doc.table
    n = len(doc.endpoints)
    if policy.algorithm == "maglev":
        built = Maglev.build(hosts, MaglevConfig(table_size=policy.table_size or 65537))
        digest = raw_digest_maglev([ready_idx[i] for i in built.table], n)
    else:
        cfg = RingHashConfig(
            min_ring_size=policy.min_ring_size or 1024,
            max_ring_size=policy.max_ring_size or 8388608,
            hash_function=policy.hash_function,
        )
        built = RingHash.build(hosts, cfg)
        digest = raw_digest_ring(built.hashes, [ready_idx[i] for i in built.indices], n)
    if table is not None and digest != table.digest:
        raise TableDocumentError("rebuilt table digest differs from the document's")
    return built


def build_chooser(doc: TableDocument):
    """Return (chooser, hosts) for a consistentHash document, in compact (ready) index space.

    The chooser has ``choose(h, attempt) -> int | None`` (or ``choose_key`` for ketama);
    raises TableDocumentError when the shipped table is inconsistent with the document.
    """
    policy, table = doc.policy, doc.table
    ready_idx, ready = ready_endpoints(doc)
    hosts = [Host(ep.hash_key, ep.weight) for ep in ready]
    if not hosts:
        return None, hosts
    n = len(doc.endpoints)
    to_compact = {d: c for c, d in enumerate(ready_idx)}
    if policy.algorithm == "ketama":  # always rebuilt (uhashring); the shipped ring proves it
        ketama = Ketama.build(hosts)
        if table is not None:
            points, idx = ketama.points()
            if raw_digest_ring(points, [ready_idx[i] for i in idx], n) != table.digest:
                raise TableDocumentError("rebuilt ketama continuum differs from the document's")
        return ketama, hosts
    if table is None or table.data is None:
        return _rebuild(doc, hosts, ready_idx), hosts
    if policy.algorithm == "maglev":
        indices = decode_maglev(table, n)
        code = "H" if len(hosts) <= 0xFFFF else "I"
        return Maglev.from_table(array(code, _compact(indices, to_compact)), len(hosts)), hosts
    hashes, indices = decode_ring(table, n)
    return RingHash.from_arrays(hashes, _compact(indices, to_compact), len(hosts)), hosts


def bounded(chooser, hosts: list[Host], factor: int) -> BoundedLoad:
    """Wrap a chooser with Envoy's bounded load (``hash_balance_factor``), host weights as given."""
    return BoundedLoad(chooser, normalized_weights(hosts), factor)
