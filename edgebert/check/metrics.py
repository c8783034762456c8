"""Numbers computed from the worker's logits and timings (pure numpy; what they mean is in docstrings)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import stats


def accuracy(logits: np.ndarray, labels: Sequence[int]) -> float:
    """Fraction of examples whose argmax class equals the label."""
    labels = np.asarray(labels)
    return float(np.mean(np.argmax(logits, axis=1) == labels)) if len(labels) else float("nan")


def agreement(logits: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of examples whose argmax class equals the reference's (fp32 of the same format)."""
    if len(logits) == 0:
        return float("nan")
    return float(np.mean(np.argmax(logits, axis=1) == np.argmax(reference, axis=1)))


def max_abs_diff(logits: np.ndarray, reference: np.ndarray) -> float:
    """Largest absolute difference of any logit from the reference's."""
    if logits.size == 0:
        return 0.0
    return float(np.max(np.abs(logits.astype(np.float64) - reference.astype(np.float64))))


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50 (median) and p90 (numpy's linear-interpolation percentile), mean, min, max; in ms."""
    a = np.asarray(samples_ms, dtype=np.float64)
    return {
        "p50": round(float(np.percentile(a, 50)), 4),
        "p90": round(float(np.percentile(a, 90)), 4),
        "mean": round(float(a.mean()), 4),
        "min": round(float(a.min()), 4),
        "max": round(float(a.max()), 4),
    }


def accuracy_fields(logits: np.ndarray, labels: np.ndarray, method: str) -> dict[str, Any]:
    """accuracy, its 95% Wilson interval over n, and how it was obtained."""
    correct = int(np.sum(np.argmax(logits, axis=1) == labels)) if len(labels) else 0
    lo, hi = stats.wilson(correct, len(labels))
    return {"accuracy": round(correct / len(labels), 6) if len(labels) else None,
            "accuracy_ci95": [round(lo, 6), round(hi, 6)] if len(labels) else None,
            "accuracy_correct": correct, "accuracy_method": method}
