"""Bounded load (``hash_balance_factor``) with Envoy's MT19937 probe order."""

from .bounded import BoundedLoad, probe_order, validate_balance_factor
from .mt19937 import mt19937, uniform_below

__all__ = ["BoundedLoad", "mt19937", "probe_order", "uniform_below", "validate_balance_factor"]
