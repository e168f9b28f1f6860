"""tether's verdict and message equal Istio's on the corpus judged by Istio's own webhook code.

The corpus (tests/fixtures/istio-verdicts/) holds hand-written edge cases and rules drawn at
random that Istio's CRD admits; ``verdicts.json`` is what Istio's validating webhook answered
(tools/istio-validate, built from the istio.io/istio module named in its header). Rebuild and
re-compare live with ``make istio-diff``.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.unit.models.istio_corpus import VERDICTS, compare, load_inputs
from tether.models.validation import STRICTER_THAN_ISTIO, check

HEADER = json.loads(VERDICTS.read_text())
DOCS = load_inputs()
ANSWERS = HEADER["verdicts"]


def test_corpus_is_large_judged_by_a_named_istio_and_covers_both_verdicts() -> None:
    assert len(DOCS) == len(ANSWERS) >= 1000
    assert re.fullmatch(r"v0\.0\.0-\d{14}-[0-9a-f]{12}", HEADER["istio"])
    assert HEADER["generated"] >= 1000 and HEADER["edgeCases"] >= 100
    allowed = sum(a["allowed"] for a in ANSWERS)
    decode = sum(a["message"].startswith("error decoding configuration: ") for a in ANSWERS)
    assert allowed >= 200 and len(ANSWERS) - allowed >= 200 and decode >= 50


def test_every_verdict_message_and_warning_equals_istios() -> None:
    differences = [
        f"{doc['metadata']['name']}: {diff}"
        for doc, answer in zip(DOCS, ANSWERS, strict=True)
        if (diff := compare(doc, answer))
    ]
    assert differences == []


def _stricter_errors(doc) -> list[str]:
    _, istio = check(doc, stricter=False)
    _, full = check(doc)
    assert full.errors[: len(istio.errors)] == istio.errors  # Istio's errors come first
    return list(full.errors[len(istio.errors) :])


@pytest.mark.parametrize(("prefix", "reason"), STRICTER_THAN_ISTIO)
def test_each_stricter_check_is_documented_and_occurs(prefix: str, reason: str) -> None:
    hits = [e for doc in DOCS for e in _stricter_errors(doc) if e.startswith(prefix)]
    assert hits, f"no corpus rule shows the stricter check {prefix!r} ({reason})"


def test_tether_refuses_more_than_istio_only_for_documented_reasons() -> None:
    prefixes = tuple(p for p, _ in STRICTER_THAN_ISTIO)
    extra = {e for doc in DOCS for e in _stricter_errors(doc)}
    assert [e for e in extra if not e.startswith(prefixes)] == []
