"""Which quantized layers cost the accuracy: a ranking for the accuracy goal (``accuracy_goal.py``).

Method ``leave-one-float``: for each layer the recipe quantizes, quantize again with only that layer kept
float (everything else exactly as the recipe) and measure the mean |logit - fp32 logit| on the first
``RANK_TEXTS`` validation texts (batch 1, own lengths). The layer whose return to float removes the most
error ranks first. It uses the real quantizer and runtime, so it sees what the artifact will do (weight
outliers, activation scales, fused kernels) and works the same for ONNX and TFLite; its cost is one
quantization (calibration reused) and ``RANK_TEXTS`` inferences per layer, which on 2 cores is seconds
per layer for tiny models and ~10-20 s per layer for the built-in ones. A continuous logit error, not
accuracy, ranks: on 64 texts one flip is 1.6 points, too coarse to order layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

METHOD = "leave-one-float"
RANK_TEXTS = 64
DESCRIPTION = ("each quantized layer alone kept float (the rest as the recipe), ranked by the mean |logit - fp32 "
               f"logit| left on the first {RANK_TEXTS} goal texts: the most error removed first")

Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]


def logits(runner: Runner, rows: Sequence) -> np.ndarray:
    return np.concatenate([runner(ids, mask) for ids, mask in rows])


def rank(layers: Sequence[tuple[str, str]], quantize: Callable[[tuple[str, ...], Path], None],
         runner: Callable[[Path], Runner], reference: np.ndarray, rows: Sequence, scratch: Path,
         baseline_error: float, progress=None) -> dict:
    """The ``sensitivity`` record: ``ranking`` lists every layer, most sensitive first.

    ``reference``: the fp32 logits on ``rows``; ``baseline_error``: the all-int8 mean |Δlogit| on them.
    """
    from ..progress import maybe_track

    scored = []
    for i, (name, op) in maybe_track(progress, list(enumerate(layers)), len(layers),
                                     f"ranking {len(layers)} layers by sensitivity ({METHOD})"):
        path = scratch / f"rank-{i}.bin"
        quantize((name,), path)
        error = float(np.mean(np.abs(logits(runner(path), rows) - reference)))
        path.unlink(missing_ok=True)
        scored.append({"layer": name, "op": op, "logit_error": round(error, 6),
                       "error_removed": round(baseline_error - error, 6)})
    scored.sort(key=lambda r: (-r["error_removed"], r["layer"]))
    return {"method": METHOD, "description": DESCRIPTION, "texts": len(rows),
            "all_int8_logit_error": round(baseline_error, 6), "ranking": scored}
