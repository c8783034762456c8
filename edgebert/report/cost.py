"""The time measure a comparison ranks on, and the words for an artifact: shared by ``compare`` and
``int8_slower`` so both say the same thing the same way."""

from __future__ import annotations

from typing import Any

from ..vocabulary import FORMAT_TITLES

MEASURED_MS, INSTRUCTIONS = "measured_ms", "instructions"
COST_LABELS = {MEASURED_MS: "measured p50 latency", INSTRUCTIONS: "guest instructions per inference"}
COST_WORDS = {MEASURED_MS: "measured p50 latency", INSTRUCTIONS: "instructions"}


def artifact_name(entry: dict[str, Any]) -> str:
    """"int8-static TFLite": the words a sentence uses for an artifact."""
    return f"{entry['precision']} {FORMAT_TITLES.get(entry['format'], entry['format'])}"
