"""One-line text of an accuracy-goal record (``quantization.accuracy_goal``), for the CLI and the reports.

A stdlib-only leaf (like ``gate_result``): the reports import it without loading the quantizers. The
record comes from a manifest, which may be hand-edited: fields the schema leaves optional show as '?'.
"""

from __future__ import annotations

from typing import Sequence


def describe_drop(m: dict) -> str:
    """Tolerant of a hand-edited manifest (reports render it): a missing interval or n shows as '?'."""
    ci = m.get("drop_ci95_points")
    n = (m.get("accuracy") if isinstance(m.get("accuracy"), dict) else {}).get("n", "?")
    interval = (f"95% CI {ci[0]:.2f} to {ci[1]:.2f}, " if isinstance(ci, list) and len(ci) == 2
                and all(isinstance(x, (int, float)) for x in ci) else "95% CI ?, ")
    return f"{m['drop_points']:.2f} points ({interval}n={n})"


def summary(record: dict) -> str:
    """One line for reports and the CLI: goal, drop before -> after, layers float, size cost."""
    before, after = record["before"], record["after"]
    cost = after["size_bytes"] - before["size_bytes"]
    state = "met" if record["met"] else "NOT met"
    return (f"accuracy goal ≤ {record['max_drop_points']:g} points {state}: drop {describe_drop(before)} all-int8 -> "
            f"{describe_drop(after)} with {after['float_layers']} of {record.get('layers', '?')} layers float "
            f"({cost / 1e6:+.2f} MB)" + (f"; ranked by {record['sensitivity']['method']}"
                                          if record.get("sensitivity") else ""))


def fallback_names(record: dict) -> Sequence[str]:
    return [f["layer"] for f in record.get("fallback") or []]


def report_lines(manifest: dict | None) -> list[tuple[str, str, list[str]]]:
    """(artifact, summary, layers kept float) for every artifact of a manifest quantized with a goal."""
    out = []
    for name, rec in ((manifest or {}).get("artifacts") or {}).items():
        goal = (rec.get("quantization") or {}).get("accuracy_goal")
        if goal:
            out.append((name, summary(goal), list(fallback_names(goal))))
    return out
