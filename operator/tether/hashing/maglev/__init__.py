"""Envoy Maglev: configuration (``config``), the spec build (``reference``), the native fill
kernel (``_kernel.c``) and the table with its lookup (``table``)."""

from .config import (
    DEFAULT_TABLE_SIZE,
    LADDER,
    MAX_TABLE_SIZE,
    MaglevConfig,
    auto_table_size,
    is_prime,
    next_prime,
)
from .table import NATIVE, Maglev

__all__ = [
    "DEFAULT_TABLE_SIZE",
    "LADDER",
    "MAX_TABLE_SIZE",
    "NATIVE",
    "Maglev",
    "MaglevConfig",
    "auto_table_size",
    "is_prime",
    "next_prime",
]
