"""Where benchmark figures go: printed, and merged into bench-results/<name>.json."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

RESULTS = Path("bench-results")


def record(name: str, key: str, value) -> None:
    """Print one figure set and store it under ``key`` in bench-results/<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc[key] = value
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\n[{name} bench] {key}: {json.dumps(value)}")


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method), q in 1..99."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]
