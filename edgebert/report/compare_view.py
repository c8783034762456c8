"""The build comparison (``compare.py``'s JSON) as table cells, for both the Markdown and the HTML report.

One place turns the numbers into text so the two renderings cannot disagree; each column holds one kind
of figure (a measured p50 column never holds an estimate: estimated ms has its own column).
"""

from __future__ import annotations

from typing import Any

from .compare import INSTRUCTIONS, MEASURED_MS, artifact_name

DASH = "—"
TITLE = "Which model on each device"
SCREENED_MARK = "ˢ"


def intro(comp: dict[str, Any]) -> list[str]:
    """The rule for "best" and the interval method, stated above the tables."""
    return [f"**Best** — {comp['rule']}",
            f"**Accuracy difference** — {comp['accuracy_difference_method']}."]


def headers(device: dict[str, Any]) -> list[str]:
    cost = {MEASURED_MS: ["Measured p50 ms (threads)"],
            INSTRUCTIONS: ["Instructions / inference (M)", "Estimated ms (cycle model, ± band; not measured)"]}
    return ["Model", "Best artifact (passes its gates)", "Accuracy (95% CI, n)", "Size MB",
            *cost.get(device["cost_measure"], []), "Encoder MACs / token (M)", "Passed gates / ran"]


def _accuracy(e: dict[str, Any]) -> str:
    if e.get("accuracy") is None:
        return DASH
    mark = SCREENED_MARK if e.get("accuracy_method") == "margin-screened" else ""
    n = "" if e.get("n") is None else f" n={e['n']}"
    if not e.get("accuracy_ci95"):
        return f"{e['accuracy'] * 100:.1f}%{mark}{n}"
    lo, hi = e["accuracy_ci95"]
    return f"{e['accuracy'] * 100:.1f}%{mark} [{lo * 100:.1f}, {hi * 100:.1f}]{n}"


def _macs(e: dict[str, Any], comp: dict[str, Any]) -> str:
    m = comp["models"].get(e["model"]) or {}
    if e.get("encoder_macs_per_token") is None:
        return "not recorded"
    at = "" if m.get("seq_len") is None else f" (at {m['seq_len']} tokens)"
    return f"{e['encoder_macs_per_token'] / 1e6:.2f}{at}"


def _cost(e: dict[str, Any], measure: str | None) -> list[str]:
    if measure == MEASURED_MS:
        lat = e.get("latency_ms") or {}
        threads = "" if lat.get("threads") is None else f" ({lat['threads']})"
        return [DASH if lat.get("p50") is None else f"{lat['p50']:.2f}{threads}"]
    if measure == INSTRUCTIONS:
        ins, est = e.get("instructions_per_inference"), e.get("estimated_latency") or {}
        band = f" ± {est['band_pct']:g}%" if est.get("band_pct") is not None else ""
        return [DASH if ins is None else f"{ins / 1e6:,.1f}",
                DASH if est.get("ms") is None else f"~{est['ms']:.4g}{band}"]
    return []


def rows(device: dict[str, Any], comp: dict[str, Any]) -> list[list[str]]:
    out = []
    for e in device["best"]:
        if e["artifact"] is None:
            blanks = len(headers(device)) - 4
            out.append([e["model"], f"none: {e['why']}", *[DASH] * blanks, _macs(e, comp), f"{e['passing']}/{e['ran']}"])
            continue
        size = DASH if e.get("size_bytes") is None else f"{e['size_bytes'] / 1e6:.2f}"
        out.append([e["model"], f"{artifact_name(e)} ({e['artifact']})", _accuracy(e), size,
                    *_cost(e, device["cost_measure"]), _macs(e, comp), f"{e['passing']}/{e['ran']}"])
    return out


def device_title(device: dict[str, Any]) -> str:
    return f"{device['device']} ({device['kind']}; cost: {device['cost_label']})"


NOT_CHEAPER = "Where int8 is not cheaper"


def not_cheaper(device: dict[str, Any]) -> list[str]:
    """One line per int8 artifact that costs at least its own fp32 or the reference model's int8, with the
    measured facts behind it (``int8_slower.py``); empty when every int8 artifact is cheaper."""
    return [f"{f['sentence']} — {f['why']}" for f in device.get("int8_not_cheaper") or []]
