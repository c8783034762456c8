"""The build report's "Where the time went" table, from ``summary["phase_table"]`` (rows made by
``pipeline/phase_table.py``): the cells both renderings (Markdown, HTML) show, worked out once here.
"""

from __future__ import annotations

from typing import Any

DASH = "—"
HEADERS = ("Phase", "Model", "What", "Wall s", "CPU s", "Reused", "Note")
INTRO = ("Wall and CPU seconds per phase (CPU: this process and its workers and emulators, all "
         "threads). ‡ ran beside the background emulated checks: its CPU includes theirs.")


def _seconds(value: float | None) -> str:
    return DASH if value is None else f"{value:.1f}"


def _reused(value: bool | None) -> str:
    return DASH if value is None else ("reused" if value else "ran")


def cells(row: dict[str, Any]) -> list[str]:
    """One row's cells, in ``HEADERS`` order."""
    return [row["phase"] + (" ‡" if row.get("beside_emulation") else ""), row.get("model") or DASH,
            row.get("detail") or DASH, _seconds(row.get("seconds")), _seconds(row.get("cpu_seconds")),
            _reused(row.get("reused")), row.get("note") or ""]


def table(summary: dict[str, Any]) -> list[list[str]]:
    """Every row's cells, then the whole build's; empty for a summary without a phase table (a build made
    before edgebert kept one). A merged build's rows are its shards' own, named by shard."""
    rows = summary.get("phase_table") or []
    if not rows:
        return []
    whole = {"phase": "whole build", "seconds": summary.get("seconds"), "cpu_seconds": summary.get("cpu_seconds"),
             "reused": summary.get("reused")}
    if summary.get("merged"):
        whole["note"] = ("merged shards: wall = the slowest shard + the merge (shards run in parallel); CPU = every "
                         "shard's")
    return [cells(r) for r in rows] + [cells(whole)]
