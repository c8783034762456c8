"""Uncertainty of counted rates: Wilson score intervals and exact (Clopper-Pearson) upper bounds.

Every accuracy and rate edgebert reports carries its n and a 95% interval computed here. Pure Python
(no scipy), so it is cheap to import and easy to test against published values.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (95% by default); (nan, nan) when n == 0.

    Chosen over the normal approximation because it stays inside [0, 1] and behaves at k = 0 or
    k = n, which is exactly where small emulated samples live (4/4 correct is not "100%").
    """
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= k <= n:
        raise ValueError(f"k={k} outside 0..n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P[X <= k] for X ~ Binomial(n, p), summed in log space (stable for n in the thousands)."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
             for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided exact (Clopper-Pearson) upper confidence bound on a rate after k events in n trials.

    The p with P[X <= k | p] = 1 - confidence, found by bisection. For k = 0 it is
    1 - (1 - confidence)^(1/n) (about 3/n: the "rule of three").
    """
    if n <= 0:
        return math.nan
    if not 0 <= k <= n:
        raise ValueError(f"k={k} outside 0..n={n}")
    if k == n:
        return 1.0
    alpha = 1 - confidence
    lo, hi = k / n, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if _binom_cdf(k, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def rate(k: int, n: int) -> dict:
    """``{"k", "n", "rate", "ci95": [lo, hi]}``: a counted rate with its Wilson interval (JSON-ready)."""
    lo, hi = wilson(k, n)
    return {"k": int(k), "n": int(n), "rate": (k / n) if n else None,
            "ci95": [round(lo, 6), round(hi, 6)] if n else None}
