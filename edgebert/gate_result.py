"""A gate result: one measured value against one limit, carrying the comparison that judged it.

Written once here: which way a limit goes (``<=`` for a max gate, ``>=`` for a min gate), whether a
value passes it, and how a result reads. The build's gates (``pipeline/gates.py``) and its baseline
regressions (``pipeline/baseline.py``) make results with :func:`result`; the reports and the CLI
read them with :func:`limit_text` and :func:`describe`. A leaf (standard library only), so the
reports never import the pipeline. Results are plain dicts: they go straight into summary.json.
"""

from __future__ import annotations

from typing import Any

AT_MOST, AT_LEAST = "<=", ">="
SYMBOLS = {AT_MOST: "≤", AT_LEAST: "≥"}
DASH = "—"


def comparison(upper: bool) -> str:
    """The comparison of a gate whose limit is an upper bound (``upper``) or a lower one."""
    return AT_MOST if upper else AT_LEAST


def passes(value: float, limit: float, op: str, tolerance: float = 0.0) -> bool:
    """Whether ``value`` holds against ``limit`` under ``op`` (``tolerance``: float noise allowed)."""
    if op == AT_MOST:
        return value <= limit + tolerance
    if op == AT_LEAST:
        return value >= limit - tolerance
    raise ValueError(f"unknown comparison {op!r}")


def result(base: dict[str, Any], gate: str, value: float | None, limit: float, unit: str, op: str,
           detail: str | None = None, not_measured: str | None = None, tolerance: float = 0.0,
           **extra: Any) -> dict[str, Any]:
    """One gate result; a value that was not measured fails with ``not_measured`` as its detail."""
    passed = value is not None and passes(value, limit, op, tolerance)
    return {**base, "gate": gate, "value": value, "limit": limit, "unit": unit, "comparison": op,
            **extra, "passed": passed, "detail": not_measured if value is None else detail}


ESTIMATED_MS = "estimated ms"  # the unit of gates on the cycle model's estimate (check/estimate.py)


def did_not_run(base: dict[str, Any], why: str) -> dict[str, Any]:
    """The ``runs`` gate of a record that failed to run (no value, no limit)."""
    return {**base, "gate": "runs", "value": None, "limit": None, "unit": "", "passed": False, "detail": why}


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return DASH
    if unit == "instructions":
        return f"{value / 1e6:,.1f} M instructions"
    if unit == "fraction":
        return f"{value * 100:.2f}%"
    if unit == "examples":
        return f"{value:.0f} examples"
    if unit == ESTIMATED_MS:
        return f"~{value:.3g} ms (estimate)"
    return f"{value:.3g} {unit}"


def limit_text(result: dict[str, Any]) -> str:
    """The limit with its comparison ("≤ 2.00%"), or a dash when the result has none."""
    if result.get("limit") is None:
        return DASH
    return f"{SYMBOLS[result['comparison']]} {fmt_value(result['limit'], result['unit'])}"


def describe(result: dict[str, Any]) -> str:
    """One line for a gate result: which artifact, which gate, measured value and limit."""
    where = f"{result['model']}/{result['artifact']} on {result['device']}"
    if result["gate"] == "runs":
        return f"{where}: did not run ({result.get('detail')})"
    if result["value"] is None:
        return f"{where}: {result['gate']}: {result.get('detail')}"
    verdict = "ok" if result["passed"] else "FAILED"
    how = "estimated" if result["unit"] == ESTIMATED_MS else "measured"  # an estimate is never called measured
    return (f"{where}: {result['gate']} {verdict}: {how} {fmt_value(result['value'], result['unit'])}, "
            f"limit {limit_text(result)}")

