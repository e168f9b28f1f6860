"""Turn one validated table document into a host chooser (decode the shipped table or rebuild).

Index spaces: the document's table holds indices into ``doc.endpoints`` (document order). Only
``ready`` endpoints are hashed (terminating endpoints are never ready), so the gateway works in
the *compact* space of ready endpoints, in document order, and remaps the shipped table once
here. Invariants: every chooser returned answers compact indices 0..len(ready)-1, a shipped
table is used only if its bytes hash to ``table.digest`` and every index names a ready
endpoint, and a rebuilt table is used only if its digest equals the document's.

This runs in the table worker thread, beside the event loop (``tables.worker``): each step that
holds the GIL inside one C call is bounded (base64 in 64 KiB pieces, index checks by byte
translation or in 16 Ki-slot slices), and the long steps release the GIL (zlib, SHA-256, the
Maglev fill), so the loop is never kept waiting for long by a big table.
"""

from __future__ import annotations

import binascii
import hashlib
import sys
import zlib
from array import array

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
    Table,
    TableDocument,
    TableDocumentError,
    raw_digest_ring,
)

_B64_STEP = 1 << 16  # base64 characters decoded per GIL-holding call (a multiple of 4)
_SLICE = 1 << 14  # table slots checked or remapped per step
_LE = sys.byteorder == "little"


def ready_endpoints(doc: TableDocument) -> tuple[list[int], list[Endpoint]]:
    """(document indices, endpoints) of the endpoints that take traffic, in document order.

    Exactly the operator's rule (``reconcile.tables``): ``ready`` endpoints; a terminating
    endpoint is never ready in an EndpointSlice.
    """
    idx = [i for i, ep in enumerate(doc.endpoints) if ep.ready]  # as the operator hashes them
    return idx, [doc.endpoints[i] for i in idx]


def _shipped_bytes(table: Table, expect: int) -> bytes:
    """The uncompressed table bytes, exactly ``expect`` long and hashing to ``table.digest``."""
    data = table.data or ""
    try:
        packed = b"".join(
            binascii.a2b_base64(data[i : i + _B64_STEP], strict_mode=True)
            for i in range(0, len(data), _B64_STEP)
        )
        inflate = zlib.decompressobj()
        raw = inflate.decompress(packed, expect + 1)  # bounded: no decompression bomb
    except (ValueError, zlib.error) as exc:
        raise TableDocumentError(f"table data undecodable: {exc}") from None
    if len(raw) != expect or not inflate.eof or inflate.unused_data:
        raise TableDocumentError(f"{table.format} table has the wrong size")
    if hashlib.sha256(raw).hexdigest() != table.digest:
        raise TableDocumentError("table digest mismatch")
    return raw


def _u8_values(raw: bytes) -> bytes | None:
    """The values of the little-endian u16 ``raw``, one byte each, when every value is below
    256; else None. Two C passes, no per-slot Python: UTF-16 decoding maps every unit below
    0xD800 to that code point (a surrogate unit fails, or pairs to a code point past 0xFFFF),
    and Latin-1 encoding accepts exactly the code points below 256."""
    try:
        return raw.decode("utf-16-le").encode("latin-1")
    except UnicodeError:
        return None


