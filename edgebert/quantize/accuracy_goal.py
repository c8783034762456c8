"""Accuracy-goal quantization (``--max-drop``): int8 where it is harmless, float only where the goal needs it.

The recipe's int8 model is measured against fp32 on labelled validation texts (the user's ``--data``, or
the built-in validation split; each text at batch 1, its own length). If the accuracy drop (fp32 minus
int8, in points, with n and a 95% interval) exceeds the goal, the quantized layers are ranked by
sensitivity (``sensitivity.py``) and the top 1, 2, ... 8, then 16, 32, ... of them are returned to float
until the drop is within the goal (never every layer: that is the fp32 model; at most ``max_float``,
the user's bound on the size/latency cost). The steps double past 8 so a large model with an unmeetable goal
costs ~log2(layers) more quantizations rather than one per layer. Not met: ``GoalNotMet`` (exit 1) naming
the best drop and its cost, unless ``keep_best`` asks for that best model anyway (it is written, then the
same error is raised). Format-neutral: the format's recipe comes in as a ``Backend``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..check import stats
from ..data import load_builtin
from ..data.tokenize import encode
from ..errors import UsageError, ValidationError
from ..goal_summary import describe_drop as _describe
from . import sensitivity

BUILTIN_SOURCE = "builtin:rt-snippets/validation"
INTERVAL = "paired normal approximation on the per-text correctness differences (fp32 minus int8)"
#: How many top-ranked layers are tried float, in order (past the last: doubling up to every layer).
STEPS = (1, 2, 3, 4, 5, 6, 7, 8)


class GoalNotMet(ValidationError):
    """The accuracy goal was not reached with any number of layers kept float (exit code 1)."""


@dataclass(frozen=True)
class GoalData:
    source: str
    rows: list                # (input_ids [1, L], attention_mask [1, L]) per text
    labels: np.ndarray


@dataclass(frozen=True)
class Backend:
    """One format's recipe, as the search needs it."""

    layers: list[tuple[str, str]]                          # (name, op) the recipe quantizes
    quantize: Callable[[tuple[str, ...], Path], None]      # layers kept float, scratch output path
    runner: Callable[[Path], Callable]                     # model path -> (ids, mask) -> logits
    suffix: str = ".onnx"


@dataclass(frozen=True)
class Outcome:
    exclude: tuple[str, ...]     # layers the artifact keeps float
    record: dict                 # the manifest's ``quantization["accuracy_goal"]``
    met: bool


def check_goal(max_drop: float | None, keep_best: bool, max_float: int | None = None) -> None:
    if max_float is not None and (max_drop is None or isinstance(max_float, bool) or not isinstance(max_float, int)
                                  or max_float < 0):
        raise UsageError("--max-float-layers takes a count >= 0 and applies only with --max-drop POINTS")
    if max_drop is not None and not (isinstance(max_drop, (int, float)) and math.isfinite(max_drop) and max_drop >= 0):
        raise UsageError(f"--max-drop is in accuracy points and must be a number >= 0 (got {max_drop})")
    if keep_best and max_drop is None:
        raise UsageError("--keep-best only applies with an accuracy goal; add --max-drop POINTS")


def load_data(path: Path | None, label2id: dict, text_column: str, label_column: str, tokenizer,
              seq_len: int) -> GoalData:
    """The labelled goal texts: ``path`` (CSV/TSV/JSONL with text and label columns) or the built-in
    validation split (never the test split, kept for reporting)."""
    from ..data import load_dataset

    data = load_builtin("validation") if path is None else load_dataset(path, label2id, text_column, label_column)
    rows = []
    for text in data.texts:
        enc = encode(tokenizer, [text], seq_len, pad_to_max=False)
        rows.append((enc["input_ids"], enc["attention_mask"]))
    return GoalData(BUILTIN_SOURCE if path is None else str(path), rows, np.asarray(data.labels))


