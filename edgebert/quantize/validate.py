"""Numeric checks of a quantization against the fp32 model: a rewrite must be exact, int8 must agree.

Both run on the built-in **validation** split (carved from train, never the test split, which is kept
for reporting): the rewrite check on a padded batch of 16 texts (a hard error: a rewrite must not
change the function), the int8 check on ``AGREEMENT_TEXTS`` texts, each at batch 1 and its own length
as an app runs them. The int8 artifact is kept only when its predictions agree with fp32 on at least
``min_agreement`` of them (``gate``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import onnx

from ..data import load_builtin
from ..data.tokenize import encode
from ..errors import EdgebertError, UsageError, ValidationError

SPLIT = "validation"
SOURCE = f"builtin:rt-snippets/{SPLIT}"
REWRITE_TEXTS = 16
#: Enough texts that one flip moves agreement by 0.005; ~1-3 s per built-in artifact at batch 1.
AGREEMENT_TEXTS = 200
#: Default limit on that agreement (see README: measured on the built-in models).
MIN_AGREEMENT = 0.9
REWRITE_TOLERANCE = 1e-4  # on logits; float re-association differences are ~1e-6

Row = tuple[np.ndarray, np.ndarray]  # (input_ids [1, L], attention_mask [1, L]) int64, L = the text's length


def texts(n: int) -> tuple[str, ...]:
    return load_builtin(SPLIT).texts[:n]


def feeds(tokenizer, seq_len: int, n: int = REWRITE_TEXTS) -> dict[str, np.ndarray]:
    """A padded batch of validation texts (padding included on purpose: a rewrite must be exact on it)."""
    return encode(tokenizer, texts(n), seq_len, pad_to_max=False)


def rows(tokenizer, seq_len: int, n: int = AGREEMENT_TEXTS) -> list[Row]:
    """Each validation text alone, at its own length (truncated to ``seq_len``): no padding."""
    out = []
    for text in texts(n):
        enc = encode(tokenizer, [text], seq_len, pad_to_max=False)
        out.append((enc["input_ids"], enc["attention_mask"]))
    return out


def run(model: onnx.ModelProto | str, inputs: dict[str, np.ndarray]) -> np.ndarray:
    return onnx_runner(model)(inputs["input_ids"], inputs["attention_mask"])


def onnx_runner(model: onnx.ModelProto | str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """(input_ids, attention_mask) -> logits on the ONNX Runtime runtime ``check`` measures with, 1 thread
    (batch-1 rows of ~27 tokens: 1 thread ran the 200-text check 1.8x faster than the default on 2 shared
    cores). ``model``: a graph in memory or a file path."""
    from ..devices.runtimes import OnnxRuntimeCPU

    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return OnnxRuntimeCPU(data, threads=1).run


def check_rewrite(original, rewritten, inputs) -> float:
    diff = float(np.max(np.abs(run(original, inputs) - run(rewritten, inputs))))
    if not diff <= REWRITE_TOLERANCE:
        raise EdgebertError(f"graph rewrite changed the fp32 logits by {diff:.3g} (> {REWRITE_TOLERANCE}); "
                            "this is a bug in edgebert's rewrite, please report it")
    return diff


def agreement(reference: Callable, candidate: Callable, inputs: Sequence[Row], min_agreement: float) -> dict:
    """Run every row through both models; the manifest's ``validation`` record."""
    ref = np.concatenate([reference(ids, mask) for ids, mask in inputs])
    out = np.concatenate([candidate(ids, mask) for ids, mask in inputs])
    lengths = [int(mask.sum()) for _, mask in inputs]
    return {
        "texts": int(ref.shape[0]), "source": SOURCE, "batch": 1,
        "lengths": {"min": min(lengths), "max": max(lengths), "mean": round(float(np.mean(lengths)), 1)},
        "max_abs_logit_diff": round(float(np.max(np.abs(ref - out))), 6),
        "prediction_agreement": round(float(np.mean(ref.argmax(-1) == out.argmax(-1))), 4),
        "min_agreement": min_agreement,
    }


def compare(reference, candidate, tokenizer, seq_len: int, min_agreement: float,
            n: int = AGREEMENT_TEXTS) -> dict:
    """ONNX: the int8 graph against the fp32 one on ``n`` validation texts, batch 1, own lengths."""
    return agreement(onnx_runner(reference), onnx_runner(candidate), rows(tokenizer, seq_len, n), min_agreement)


def check_min_agreement(value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"--min-agreement must be between 0 and 1 (got {value:g})")


def gate(artifact: str, validation: dict) -> None:
    """Refuse an int8 model whose predictions agree with fp32 less often than ``min_agreement``."""
    got, limit = validation["prediction_agreement"], validation["min_agreement"]
    if got < limit:
        raise ValidationError(f"{artifact}: agreement with fp32 {_fraction(got)} on {validation['texts']} validation "
                              f"texts is below --min-agreement {_fraction(limit)}; no file was kept")


def _fraction(x: float) -> str:
    """Two decimals, more only when needed (0.895 must not print as 0.90 next to a 0.90 limit)."""
    return f"{x:.2f}" if abs(x - round(x, 2)) < 1e-9 else f"{x:.4f}".rstrip("0")
