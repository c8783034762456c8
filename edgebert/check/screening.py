"""Margin screening: an ARM accuracy on the whole evaluation set for the emulator time of a few hundred.

Emulation is ~100x slower than native, so an emulated device cannot run every example of every
artifact inside a CI budget. It does not need to: an example's prediction can change between the
desktop and the emulated CPU only if some logit moves by at least half the desktop's margin
(top-1 minus top-2 logit). The method, per (artifact, emulated CPU):

1. run a fixed random **probe** of the examples under emulation and measure the drift (max |logit
   difference| against the desktop run of the same artifact on the same example);
2. take the bound ``B = safety x max drift seen so far`` (never below ``DRIFT_FLOOR``);
3. run every example whose desktop margin is at most ``2B`` (the **screened** ones: those whose
   prediction a drift up to ``B`` could flip);
4. if the screened examples drifted more than the probe did, ``B`` grows: screen again with it, until
   no example is left with a margin under ``2B`` that has not been emulated (``rounds``);
5. every other example keeps its desktop prediction (**carried over**): it could only flip if its
   drift exceeded ``B``, i.e. ``safety`` times the largest drift of every emulated example.

That assumption is the one the number rests on; the report states it next to the number, with the
counts (probe, screened, carried over), the drift measured and the bound. The probe is a uniform
random sample, so its flips also give an assumption-free (wider) estimate of the flip rate.

``method="all"`` runs every example under emulation (no assumption, full cost).

Measured (built-in DistilBERT, int8-dynamic ONNX, cortex-a76, all 1,000 examples emulated once):
max drift 0.239, p50 0.015, 6 flips, each at a desktop margin under 0.15. With a 48-example probe,
``safety = 3`` covered every example's drift in 98% of random probes and missed no flip in any;
``safety = 2`` covered 56% (and still missed no flip); the screened set was ~200 examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..vocabulary import SCREENING_METHODS
from . import stats

METHODS = SCREENING_METHODS
DRIFT_FLOOR = 1e-4     # logits: below this, float re-association noise; the bound never goes lower
MAX_ROUNDS = 4
PROBE_SEED = 20261202  # fixed: the same probe examples for every artifact, device and run


@dataclass(frozen=True)
class ScreeningSettings:
    method: str = "screened"    # "screened" | "all"
    probe: int = 48             # random examples emulated per int8 artifact
    probe_fp32: int = 8         # per fp32 artifact (fp32 kernels agree with the desktop to ~1e-6)
    safety: float = 3.0         # B = safety x the largest drift measured under emulation

    def probe_size(self, precision: str) -> int:
        return self.probe_fp32 if precision == "fp32" else self.probe


def margins(logits: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 logit per row (inf for a single-class model)."""
    if logits.shape[1] < 2:
        return np.full(len(logits), np.inf)
    part = np.sort(logits, axis=1)
    return part[:, -1] - part[:, -2]


def probe_indices(n: int, size: int, seed: int = PROBE_SEED) -> np.ndarray:
    """A fixed uniform random sample of ``size`` of ``n`` example indices (sorted)."""
    size = min(max(int(size), 0), n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False)) if size else np.zeros(0, int)


def run(desktop: np.ndarray, emulate: Callable[[np.ndarray], np.ndarray], settings: ScreeningSettings,
        precision: str) -> tuple[np.ndarray, dict]:
    """Apply the method: ``emulate(indices) -> logits`` runs those examples on the emulated device.

    Returns the device's logits for every example (emulated ones measured, the rest carried over
    from ``desktop``) and the summary that goes into the record's ``emulation``.
    """
    n = len(desktop)
    emulated = np.zeros(n, bool)
    device = desktop.astype(np.float32).copy()

    def do(idx: np.ndarray) -> None:
        if len(idx):
            device[idx] = emulate(idx)
            emulated[idx] = True

    if settings.method == "all":
        do(np.arange(n))
        return device, summary(desktop, device, emulated, np.arange(n), settings, None, 0, n)
    probe = probe_indices(n, settings.probe_size(precision))
    do(probe)
    margin = margins(desktop)
    rounds, bound = 0, None
    while rounds < MAX_ROUNDS:
        bound = max(settings.safety * _max_drift(desktop, device, emulated), DRIFT_FLOOR)
        todo = np.flatnonzero(~emulated & (margin <= 2 * bound))
        if not len(todo):
            break
        do(todo)
        rounds += 1
    return device, summary(desktop, device, emulated, probe, settings, bound, rounds, n)


def _max_drift(desktop: np.ndarray, device: np.ndarray, emulated: np.ndarray) -> float:
    if not emulated.any():
        return 0.0
    return float(np.max(np.abs(desktop[emulated].astype(np.float64) - device[emulated])))


def summary(desktop: np.ndarray, device: np.ndarray, emulated: np.ndarray, probe: np.ndarray,
            settings: ScreeningSettings, bound: float | None, rounds: int, n: int) -> dict:
    """What ran under emulation, what was carried over, the bound relied on, and the flips."""
    flips = np.argmax(desktop, axis=1) != np.argmax(device, axis=1)
    probe_flips = int(flips[probe].sum()) if len(probe) else 0
    k = int(flips.sum())
    out = {
        "method": settings.method,
        "n": int(n),
        "n_emulated": int(emulated.sum()),
        "n_probe": int(len(probe)),
        "n_screened": int(emulated.sum() - len(probe)) if settings.method == "screened" else 0,
        "n_carried_over": int(n - emulated.sum()),
        "emulated_examples": [int(i) for i in np.flatnonzero(emulated)],
        "max_drift_probe": round(_max_drift(desktop, device, _mask(n, probe)), 7),
        "max_drift_emulated": round(_max_drift(desktop, device, emulated), 7),
        "flips": {**stats.rate(k, n), "upper95": round(stats.upper_bound(k, n), 6) if n else None},
        "probe_flips": {**stats.rate(probe_flips, len(probe)),
                        "upper95": round(stats.upper_bound(probe_flips, len(probe)), 6) if len(probe) else None},
    }
    if settings.method == "screened":
        out["bound"] = {"safety": settings.safety, "drift_floor": DRIFT_FLOOR, "drift_bound": round(bound, 7),
                        "margin_threshold": round(2 * bound, 7), "rounds": rounds,
                        "assumption": describe_assumption(settings.safety, bound,
                                                          _max_drift(desktop, device, emulated))}
    return out


def _mask(n: int, idx: np.ndarray) -> np.ndarray:
    m = np.zeros(n, bool)
    m[idx] = True
    return m


def describe_assumption(safety: float, bound: float, measured: float) -> str:
    why = (f"{safety:g} x the largest drift measured on the emulated examples ({measured:.3g})"
           if safety * measured >= DRIFT_FLOOR else
           f"the floor of the bound (the largest drift measured on the emulated examples was {measured:.3g})")
    return (f"an example not run under emulation keeps its desktop prediction: its desktop margin exceeds "
            f"2 x {bound:.3g}, so it could flip only if its logits drifted more than {bound:.3g}, "
            f"which is {why}")
