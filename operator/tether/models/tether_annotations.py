"""tether's extensions to a DestinationRule, set as annotations (Istio ignores them).

``tether.dev/hash-balance-factor: "150"``
    Bounded-load consistent hashing (Envoy ``hash_balance_factor``): no endpoint takes more than
    150% of the average in-flight requests. An integer >= 100; anything else makes the
    DestinationRule invalid. Only meaningful with consistentHash.
``tether.dev/algorithm: ketama``
    Build a libketama/memcached-compatible ring instead of Envoy's ring hash or Maglev, for
    clients that must agree with ketama. Overrides ``ringHash``/``maglev``.
``tether.dev/maglev-table-size: auto``
    Maglev table size = smallest prime >= 100 x endpoints (better balance for large services
    than the fixed 65537). Resolved by the planner once the endpoint count is known.

Invariant: ``parse_tether_annotations`` never raises; every unusable value is reported as an
error message and the option is left at its default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

from tether.models.istio_names import go_quote

PREFIX = "tether.dev/"
HASH_BALANCE_FACTOR = "tether.dev/hash-balance-factor"
ALGORITHM = "tether.dev/algorithm"
MAGLEV_TABLE_SIZE = "tether.dev/maglev-table-size"
KNOWN = (HASH_BALANCE_FACTOR, ALGORITHM, MAGLEV_TABLE_SIZE)
_UINT32_MAX = (1 << 32) - 1


class TetherOptions(NamedTuple):
    hash_balance_factor: int = 0  # 0 = bounded load off
    algorithm: Literal["ketama"] | None = None  # None = as the DestinationRule says
    maglev_table_size_auto: bool = False


def parse_tether_annotations(annotations: Mapping[str, str]) -> tuple[TetherOptions, list[str]]:
    """Read tether's annotations; return the options and the error for each unusable value."""
    errors: list[str] = []
    factor = 0
    raw = annotations.get(HASH_BALANCE_FACTOR)
    if raw is not None:
        text = raw.strip()
        if text.isascii() and text.isdigit() and 100 <= int(text) <= _UINT32_MAX:
            factor = int(text)
        else:
            errors.append(
                f"annotation {HASH_BALANCE_FACTOR} must be an integer >= 100, got {go_quote(raw)}"
            )
    algorithm: Literal["ketama"] | None = None
    raw = annotations.get(ALGORITHM)
    if raw is not None:
        if raw.strip() == "ketama":
            algorithm = "ketama"
        else:
            errors.append(f'annotation {ALGORITHM} must be "ketama", got {go_quote(raw)}')
    auto = False
    raw = annotations.get(MAGLEV_TABLE_SIZE)
    if raw is not None:
        if raw.strip() == "auto":
            auto = True
        else:
            errors.append(f'annotation {MAGLEV_TABLE_SIZE} must be "auto", got {go_quote(raw)}')
    return TetherOptions(factor, algorithm, auto), errors
