"""Bootstrap 95% confidence intervals over episodes (Efron & Tibshirani 1993, percentile method).

Episodes are the independent unit: a rollout's horizon steps are correlated, so resampling is always of whole
episodes, and every per-step curve, mean and ratio is recomputed on the same resampled episodes. Resampling is
seeded (`seed`, default 0) and uses `N_RESAMPLES` = 2000 draws, so figures are reproducible. NaN entries (a step
where no object could be measured, a frame without moving pixels) are left out of each mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A statistic with its bootstrap interval. Arrays for per-step curves, floats for summaries."""

    value: np.ndarray | float
    low: np.ndarray | float
    high: np.ndarray | float
    n: int  # episodes

    def to_json(self) -> dict:
        def j(x):
            x = np.asarray(x, dtype=np.float64)
            return None if x.ndim == 0 and not np.isfinite(x) else (
                float(x) if x.ndim == 0 else [None if not np.isfinite(v) else float(v) for v in x])

        return {"value": j(self.value), "ci95": [j(self.low), j(self.high)], "n": self.n}


def _indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def nanmean(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mean ignoring NaN; NaN (without a warning) where every entry is NaN."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    n = ok.sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(ok, x, 0.0).sum(axis) / np.maximum(n, 1), np.nan)


def bootstrap_mean(values: np.ndarray, *, n_resamples: int = N_RESAMPLES, level: float = LEVEL,
                   seed: int = 0) -> Estimate:
    """Mean over episodes (axis 0) with a percentile interval; `values` is (N,) or (N, steps)."""
    v = np.asarray(values, dtype=np.float64)
    idx = _indices(len(v), n_resamples, seed)
    boots = nanmean(v[idx], axis=1)  # (R, ...) one mean per resample
    return _estimate(nanmean(v, 0), boots, level, len(v))


def bootstrap(statistic: Callable[..., float | np.ndarray], *arrays: np.ndarray, n_resamples: int = N_RESAMPLES,
              level: float = LEVEL, seed: int = 0) -> Estimate:
    """Any statistic of several per-episode arrays (all of length N), resampling episodes jointly (paired)."""
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("all arrays must have one entry per episode")
    idx = _indices(n, n_resamples, seed)
    boots = np.array([statistic(*(a[i] for a in arrays)) for i in idx], dtype=np.float64)
    return _estimate(np.asarray(statistic(*arrays), dtype=np.float64), boots, level, n)


def _estimate(value, boots, level, n) -> Estimate:
    alpha = (1 - level) / 2
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(boots)
        lo = np.full(np.shape(value), np.nan)
        hi = np.full(np.shape(value), np.nan)
        if boots.ndim == 1:
            if ok.any():
                lo, hi = np.quantile(boots[ok], [alpha, 1 - alpha])
        else:
            for j in range(boots.shape[1]):
                col = boots[:, j][ok[:, j]]
                if col.size:
                    lo[j], hi[j] = np.quantile(col, [alpha, 1 - alpha])
    if np.ndim(value) == 0:
        return Estimate(float(value), float(lo), float(hi), n)
    return Estimate(value, lo, hi, n)
