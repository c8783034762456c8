"""Numeric checks of a quantization against the fp32 model: a rewrite must be exact, int8 must agree.

The rewrite check runs on a padded batch of 16 texts of the built-in **validation** split (carved from
train, never the test split; a hard error: a rewrite must not change the function). The int8 check runs
on ``AGREEMENT_TEXTS`` texts of the user's data when the command has some, else of that split
(``agreement_texts``), each at batch 1 and its own length as an app runs them. Disagreements are split
into near-ties and confident flips (``near_ties``); the int8 artifact is kept only when it agrees with
fp32 on at least ``min_agreement`` of the confident texts (``gate``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import onnx

from ..data import load_builtin
from ..data.tokenize import encode
from ..errors import EdgebertError, UsageError, ValidationError
from . import near_ties
from .agreement_texts import SOURCE, SPLIT, AgreementTexts
REWRITE_TEXTS = 16
#: Enough texts that one flip moves agreement by 0.005; ~1-3 s per built-in artifact at batch 1.
AGREEMENT_TEXTS = 200
#: Default limit on that agreement (see docs/quantization.md: measured on the built-in models).
MIN_AGREEMENT = 0.9
REWRITE_TOLERANCE = 1e-4  # on logits; float re-association differences are ~1e-6

Row = tuple[np.ndarray, np.ndarray]  # (input_ids [1, L], attention_mask [1, L]) int64, L = the text's length


def texts(n: int) -> tuple[str, ...]:
    return load_builtin(SPLIT).texts[:n]


def feeds(tokenizer, seq_len: int, n: int = REWRITE_TEXTS) -> dict[str, np.ndarray]:
    """A padded batch of validation texts (padding included on purpose: a rewrite must be exact on it)."""
    return encode(tokenizer, texts(n), seq_len, pad_to_max=False)


def builtin_texts(n: int = AGREEMENT_TEXTS) -> AgreementTexts:
    return AgreementTexts(texts(n), SOURCE, "built-in")


def rows(tokenizer, seq_len: int, n: int | AgreementTexts = AGREEMENT_TEXTS) -> list[Row]:
    """Each text alone, at its own length (truncated to ``seq_len``): no padding. ``n``: that many
    built-in validation texts, or the chosen ``AgreementTexts``."""
    chosen = n if isinstance(n, AgreementTexts) else builtin_texts(n)
    out = []
    for text in chosen.texts:
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


def agreement(reference: Callable, candidate: Callable, inputs: Sequence[Row], min_agreement: float,
              texts: AgreementTexts | None = None) -> dict:
    """Run every row through both models; the manifest's ``validation`` record (``texts``: what the rows
    were made from; None: the built-in validation texts)."""
    chosen = texts or builtin_texts(len(inputs))
    ref = np.concatenate([reference(ids, mask) for ids, mask in inputs])
    out = np.concatenate([candidate(ids, mask) for ids, mask in inputs])
    lengths = [int(mask.sum()) for _, mask in inputs]
    return {
        "texts": int(ref.shape[0]), "source": chosen.source, "origin": chosen.origin,
        "texts_label": chosen.label, "batch": 1,
        **({"overlaps_calibration": True} if chosen.overlaps_calibration else {}),
        "lengths": {"min": min(lengths), "max": max(lengths), "mean": round(float(np.mean(lengths)), 1)},
        "max_abs_logit_diff": round(float(np.max(np.abs(ref - out))), 6),
        "prediction_agreement": round(float(np.mean(ref.argmax(-1) == out.argmax(-1))), 4),
        "min_agreement": min_agreement, "gated_on": "confident",
        "agreement": near_ties.split(ref, out),
    }


def compare(reference, candidate, tokenizer, seq_len: int, min_agreement: float,
            n: int | AgreementTexts = AGREEMENT_TEXTS) -> dict:
    """ONNX: the int8 graph against the fp32 one on ``n`` texts (a count of built-in validation texts, or
    the chosen ``AgreementTexts``), batch 1, own lengths."""
    chosen = n if isinstance(n, AgreementTexts) else builtin_texts(n)
    return agreement(onnx_runner(reference), onnx_runner(candidate), rows(tokenizer, seq_len, chosen),
                     min_agreement, chosen)


def check_min_agreement(value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"--min-agreement must be between 0 and 1 (got {value:g})")


def gate(artifact: str, validation: dict) -> None:
    """Refuse an int8 model that agrees with fp32 on less than ``min_agreement`` of the confident texts."""
    rec, limit = validation["agreement"], validation["min_agreement"]
    if near_ties.passes(rec, limit):
        return
    hint = f"; {validation['hint']}" if validation.get("hint") else ""
    if rec["confident"]["n"] == 0:
        raise ValidationError(
            f"{artifact}: on {validation['texts_label']} no fp32 prediction is confident beyond the int8 noise "
            f"(every top-2 logit margin <= {rec['noise']['tie_margin']:.3g}, twice the {near_ties.NOISE_NAME} of the "
            f"per-text max |Δlogit|), so agreement cannot be defended; no file was kept{hint}")
    raise ValidationError(f"{artifact}: agreement with fp32 on confident texts {_rate(rec['confident'])} is below "
                          f"--min-agreement {_fraction(limit)} ({_ties(validation)}); no file was kept{hint}")


def summary(validation: dict) -> str:
    """One line for the CLI: what the gate measured, on which texts, with n and 95% intervals."""
    rec = validation["agreement"]
    hint = f"; {validation['hint']}" if validation.get("hint") else ""
    return (f"agreement with fp32 on confident texts {_rate(rec['confident'])} (gated, --min-agreement "
            f"{_fraction(validation['min_agreement'])}; {_ties(validation)}){hint}")


def _ties(validation: dict) -> str:
    rec = validation["agreement"]
    ties = rec["near_ties"]
    return (f"{validation['texts_label']}: overall {_rate(rec['overall'])}; {ties['n']} near-ties (fp32 top-2 "
            f"margin <= {rec['noise']['tie_margin']:.3g}, twice the {near_ties.NOISE_NAME} of the per-text max |Δlogit|), "
            f"{ties['disagree']['k']} disagreeing: {_rate(ties['disagree'])}")


def _rate(r: dict) -> str:
    """"0.95 [0.91, 0.97] n=180"; "n=0" when there is nothing to count."""
    if not r["n"]:
        return "n=0"
    lo, hi = r["ci95"]
    return f"{_fraction(round(r['rate'], 4))} [95% CI {lo:.2f}, {hi:.2f}] n={r['n']}"


def _fraction(x: float) -> str:
    """Two decimals, more only when needed (0.895 must not print as 0.90 next to a 0.90 limit)."""
    return f"{x:.2f}" if abs(x - round(x, 2)) < 1e-9 else f"{x:.4f}".rstrip("0")
