"""Margin screening and the interval arithmetic behind every accuracy and rate in the reports.

Pure numpy: the method is exercised on synthetic desktop/device logits whose drifts and flips are
known, so each assertion fails when the method (or the counting) is broken.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgebert.check import screening, stats
from edgebert.check.runner import accuracy_fields
from edgebert.check.screening import ScreeningSettings


# --- intervals --------------------------------------------------------------------------------
def test_wilson_matches_published_values():
    # Wilson score interval, z = 1.96 (Newcombe 1998, table I: 0/10, 1/10, 81/263)
    lo, hi = stats.wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = stats.wilson(1, 10)
    assert (lo, hi) == (pytest.approx(0.0179, abs=1e-4), pytest.approx(0.4042, abs=1e-4))
    lo, hi = stats.wilson(81, 263)
    assert (lo, hi) == (pytest.approx(0.2553, abs=1e-4), pytest.approx(0.3662, abs=1e-4))
    assert stats.wilson(4, 4)[0] == pytest.approx(0.5101, abs=1e-4)  # 4/4 correct is not "100%"
    assert all(math.isnan(x) for x in stats.wilson(0, 0))
    with pytest.raises(ValueError):
        stats.wilson(5, 4)


@pytest.mark.parametrize("k,n", [(0, 4), (0, 300), (1, 48), (6, 1000), (20, 500), (47, 48)])
def test_upper_bound_is_the_exact_clopper_pearson_bound(k, n):
    from scipy.stats import beta

    assert stats.upper_bound(k, n) == pytest.approx(beta.ppf(0.95, k + 1, n - k), rel=1e-6)


def test_upper_bound_edges():
    assert stats.upper_bound(0, 100) == pytest.approx(1 - 0.05 ** (1 / 100), rel=1e-9)  # "rule of three"
    assert stats.upper_bound(10, 10) == 1.0 and math.isnan(stats.upper_bound(0, 0))


def test_accuracy_fields_count_argmax_hits():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0], [0.5, 0.4]], np.float32)
    labels = np.array([0, 1, 1, 1])
    out = accuracy_fields(logits, labels, "measured")
    assert out["accuracy"] == 0.5 and out["accuracy_correct"] == 2  # argmin would give 0.5 too: check rows
    assert accuracy_fields(logits, np.array([0, 1, 0, 0]), "m")["accuracy"] == 1.0
    assert accuracy_fields(logits, np.array([1, 0, 1, 1]), "m")["accuracy"] == 0.0
    assert out["accuracy_ci95"] == [round(x, 6) for x in stats.wilson(2, 4)]


# --- screening --------------------------------------------------------------------------------
def _logits(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 2, n)
    return np.stack([a, -a], axis=1).astype(np.float32)  # margin = 2|a|


def _device(desktop: np.ndarray, drift: np.ndarray) -> np.ndarray:
    """Device logits: the desktop's with example i's first logit moved by drift[i]."""
    out = desktop.copy()
    out[:, 0] += drift
    return out


class Emulator:
    """Stands for the emulated device: returns the known device logits and records what it ran."""

    def __init__(self, device: np.ndarray):
        self.device, self.calls = device, []

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        self.calls.append(np.asarray(idx).copy())
        return self.device[idx]


def test_screening_emulates_every_example_a_bounded_drift_could_flip():
    n = 1000
    desktop = _logits(n)
    rng = np.random.default_rng(1)
    drift = rng.uniform(-0.05, 0.05, n)
    emu = Emulator(_device(desktop, drift))
    logits, summ = screening.run(desktop, emu, ScreeningSettings(probe=32, safety=2.0), "int8-dynamic")

    emulated = np.zeros(n, bool)
    emulated[summ["emulated_examples"]] = True
    bound = summ["bound"]["drift_bound"]
    margin = screening.margins(desktop)
    assert bound >= 2.0 * summ["max_drift_emulated"] - 1e-6
    assert np.all(emulated[margin <= 2 * bound])            # nothing a drift <= B could flip is carried over
    assert 32 < emulated.sum() < 0.3 * n                       # and far fewer than all examples ran
    np.testing.assert_array_equal(logits[emulated], emu.device[emulated])   # measured where emulated
    np.testing.assert_array_equal(logits[~emulated], desktop[~emulated])    # carried over elsewhere
    assert summ["n_emulated"] == emulated.sum() == summ["n_probe"] + summ["n_screened"]
    assert summ["n_carried_over"] == n - emulated.sum()
    assert len(emu.calls[0]) == 32                              # the probe first, then screened rounds


def test_flips_are_counted_and_bounded():
    n = 500
    desktop = _logits(n, seed=2)
    margin = screening.margins(desktop)
    drift = np.minimum(np.random.default_rng(7).uniform(0.08, 0.1, n), 0.4 * margin)  # no flip: < margin/2
    near = np.argsort(margin)[:5]                  # the five examples nearest the boundary flip
    assert margin[near].max() < 0.2
    drift[near] = -np.sign(desktop[near, 0] - desktop[near, 1]) * (margin[near] + 0.001)
    logits, summ = screening.run(desktop, Emulator(_device(desktop, drift)), ScreeningSettings(probe=16), "int8-static")
    assert summ["flips"]["k"] == 5 and summ["flips"]["n"] == n
    assert summ["flips"]["upper95"] == pytest.approx(stats.upper_bound(5, n), abs=1e-6)
    assert np.sum(np.argmax(logits, 1) != np.argmax(desktop, 1)) == 5


def test_the_bound_grows_when_screened_examples_drift_more_than_the_probe():
    n = 400
    desktop = _logits(n, seed=3)
    margin = screening.margins(desktop)
    drift = np.full(n, 0.05)
    near = np.flatnonzero(margin <= 0.15)          # screened in the first round (B = 1.5 x 0.05) ...
    drift[near] = 0.5                              # ... and they drift much more than the probe showed
    settings = ScreeningSettings(probe=8, safety=1.5)
    probe = screening.probe_indices(n, 8)
    assert len(near) and not set(near) & set(probe)  # the probe alone would not see it
    _, summ = screening.run(desktop, Emulator(_device(desktop, drift)), settings, "int8-dynamic")
    assert summ["bound"]["rounds"] >= 2
    assert summ["max_drift_emulated"] == pytest.approx(0.5, abs=1e-6)
    assert summ["bound"]["drift_bound"] == pytest.approx(0.75, abs=1e-6)
    emulated = np.zeros(n, bool)
    emulated[summ["emulated_examples"]] = True
    assert np.all(emulated[margin <= 1.5])


def test_fp32_probe_is_small_and_nothing_else_runs_when_drift_is_float_noise():
    n = 1000
    desktop = _logits(n, seed=4)
    emu = Emulator(_device(desktop, np.full(n, 1e-7)))
    _, summ = screening.run(desktop, emu, ScreeningSettings(probe=32, probe_fp32=4), "fp32")
    assert summ["n_probe"] == 4 and summ["bound"]["drift_bound"] == screening.DRIFT_FLOOR
    assert summ["n_emulated"] == 4 + int(np.sum(screening.margins(desktop) <= 2 * screening.DRIFT_FLOOR))
    assert "floor" in summ["bound"]["assumption"]


def test_method_all_emulates_everything():
    desktop = _logits(50, seed=5)
    emu = Emulator(_device(desktop, np.full(50, 0.01)))
    logits, summ = screening.run(desktop, emu, ScreeningSettings(method="all"), "int8-dynamic")
    assert summ["n_emulated"] == 50 and summ["n_carried_over"] == 0 and "bound" not in summ
    np.testing.assert_array_equal(logits, emu.device)


def test_probe_is_fixed_and_uniform():
    a, b = screening.probe_indices(1000, 32), screening.probe_indices(1000, 32)
    np.testing.assert_array_equal(a, b)
    assert len(set(a)) == 32 and a.min() >= 0 and a.max() < 1000
    assert 200 < np.mean(a) < 800  # not the first 32
    assert len(screening.probe_indices(10, 32)) == 10