def compact_indices(raw: bytes, width: int, n: int, ready_idx: list[int]) -> array:
    """Document-space endpoint indices (little-endian u16/u32 bytes) → compact ready indices.

    TableDocumentError when an index is not below ``n`` or names an endpoint that is not ready.
    """
    code = "H" if width == 2 else "I"
    if width == 2 and n <= 256 and _LE:  # the common case: translate bytes, no per-slot Python
        low = _u8_values(raw)
        if low is None:
            raise TableDocumentError("table refers to an endpoint that is not listed")
        if len(ready_idx) == n:
            if low.translate(None, bytes(range(n))):
                raise TableDocumentError("table refers to an endpoint that is not listed")
            out = array(code)
            out.frombytes(raw)
            return out
        lut = bytearray(b"\xff" * 256)  # fewer than 256 ready endpoints: 255 is free
        for c, d in enumerate(ready_idx):
            lut[d] = c
        low = low.translate(lut)
        if 255 in low:
            raise TableDocumentError("table points at an endpoint which is not ready")
        wide = bytearray(len(raw))
        wide[0::2] = low
        out = array(code)
        out.frombytes(wide)
        return out
    src = array(code)
    src.frombytes(raw)
    if not _LE:
        src.byteswap()
    if len(ready_idx) == n:
        for i in range(0, len(src), _SLICE):
            if max(src[i : i + _SLICE]) >= n:
                raise TableDocumentError("table refers to an endpoint that is not listed")
        return src
    lut = [-1] * n
    for c, d in enumerate(ready_idx):
        lut[d] = c
    out = array(code)
    try:
        for i in range(0, len(src), _SLICE):
            part = [lut[d] for d in src[i : i + _SLICE]]
            if part and min(part) < 0:
                raise TableDocumentError("table points at an endpoint which is not ready")
            out.fromlist(part)
    except IndexError:
        raise TableDocumentError("table refers to an endpoint that is not listed") from None
    return out


def _maglev_digest(slots: array, n: int, ready_idx: list[int]) -> str:
    """SHA-256 of a rebuilt table in document space, as ``encode_maglev`` would compute it."""
    if len(ready_idx) != n:
        slots = array("H" if n <= 0xFFFF else "I", [ready_idx[i] for i in slots])
    elif (slots.typecode == "H") != (n <= 0xFFFF):
        slots = array("H" if n <= 0xFFFF else "I", slots)
    if not _LE:
        slots = array(slots.typecode, slots)
        slots.byteswap()
    return hashlib.sha256(slots).hexdigest()


def _rebuild(doc: TableDocument, hosts: list[Host], ready_idx: list[int]):
    """Rebuild the table from policy + ready endpoints; verify the digest in document space."""
    policy, table = doc.policy, doc.table
    n = len(doc.endpoints)
    if policy.algorithm == "maglev":
        built = Maglev.build(hosts, MaglevConfig(table_size=policy.table_size or 65537))
        digest = _maglev_digest(built.table, n, ready_idx)
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
    if policy.algorithm == "ketama":  # always rebuilt (uhashring); the shipped ring proves it
        ketama = Ketama.build(hosts)
        if table is not None:
            points, idx = ketama.points()
            if raw_digest_ring(points, [ready_idx[i] for i in idx], n) != table.digest:
                raise TableDocumentError("rebuilt ketama continuum differs from the document's")
        return ketama, hosts
    if table is None or table.data is None:
        return _rebuild(doc, hosts, ready_idx), hosts
    width = 2 if table.dtype == "u16" else 4
    if policy.algorithm == "maglev":
        if table.format != "maglev":
            raise TableDocumentError("maglev policy with a table that is not a maglev table")
        raw = _shipped_bytes(table, table.size * width)
        return Maglev(compact_indices(raw, width, n, ready_idx), len(hosts)), hosts
    if table.format != "ring":
        raise TableDocumentError("ring-hash policy with a table that is not a ring")
    raw = _shipped_bytes(table, table.size * (8 + width))
    hashes = array("Q")
    hashes.frombytes(raw[: table.size * 8])
    if not _LE:
        hashes.byteswap()
    indices = compact_indices(raw[table.size * 8 :], width, n, ready_idx)
    try:
        return RingHash.from_arrays(hashes, indices, len(hosts)), hosts
    except ValueError as exc:
        raise TableDocumentError(str(exc)) from None


def bounded(chooser, hosts: list[Host], factor: int) -> BoundedLoad:
    """Wrap a chooser with Envoy's bounded load (``hash_balance_factor``), host weights as given."""
    return BoundedLoad(chooser, normalized_weights(hosts), factor)
