"""Where an int8 artifact is not cheaper than it should be, and the measured facts that say why.

Why its own module: a user who picks int8 expects it to beat its own fp32 and, for a model made to be
cheap (a grouped SqueezeBERT), the other model's int8 too. When it does not, the report must say so
next to the comparison instead of leaving the user to spot it in the tables, and say why with what was
measured, not with a guess:

- on a device with measured time (desktop, real boards), the slowest operator types of both artifacts
  from the per-op profile;
- on an emulated CPU, the instruction classes of both counted runs (and whether the core has int8 dot
  product instructions at all: without them an int8 product is a widening multiply, about as many
  instructions as an fp32 FMA).

The cost is the device's one time measure (``compare.cost_measure``); a ratio >= 1 is "not cheaper". On an
emulated CPU an int8 artifact with fewer instructions whose cycle-model estimate is still not lower is listed
too, said as an estimate (its ratio of estimated ms, with the band).
"""

from __future__ import annotations

from typing import Any

from .cost import COST_WORDS, INSTRUCTIONS, MEASURED_MS, artifact_name, row_cost
from .tables import Row

FP32 = "fp32"


def _ops(row: Row) -> str:
    if not row.top_ops:
        return f"no per-op profile ({row.profile_note or 'not profiled'})"
    nodes = dict(row.top_op_nodes)

    def one(op: str, ms: float, share: float) -> str:
        n = f", {nodes[op]} nodes" if op in nodes else ""
        return f"{op} {ms:.2f} ms ({share * 100:.0f}%{n})"

    return ", ".join(one(*o) for o in row.top_ops[:3])


def _classes(row: Row) -> str:
    shares = sorted(row.instruction_shares, key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v * 100:.0f}%" for k, v in shares if v >= 0.005) or "no instruction classes"


def why(row: Row, other: Row, measure: str | None) -> str:
    """The measured facts behind ``row`` costing at least ``other``."""
    if measure == MEASURED_MS:
        return f"slowest operators: {artifact_name(_names(row))} {_ops(row)}; {artifact_name(_names(other))} {_ops(other)}"
    text = (f"instruction classes: {artifact_name(_names(row))} {_classes(row)}; "
            f"{artifact_name(_names(other))} {_classes(other)}")
    if not row.cpu_has_int8_dot:
        text += ("; this core has no int8 dot-product instructions, so int8 products run as widening multiplies "
                 "(about as many instructions per product as an fp32 FMA)")
    return text


def _names(row: Row) -> dict[str, str]:
    return {"precision": row.precision, "format": row.format}


def _against(kind: str, other: Row, other_model: str) -> str:
    return "its own fp32" if kind == "own fp32" else f"{other_model}'s {artifact_name(_names(other))}"


def _finding(model: str, row: Row, other: Row, other_model: str, measure: str, kind: str) -> dict[str, Any]:
    ratio = round(row_cost(row, measure) / row_cost(other, measure), 4)
    against = _against(kind, other, other_model)
    return {"model": model, "artifact": row.artifact, "kind": kind, "against_model": other_model,
            "against_artifact": other.artifact, "cost_measure": measure, "cost_ratio": ratio,
            "why": why(row, other, measure),
            "sentence": (f"{model} {artifact_name(_names(row))} costs {ratio:.2f}× {against}'s "
                         f"{COST_WORDS[measure]}" if kind == "own fp32" else
                         f"{model} {artifact_name(_names(row))} costs {ratio:.2f}× {against} "
                         f"({COST_WORDS[measure]})")}


def _estimate_finding(model: str, row: Row, other: Row, other_model: str, kind: str) -> dict[str, Any] | None:
    """On an emulated CPU: fewer instructions, but the cycle model estimates at least as many ms (in-order
    cores pay more cycles per widening int8 multiply than per FMA). Said as an estimate, never as time."""
    if not (row.estimated_ms and other.estimated_ms and row.instructions and other.instructions):
        return None
    est = round(row.estimated_ms / other.estimated_ms, 4)
    if est < 1.0:
        return None
    ins = round(row.instructions / other.instructions, 4)
    against = _against(kind, other, other_model)
    return {"model": model, "artifact": row.artifact, "kind": kind, "against_model": other_model,
            "against_artifact": other.artifact, "cost_measure": "estimated_ms", "cost_ratio": est,
            "instructions_ratio": ins, "why": why(row, other, INSTRUCTIONS),
            "sentence": (f"{model} {artifact_name(_names(row))} costs {ins:.2f}× {against}'s instructions but an "
                         f"estimated {est:.2f}× its ms (cycle model: an estimate, ± {row.estimate_band_pct:g}%)")}


def _compare(model: str, row: Row, other: Row, other_model: str, measure: str, kind: str) -> list[dict[str, Any]]:
    if row_cost(row, measure) >= row_cost(other, measure):
        return [_finding(model, row, other, other_model, measure, kind)]
    if measure == INSTRUCTIONS:
        found = _estimate_finding(model, row, other, other_model, kind)
        return [found] if found else []
    return []


def findings(rows_by_model: dict[str, tuple[Row, ...]], reference: str, measure: str | None
             ) -> list[dict[str, Any]]:
    """Each int8 artifact that costs at least its own fp32 (same format), and each int8 artifact of a
    non-reference model that costs at least the reference model's artifact of the same format and recipe."""
    if measure is None:
        return []
    ran = {m: {r.artifact: r for r in rows if r.status == "ok" and r.role != "drift-reference"
               and row_cost(r, measure) is not None} for m, rows in rows_by_model.items()}
    out = []
    for model, rows in ran.items():
        for row in rows.values():
            if row.precision == FP32:
                continue
            fp32 = next((r for r in rows.values() if r.precision == FP32 and r.format == row.format), None)
            if fp32 is not None:
                out += _compare(model, row, fp32, model, measure, "own fp32")
            ref = ran.get(reference, {}).get(row.artifact) if model != reference else None
            if ref is not None and measure == MEASURED_MS and (ref.latency_seq_len, ref.threads) != (
                    row.latency_seq_len, row.threads):
                ref = None  # latencies at another length or thread count are not compared
            if ref is not None:
                out += _compare(model, row, ref, reference, measure, "reference int8")
    return out
