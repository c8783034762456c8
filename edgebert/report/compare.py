"""The models of a build side by side per device: which one to ship on this device, in numbers.

A build of several models (e.g. a grouped SqueezeBERT and a dense DistilBERT) answers its user's real
question only if, per device, it puts each model's *best usable* artifact next to the others' and says
what one costs relative to the other and at what accuracy. This module derives that once, as plain JSON
(``summary.json["comparison"]``); ``markdown.py`` and ``html.py`` only format it.

- *Best* (:data:`BEST_RULE`): among a model's artifacts that ran on the device and passed every gate
  there, the lowest cost by the device's own time measure (:func:`cost_measure`); ties by accuracy.
  The measure is one kind per device, so a column or a ratio never mixes measured and estimated time.
- *Accuracy difference*: records hold counts and intervals, not per-example predictions, so the
  difference of two models' accuracies on the same test texts gets an unpaired interval
  (:func:`difference_ci95`, :data:`DIFFERENCE_METHOD`), conservative because it ignores that pairing.
- *Encoder MACs per token* come from each model's config, recorded at export in its manifest's model
  record (the artifact directory keeps no config.json), scaled to the report's latency length.
"""

from __future__ import annotations

import math
from typing import Any

from . import int8_slower
from .cost import COST_LABELS, COST_WORDS, INSTRUCTIONS, MEASURED_MS, artifact_name, row_cost
from .tables import DeviceTable, Row, device_tables

__all__ = ["COST_LABELS", "COST_WORDS", "INSTRUCTIONS", "MEASURED_MS", "artifact_name"]


BEST_RULE = (
    "A model's best artifact on a device: among its artifacts that ran there and passed every gate of that "
    "device (with no gates configured, every artifact that ran), the one with the lowest cost by the device's "
    "time measure: measured p50 ms on the desktop and on real boards, guest instructions per inference on "
    "emulated CPUs (their cycle-model estimated ms is shown beside it, never ranked on or mixed with measured "
    "ms); a board declared emulated has no time measure. Ties, and artifacts without that measure (ranked "
    "last), go to the higher accuracy, then the smaller file.")
DIFFERENCE_METHOD = (
    "unpaired 95% interval (Newcombe's hybrid score / MOVER from each accuracy's own 95% interval); the models "
    "ran on the same test texts but the records keep no per-example predictions, so the interval ignores that "
    "pairing and is wider (conservative) than a paired one")
DIFFERENCE_METHOD_SHORT = "unpaired Newcombe 95% CI"


def cost_measure(table: DeviceTable) -> str | None:
    """The device's one time measure: measured ms (desktop, real boards), instructions (emulated CPUs), or
    None (a board declared emulated: its wall time is emulator time and it counts no instructions)."""
    if table.board:
        return None if table.emulated else MEASURED_MS
    return INSTRUCTIONS if table.emulated else MEASURED_MS


def difference_ci95(a: float, a_ci: tuple[float, float], b: float, b_ci: tuple[float, float]
                    ) -> tuple[float, float]:
    """95% interval of ``a - b`` for two independent proportions from their own 95% intervals.

    Newcombe (1998, method 10) with Wilson intervals; in general MOVER (Zou & Donner 2008): the lower
    limit recovers the variance from a's lower and b's upper limit, and the other way round. It always
    contains ``a - b`` and stays inside [-1, 1].
    """
    d = a - b
    lo = d - math.sqrt((a - a_ci[0]) ** 2 + (b_ci[1] - b) ** 2)
    hi = d + math.sqrt((a_ci[1] - a) ** 2 + (b - b_ci[0]) ** 2)
    return max(-1.0, lo), min(1.0, hi)


def macs_at(record: dict[str, Any] | None, seq_len: int | None) -> int | None:
    """Encoder MACs per token at ``seq_len`` from a manifest's ``encoder_macs_per_token`` record.

    The record holds the MACs at its own length and at 0 (projections only); attention is linear in the
    length, so any other length is exact. None when the model was exported before it was recorded.
    """
    if not record:
        return None
    macs, proj, at = record["macs"], record["projections"], record["seq_len"]
    if seq_len is None or seq_len == at:
        return int(macs)
    return int(round(proj + (macs - proj) * seq_len / at))


def _passes(gates: list[dict[str, Any]], artifact: str, device: str) -> bool:
    return all(g["passed"] for g in gates if g["artifact"] == artifact and g["device"] == device)


