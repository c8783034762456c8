"""Which quantized layers cost the accuracy: a ranking for the accuracy goal (``accuracy_goal.py``).

Method ``one-int8``: for each layer the recipe quantizes, quantize again with only that layer int8 (as
the recipe quantizes it; every other layer float) and measure the mean |logit - fp32 logit| on the first
``RANK_TEXTS`` goal texts (batch 1, own lengths): the error that layer alone adds; the largest first.
Chosen over leave-one-float (all int8 but one layer): on the dead-unit outlier model static ONNX breaks
at two layers (the pre-classifier's output scale, the classifier's weight scale); with either still
int8, returning the other to float removed no error, so that ranking was flat.

It uses the real quantizer and runtime, so it sees what the artifact will do (weight outliers,
activation scales, fused kernels) and works the same for ONNX and TFLite. Cost: one quantization
(calibration reused) and ``RANK_TEXTS`` inferences per layer: seconds per layer for tiny models, ~12 s
per layer for the built-in DistilBERT on 2 shared cores (static ONNX, 40 layers: ~8 min). A continuous
logit error ranks, not accuracy: on 64 texts one flip is 1.6 points, too coarse to order layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

METHOD = "one-int8"
RANK_TEXTS = 64
DESCRIPTION = ("each quantized layer alone int8 (the rest float), ranked by the mean |logit - fp32 logit| it adds "
               f"on the first {RANK_TEXTS} goal texts: the largest first")

Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]


def logits(runner: Runner, rows: Sequence) -> np.ndarray:
    return np.concatenate([runner(ids, mask) for ids, mask in rows])


def rank(layers: Sequence[tuple[str, str]], quantize: Callable[[tuple[str, ...], Path], None],
         runner: Callable[[Path], Runner], reference: np.ndarray, rows: Sequence, scratch: Path,
         baseline_error: float, progress=None) -> dict:
    """The ``sensitivity`` record: ``ranking`` lists every layer, most sensitive first.

    ``quantize(exclude, path)`` keeps ``exclude`` float; ``reference``: the fp32 logits on ``rows``;
    ``baseline_error``: the all-int8 mean |Δlogit| on them (recorded for comparison).
    """
    names = [name for name, _ in layers]
    from ..progress import maybe_track

    scored = []
    for i, (name, op) in maybe_track(progress, list(enumerate(layers)), len(layers),
                                     f"ranking {len(layers)} layers by sensitivity ({METHOD})"):
        path = scratch / f"rank-{i}.bin"
        quantize(tuple(n for n in names if n != name), path)
        error = float(np.mean(np.abs(logits(runner(path), rows) - reference)))
        path.unlink(missing_ok=True)
        scored.append({"layer": name, "op": op, "logit_error": round(error, 6)})
    scored.sort(key=lambda r: (-r["logit_error"], r["layer"]))
    return {"method": METHOD, "description": DESCRIPTION, "texts": len(rows),
            "all_int8_logit_error": round(baseline_error, 6), "ranking": scored}
