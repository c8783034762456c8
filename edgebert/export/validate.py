"""Validation of an exported artifact against PyTorch, on several real input shapes.

Cases cover batch 1 and 4, padded and unpadded rows, and two sequence lengths (a short natural one
and the export's full sequence length), built from real texts so token statistics are realistic.
The artifact runs on the same :class:`~edgebert.devices.runtimes.Runtime` that ``check`` measures
with (``runtime_runner``), so what was validated is what gets measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..devices.litert import fit_length
from ..devices.runtimes import Runtime
from ..errors import ValidationError

SHORT = "A gorgeous, witty film."
MIXED = (
    "A gorgeous, witty film.",
    "Dull and far too long, with a plot that goes nowhere and characters nobody could care about.",
    "Not bad.",
    "The performances are strong, but the script never decides what kind of movie it wants to be.",
)


@dataclass(frozen=True)
class Case:
    name: str
    batch: int
    padded: bool
    inputs: dict[str, np.ndarray]


def validation_cases(tokenizer, seq_len: int) -> list[Case]:
    """Four shapes: b1 short unpadded, b1 full-length unpadded, b4 padded to longest, b4 padded to seq_len."""
    long_text = " ".join(MIXED * 20)  # truncated to exactly seq_len tokens

    def enc(texts, **kw):
        out = tokenizer(list(texts), truncation=True, max_length=seq_len, return_tensors="np", **kw)
        return {"input_ids": out["input_ids"].astype(np.int64), "attention_mask": out["attention_mask"].astype(np.int64)}

    return [
        Case("batch1-short-unpadded", 1, False, enc([SHORT])),
        Case(f"batch1-len{seq_len}-unpadded", 1, False, enc([long_text])),
        Case("batch4-padded-longest", 4, True, enc(MIXED, padding="longest")),
        Case(f"batch4-padded-len{seq_len}", 4, True, enc(MIXED, padding="max_length")),
    ]


def torch_logits(model: torch.nn.Module, inputs: dict[str, np.ndarray]) -> np.ndarray:
    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    return out.logits.float().numpy()


def runtime_runner(runtime: Runtime) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """A case's inputs -> logits on ``runtime`` (what :func:`validate` calls)."""
    return lambda inputs: runtime.run(inputs["input_ids"], inputs["attention_mask"])


def validate(
    model: torch.nn.Module,
    run: Callable[[dict[str, np.ndarray]], np.ndarray],
    cases: list[Case],
    atol: float,
    what: str,
) -> dict:
    """Compare ``run`` (an exported artifact) with PyTorch on every case; raise above ``atol``."""
    results = []
    for case in cases:
        ref = torch_logits(model, case.inputs)
        got = run(case.inputs)
        if got.shape != ref.shape:
            raise ValidationError(f"{what}: output shape {got.shape} != PyTorch {ref.shape} on {case.name}")
        diff = float(np.max(np.abs(got - ref)))
        results.append({"case": case.name, "batch": case.batch, "seq_len": int(case.inputs["input_ids"].shape[1]),
                        "padded": case.padded, "max_abs_diff": diff,
                        "argmax_equal": bool((got.argmax(-1) == ref.argmax(-1)).all())})
    worst = max(r["max_abs_diff"] for r in results)
    if not np.isfinite(worst) or worst > atol:
        bad = max(results, key=lambda r: r["max_abs_diff"])
        raise ValidationError(
            f"{what}: logits differ from PyTorch by {worst:.3g} on {bad['case']} (tolerance {atol:g}; "
            f"raise it with --atol if this is expected)"
        )
    return {"reference": "pytorch", "atol": atol, "max_abs_diff": worst, "cases": results}


def validate_lengths(model: torch.nn.Module, run: Callable[[dict[str, np.ndarray]], np.ndarray],
                     cases: list[Case], lengths: tuple[int, ...], atol: float, what: str) -> dict:
    """:func:`validate` for a fixed-shape artifact on each of its input lengths.

    ``run(inputs)`` runs rows on the smallest length that holds their width (the runtime's rule), so
    each case is padded (token 0, mask 0) to each length ``L`` that holds it and compared against
    PyTorch on its original rows: every signature is checked, batch-4 and padded cases included.
    """
    results, worst = [], 0.0
    for length in lengths:
        fitting = [c for c in cases if c.inputs["input_ids"].shape[1] <= length]
        padded = [Case(c.name, c.batch, c.padded,
                       {k: fit_length(v, length) for k, v in c.inputs.items()})
                  for c in fitting]
        if not padded:
            continue
        out = validate(model, run, padded, atol, f"{what} (signature of length {length})")
        for rec in out["cases"]:
            results.append({**rec, "signature_len": length})
        worst = max(worst, out["max_abs_diff"])
    return {"reference": "pytorch", "atol": atol, "max_abs_diff": worst, "cases": results,
            "fixed_shape": "each case right-padded to every signature length that holds it, rows run at batch 1"}