def best(rows: tuple[Row, ...], gates: list[dict[str, Any]], device: str, measure: str | None,
         seq_len: int | None) -> tuple[Row | None, int, int]:
    """(best row by :data:`BEST_RULE` or None, artifacts that passed their gates, artifacts that ran)."""
    ran = [r for r in rows if r.status == "ok" and r.role != "drift-reference"]
    ok = [r for r in ran if _passes(gates, r.artifact, device)]

    def key(r: Row) -> tuple:
        cost = row_cost(r, measure, seq_len)
        return (cost is None, cost if cost is not None else 0.0, -(r.accuracy if r.accuracy is not None else -1.0),
                r.size_mb if r.size_mb is not None else math.inf, r.artifact)

    return (min(ok, key=key) if ok else None), len(ok), len(ran)


def _entry(model: str, row: Row | None, passing: int, ran: int, measure: str | None, seq_len: int | None,
           macs: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "encoder_macs_per_token": macs, "passing": passing, "ran": ran}
    if row is None:
        why = "no artifact ran on this device" if not ran else f"none of its {ran} artifacts passes its gates here"
        return {**out, "artifact": None, "why": why}
    out.update({"artifact": row.artifact, "format": row.format, "precision": row.precision,
                "accuracy": row.accuracy, "accuracy_ci95": list(row.accuracy_ci95) if row.accuracy_ci95 else None,
                "n": row.n, "accuracy_method": row.accuracy_method,
                "size_bytes": None if row.size_mb is None else int(round(row.size_mb * 1e6))})
    if measure == MEASURED_MS:
        out["latency_ms"] = {"p50": row_cost(row, measure, seq_len), "threads": row.threads, "seq_len": seq_len}
    elif measure == INSTRUCTIONS:
        out["instructions_per_inference"] = row.instructions
        out["estimated_latency"] = {"ms": row.estimated_ms, "band_pct": row.estimate_band_pct,
                                    "label": row.estimate_label, "kind": "estimate"}
    return out


def _signed(x: float, fmt: str = ".1f") -> str:
    return f"{x:{fmt}}".replace("-", "−") if x < 0 else f"+{x:{fmt}}"


def pair(subject: dict[str, Any], reference: dict[str, Any], device: str, measure: str | None,
         same_data: bool, same_lengths: bool = True) -> dict[str, Any]:
    """``subject`` (a model's best entry) against ``reference``'s: cost ratio, accuracy difference and the
    sentence. A figure is left out (and the sentence says why) when it would compare unlike things."""
    out: dict[str, Any] = {"model": subject["model"], "reference": reference["model"], "cost_measure": measure,
                           "cost_ratio": None, "accuracy_diff_points": None, "accuracy_diff_ci95_points": None,
                           "method": DIFFERENCE_METHOD_SHORT, "notes": []}
    if subject["artifact"] is None or reference["artifact"] is None:
        missing = subject if subject["artifact"] is None else reference
        out["sentence"] = f"on {device}, no comparison: {missing['model']} has no usable artifact ({missing['why']})"
        return out
    cost = {e["model"]: (e.get("latency_ms") or {}).get("p50") if measure == MEASURED_MS
            else e.get("instructions_per_inference") for e in (subject, reference)}
    a, b = cost[subject["model"]], cost[reference["model"]]
    if measure is None:
        out["notes"].append("no time measure on this device")
    elif a is None or b is None or b == 0:
        out["notes"].append(f"{COST_WORDS[measure]} not measured for both")
    elif measure == MEASURED_MS and not same_lengths:
        out["notes"].append("latencies at different sequence lengths")
    elif measure == MEASURED_MS and subject["latency_ms"]["threads"] != reference["latency_ms"]["threads"]:
        out["notes"].append("latencies at different thread counts")
    else:
        out["cost_ratio"] = round(a / b, 4)
    if not same_data or subject["n"] != reference["n"]:
        out["notes"].append("accuracy on different evaluation data: not compared")
    elif None in (subject["accuracy"], reference["accuracy"], subject["accuracy_ci95"], reference["accuracy_ci95"]):
        out["notes"].append("accuracy without an interval: not compared")
    else:
        lo, hi = difference_ci95(subject["accuracy"], tuple(subject["accuracy_ci95"]),
                                 reference["accuracy"], tuple(reference["accuracy_ci95"]))
        out["accuracy_diff_points"] = round((subject["accuracy"] - reference["accuracy"]) * 100, 3)
        out["accuracy_diff_ci95_points"] = [round(lo * 100, 3), round(hi * 100, 3)]
    out["sentence"] = sentence(out, subject, reference, device)
    return out


