"""The Istio-verdict corpus: inputs and Istio's answers (tests/fixtures/istio-verdicts/).

``verdicts.json`` holds, per document of ``corpus.yaml``, what Istio's validating webhook
answered (tools/istio-validate, Istio's own code): ``allowed``, ``message``, ``warnings``, and
``anyOrder`` when Go's random map order made the message's lines vary between runs.
``compare`` says how tether's Istio verdict (``check(..., stricter=False)``) differs, or None.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tether.models.validation import check

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "istio-verdicts"
CORPUS = FIXTURES / "corpus.yaml"
VERDICTS = FIXTURES / "verdicts.json"
EDGE_CASES = FIXTURES / "edge-cases.yaml"


def load_inputs() -> list[dict[str, Any]]:
    """The corpus documents, in order."""
    return [d for d in yaml.safe_load_all(CORPUS.read_text()) if d is not None]


def tether_verdict(doc: dict[str, Any]) -> dict[str, Any]:
    """tether's answer in the webhook's terms (Istio's part only, no stricter checks)."""
    _, result = check(doc, stricter=False)
    return {
        "allowed": result.valid,
        "message": result.message,
        "warnings": list(result.warnings) if result.valid else [],
    }


def _lines(message: str, any_order: bool) -> Any:
    lines = message.rstrip("\n").split("\n")
    return sorted(lines) if any_order else lines


def compare(doc: dict[str, Any], istio: dict[str, Any]) -> str | None:
    """None when tether's verdict, message and warnings equal Istio's; else what differs."""
    ours = tether_verdict(doc)
    any_order = bool(istio.get("anyOrder"))
    same = (
        ours["allowed"] == istio["allowed"]
        and _lines(ours["message"], any_order) == _lines(istio["message"], any_order)
        and sorted(ours["warnings"]) == sorted(istio["warnings"])
    )
    if same:
        return None
    return f"tether {ours!r} != Istio { ({k: istio[k] for k in ours})!r}"
