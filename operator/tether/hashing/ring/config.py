"""Ring-hash configuration, validated exactly as Envoy validates ``RingHash`` config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MAX_RING_SIZE = 8_388_608  # 1024 * 1024 * 8: both the default maximum and the validation cap
DEFAULT_MIN_RING_SIZE = 1024
HashFunction = Literal["xx-hash", "murmur-hash-2"]
HASH_FUNCTIONS: tuple[str, ...] = ("xx-hash", "murmur-hash-2")


@dataclass(frozen=True, slots=True)
class RingHashConfig:
    """``minimum_ring_size``/``maximum_ring_size`` (≤ 8388608, min ≤ max) and the hash function.

    Construction raises ValueError for anything Envoy would reject, with Envoy's message for
    ``min > max``.
    """

    min_ring_size: int = DEFAULT_MIN_RING_SIZE
    max_ring_size: int = MAX_RING_SIZE
    hash_function: HashFunction = "xx-hash"

    def __post_init__(self) -> None:
        for name in ("min_ring_size", "max_ring_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if not 0 <= value <= MAX_RING_SIZE:
                raise ValueError(f"{name} must be between 0 and {MAX_RING_SIZE}, got {value}")
        if self.min_ring_size > self.max_ring_size:
            raise ValueError(
                f"ring hash: minimum_ring_size ({self.min_ring_size}) > "
                f"maximum_ring_size ({self.max_ring_size})"
            )
        if self.hash_function not in HASH_FUNCTIONS:
            raise ValueError(
                f"hash_function must be one of {', '.join(HASH_FUNCTIONS)}, "
                f"got {self.hash_function!r}"
            )