def sentence(p: dict[str, Any], subject: dict[str, Any], reference: dict[str, Any], device: str) -> str:
    """"on cortex-a53, squeezebert int8-static TFLite costs 0.40× distilbert's instructions (int8-static
    ONNX) at −2.9 points [−4.1, −1.7] (unpaired Newcombe 95% CI, n=1000 each)"."""
    text = f"on {device}, {subject['model']} {artifact_name(subject)}"
    if p["cost_ratio"] is not None:
        text += (f" costs {p['cost_ratio']:.2f}× {reference['model']}'s {COST_WORDS[p['cost_measure']]}"
                 f" ({artifact_name(reference)})")
    else:
        text += f" vs {reference['model']} {artifact_name(reference)}"
    if p["accuracy_diff_points"] is not None:
        lo, hi = p["accuracy_diff_ci95_points"]
        n = "" if subject["n"] is None else f", n={subject['n']} each"
        text += f" at {_signed(p['accuracy_diff_points'])} points accuracy [{_signed(lo)}, {_signed(hi)}] ({p['method']}{n})"
    if p["notes"]:
        text += "; " + "; ".join(p["notes"])
    return text


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _device_kind(table: DeviceTable) -> str:
    if table.board:
        return "emulated board" if table.emulated else "board"
    return "emulated CPU" if table.emulated else "desktop"


def comparison(summary: dict[str, Any], reports: dict[str, dict[str, Any]],
               manifests: dict[str, dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """The build's comparison (JSON), or None with fewer than two built models.

    ``reports``: model name -> report.json; ``manifests``: model name -> manifest data (for the MACs).
    The reference model of each sentence is the first model of the build that has a usable artifact on
    the device; every other model is compared with it.
    """
    names = [m["name"] for m in summary["models"] if m["name"] in reports]
    if len(names) < 2:
        return None
    gates = {m["name"]: m.get("gates") or [] for m in summary["models"]}
    tables = {n: {t.device: t for t in device_tables(reports[n])} for n in names}
    seq = {n: (reports[n].get("latency_input") or {}).get("seq_len") or (reports[n].get("settings") or {}).get("seq_len")
           for n in names}
    datasets = {n: (reports[n].get("dataset") or {}).get("name") for n in names}
    models = {}
    for n in names:
        rec = (((manifests or {}).get(n) or {}).get("model") or {}).get("encoder_macs_per_token")
        models[n] = {"encoder_macs_per_token": macs_at(rec, seq[n]), "seq_len": seq[n],
                     "note": None if rec else "not in the manifest (exported before edgebert recorded it; "
                                              "re-export to add it)"}
    devices = []
    for device in dict.fromkeys(d for n in names for d in tables[n]):
        present = [n for n in names if device in tables[n]]
        if len(present) < 2:
            continue
        first = tables[present[0]][device]
        measure = cost_measure(first)
        entries = []
        for n in present:
            row, passing, ran = best(tables[n][device].rows, gates[n], device, measure, seq[n])
            entries.append(_entry(n, row, passing, ran, measure, seq[n], models[n]["encoder_macs_per_token"]))
        usable = [e for e in entries if e["artifact"] is not None]
        ref = usable[0] if usable else entries[0]
        same_lengths = len({seq[n] for n in present}) == 1
        pairs = [pair(e, ref, device, measure, datasets[e["model"]] == datasets[ref["model"]], same_lengths)
                 for e in entries if e is not ref]
        slower = int8_slower.findings({n: tables[n][device].rows for n in present}, ref["model"], measure)
        devices.append({"device": device, "kind": _device_kind(first), "cost_measure": measure,
                        "int8_not_cheaper": slower,
                        "cost_label": COST_LABELS.get(measure) if measure else "no time measure (emulated board)",
                        "reference": ref["model"], "best": entries, "pairs": pairs,
                        "sentence": _capital("; ".join(p["sentence"] for p in pairs)) + "."})
    return {"rule": BEST_RULE, "accuracy_difference_method": DIFFERENCE_METHOD, "models": models,
            "devices": devices}
