"""int8 vs fp32 disagreements split into near-ties (noise) and flips on confident examples (damage).

A model with low-confidence outputs (fp32 top-2 logit margins of a few 1e-3) changes its prediction
under int8 noise of the same size: 20% disagreement with a max |Δlogit| of 0.0044 says the model is
undecided on those texts, not that int8 broke it. Only a flip where fp32 was clearly decided is evidence
of damage, so that is what ``--min-agreement`` gates.

The rule, measured on this very run (fp32 logits ``ref``, int8 logits ``out``, one row per text):

- noise ``ε`` = the median (an observed value: numpy ``method="higher"``) of the per-text max |Δlogit|
  over the classes: the typical int8 noise of this run;
- a text is a **near-tie** when its fp32 top-2 margin is ≤ ``2ε`` (int8 noise of ``ε`` can lower the top
  logit by ``ε`` and raise the runner-up by ``ε``); every other text is **confident**;
- the gate is the agreement on the confident texts; when no text is confident the int8 noise is as
  large as every fp32 margin, which cannot be defended, so the gate fails.

Why the median and not a high quantile or the max: a flip needs margin ≤ 2 × that text's own |Δlogit|,
so with the max every flip is a near-tie by construction, and with the q-quantile at most (1-q) of the
texts can ever count as confident flips (q=0.95: 5%, which a 0.9 limit never sees). With the median,
half of them can. Limit, measured (tests/test_quantize_agreement.py): int8 damage that is uniform over
the texts raises ``ε`` with it, so such a model is judged like a low-confidence one (noise as large as
its margins); only when the noise exceeds every margin does it fail for want of confident texts. Every
rate carries its n and a 95% Wilson interval (``check.stats``).
"""

from __future__ import annotations

import numpy as np

from ..check import stats

NOISE_QUANTILE = 0.5
NOISE_NAME = "median"
RULE = (f"near-tie: fp32 top-2 logit margin <= 2*eps, eps = the {NOISE_NAME} of the per-text max |dlogit| of this "
        "run; --min-agreement gates agreement on the other (confident) texts")


def margins(logits: np.ndarray) -> np.ndarray:
    """fp32 top-2 logit margin per row (inf for a single-logit model: nothing to tie with)."""
    if logits.shape[-1] < 2:
        return np.full(logits.shape[0], np.inf)
    top2 = np.sort(logits, axis=-1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def split(ref: np.ndarray, out: np.ndarray) -> dict:
    """The agreement record of one run: overall, near-ties and confident texts, each with n and 95% CI."""
    ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
    if ref.shape != out.shape or ref.ndim != 2 or ref.shape[0] == 0:
        raise ValueError(f"logits must be two equal, non-empty [n, classes] arrays (got {ref.shape}, {out.shape})")
    agree = ref.argmax(-1) == out.argmax(-1)
    diff = np.abs(ref - out).max(-1)
    eps = float(np.quantile(diff, NOISE_QUANTILE, method="higher"))
    tie = margins(ref) <= 2 * eps
    n_tie, n_conf = int(tie.sum()), int((~tie).sum())
    return {
        "rule": RULE,
        "noise": {"quantile": NOISE_QUANTILE, "eps": round(eps, 8), "tie_margin": round(2 * eps, 8)},
        "overall": stats.rate(int(agree.sum()), len(agree)),
        "confident": stats.rate(int(agree[~tie].sum()), n_conf),
        "near_ties": {"n": n_tie, "disagree": stats.rate(int((~agree[tie]).sum()), n_tie)},
        "confident_flips": int((~agree[~tie]).sum()),
    }


def passes(record: dict, min_agreement: float) -> bool:
    """The gate: agreement on confident texts reaches the limit (0 turns the check off)."""
    if min_agreement <= 0:
        return True
    confident = record["confident"]
    return confident["n"] > 0 and confident["rate"] >= min_agreement
