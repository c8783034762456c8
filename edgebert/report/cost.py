"""The time measure a comparison ranks on, and the words for an artifact: shared by ``compare`` and
``int8_slower`` so both say the same thing the same way."""

from __future__ import annotations

from typing import Any

from ..vocabulary import FORMAT_TITLES
from .tables import Row

MEASURED_MS, INSTRUCTIONS = "measured_ms", "instructions"
COST_LABELS = {MEASURED_MS: "measured p50 latency", INSTRUCTIONS: "guest instructions per inference"}
COST_WORDS = {MEASURED_MS: "measured p50 latency", INSTRUCTIONS: "instructions"}


def artifact_name(entry: dict[str, Any]) -> str:
    """"int8-static TFLite": the words a sentence uses for an artifact."""
    return f"{entry['precision']} {FORMAT_TITLES.get(entry['format'], entry['format'])}"


def row_cost(row: Row, measure: str | None, seq_len: int | None = None) -> float | None:
    """The row's cost by ``measure`` (None: not measured, or a latency that ran at another length than
    ``seq_len``, when one is given)."""
    if measure == INSTRUCTIONS:
        return None if row.instructions is None else float(row.instructions)
    if measure == MEASURED_MS:
        if row.latency_seq_len is not None and seq_len is not None and row.latency_seq_len != seq_len:
            return None
        return row.p50_ms
    return None
