"""Envoy ring hash: configuration (``config``) apart from the algorithm (``ring``)."""

from .config import MAX_RING_SIZE, RingHashConfig
from .ring import RingHash

__all__ = ["MAX_RING_SIZE", "RingHash", "RingHashConfig"]
