"""Hash primitives exactly as Envoy uses them (``source/common/common/hash.{h,cc}``).

- ``xxh64``: plain XXH64, seed 0 by default; ``str`` input is hashed as its UTF-8 bytes.
- ``xxh64_chain``: Envoy's span overload; each element is hashed with the previous result as
  seed. It is *not* the hash of the concatenation.
- ``murmur2_64``: the 64-bit MurmurHash2 variant of libstdc++ ``_Hash_bytes`` that Envoy's ring
  hash uses for ``hash_function: MURMUR_HASH_2``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from xxhash import xxh64_intdigest

MASK64 = (1 << 64) - 1
STD_HASH_SEED = 0xC70F6907
_MUL = 0xC6A4A7935BD1E995


def xxh64(data: bytes | str, seed: int = 0) -> int:
    """Return XXH64(data, seed) as an unsigned 64-bit int; str is hashed as UTF-8."""
    if isinstance(data, str):
        data = data.encode()
    return xxh64_intdigest(data, seed)


def xxh64_chain(values: Sequence[bytes | str]) -> int:
    """Envoy ``HashUtil::xxHash64(Span)``: seed = XXH64(v, seed) over values, starting at 0.

    One value gives XXH64(v); no values give 0 (the initial seed), as the C++ loop does.
    """
    seed = 0
    for value in values:
        seed = xxh64_intdigest(value.encode() if isinstance(value, str) else value, seed)
    return seed


def rotl64(value: int, bits: int = 1) -> int:
    """Rotate a 64-bit value left; used to combine several request hash policies."""
    return ((value << bits) | (value >> (64 - bits))) & MASK64


def _shift_mix(v: int) -> int:
    return v ^ (v >> 47)


def murmur2_64(data: bytes | str, seed: int = STD_HASH_SEED) -> int:
    """libstdc++ 64-bit ``_Hash_bytes`` (Envoy ``MurmurHash::murmurHash2``), all mod 2^64."""
    if isinstance(data, str):
        data = data.encode()
    n = len(data)
    aligned = n & ~7
    h = (seed ^ (n * _MUL)) & MASK64
    for (word,) in struct.iter_unpack("<Q", data[:aligned]):
        h ^= (_shift_mix((word * _MUL) & MASK64) * _MUL) & MASK64
        h = (h * _MUL) & MASK64
    if n & 7:
        h ^= int.from_bytes(data[aligned:], "little")
        h = (h * _MUL) & MASK64
    h = (_shift_mix(h) * _MUL) & MASK64
    return _shift_mix(h)