def drop(fp32_correct: np.ndarray, int8_correct: np.ndarray) -> dict:
    """Accuracy drop in points with a paired 95% interval (the same texts through both models)."""
    d = fp32_correct.astype(float) - int8_correct.astype(float)
    n = len(d)
    points = 100 * float(d.mean())
    half = 100 * stats.Z95 * float(d.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return {"drop_points": round(points, 4), "drop_ci95_points": [round(points - half, 4), round(points + half, 4)],
            "accuracy": stats.rate(int(int8_correct.sum()), n)}


def schedule(n_layers: int, max_float: int | None = None) -> list[int]:
    """Layer counts to try float: 1..8, then doubling; never all layers (that is the fp32 model, not an
    int8 one) and never more than ``max_float``."""
    n_layers = min(n_layers - 1, n_layers if max_float is None else max_float)
    if n_layers < 1:
        return []
    ks = [k for k in STEPS if k <= n_layers]
    k = STEPS[-1] * 2
    while k < n_layers:
        ks.append(k)
        k *= 2
    if not ks or ks[-1] != n_layers:
        ks.append(n_layers)
    return ks


def search(backend: Backend, fp32_path: Path, data: GoalData, max_drop: float, scratch: Path, *,
           artifact: str, keep_best: bool = False, max_float: int | None = None, progress=None) -> Outcome:
    """Find the fewest top-ranked layers to keep float so that the drop is <= ``max_drop`` points."""
    from ..progress import maybe_step

    with maybe_step(progress, f"measuring fp32 accuracy on {len(data.rows)} goal texts"):
        reference = sensitivity.logits(backend.runner(fp32_path), data.rows)
    fp32_correct = reference.argmax(-1) == data.labels

    def measure(exclude: tuple[str, ...], name: str) -> tuple[dict, np.ndarray]:
        path = scratch / f"goal-{name}{backend.suffix}"
        backend.quantize(exclude, path)
        out = sensitivity.logits(backend.runner(path), data.rows)
        result = {**drop(fp32_correct, out.argmax(-1) == data.labels), "float_layers": len(exclude),
                  "size_bytes": path.stat().st_size}
        path.unlink()
        return result, out

    with maybe_step(progress, "measuring the all-int8 accuracy"):
        before, before_logits = measure((), "all-int8")
    record = {"max_drop_points": max_drop, "data": {"source": data.source, "texts": len(data.rows)},
              "fp32": stats.rate(int(fp32_correct.sum()), len(fp32_correct)), "interval": INTERVAL,
              "layers": len(backend.layers), "max_float_layers": max_float, "before": before}
    if before["drop_points"] <= max_drop:
        return Outcome((), {**record, "met": True, "after": before, "sensitivity": None, "fallback": [],
                            "tried": []}, True)

    k_rank = min(sensitivity.RANK_TEXTS, len(data.rows))
    baseline = float(np.mean(np.abs(before_logits[:k_rank] - reference[:k_rank])))
    ranked = sensitivity.rank(backend.layers, backend.quantize, backend.runner, reference[:k_rank],
                              data.rows[:k_rank], scratch, baseline, progress)
    order = [(r["layer"], r["op"]) for r in ranked["ranking"]]
    tried, best, best_k = [], before, 0
    for k in schedule(len(order), max_float):
        with maybe_step(progress, f"trying the top {k} layer(s) float"):
            result, _ = measure(tuple(name for name, _ in order[:k]), f"top{k}")
        tried.append({"float_layers": k, "drop_points": result["drop_points"], "size_bytes": result["size_bytes"]})
        if result["drop_points"] < best["drop_points"]:
            best, best_k = result, k
        if result["drop_points"] <= max_drop:
            best, best_k = result, k
            break
    met = best["drop_points"] <= max_drop
    fallback = [{"layer": name, "op": op, "rank": i + 1} for i, (name, op) in enumerate(order[:best_k])]
    record.update(met=met, after=best, sensitivity=ranked, fallback=fallback, tried=tried)
    outcome = Outcome(tuple(name for name, _ in order[:best_k]), record, met)
    if not met and not keep_best:
        raise not_met(artifact, outcome, kept=False)
    return outcome


def not_met(artifact: str, outcome: Outcome, kept: bool) -> GoalNotMet:
    r = outcome.record
    best, before = r["after"], r["before"]
    tail = f"kept it as {artifact} (--keep-best)" if kept else "no file was kept (--keep-best keeps the best)"
    return GoalNotMet(
        f"{artifact}: accuracy goal --max-drop {r['max_drop_points']:g} not met: best drop {_describe(best)} with "
        f"{best['float_layers']} of {r['layers']} layers float, {best['size_bytes'] / 1e6:.2f} MB "
        f"(all-int8: {before['drop_points']:.2f} points, {before['size_bytes'] / 1e6:.2f} MB); {tail}")
