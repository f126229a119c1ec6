"""Series and oracles shared by the detector tests."""

from __future__ import annotations

import math

import numpy as np

from tripwire.detect import reference
from tripwire.detect.reference import exact_zscore


def adversarial_walk(n: int, seed: int = 7) -> np.ndarray:
    """Random walk around 1e5 moving by 1e-4: the naive sum/sum-of-squares update fails here."""
    return reference.adversarial_walk(n, np.random.default_rng(seed))


def sample_indices(n: int, window: int, k: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.integers(window, n, k)
    return np.unique(np.concatenate([idx, [n - 1, window]]))


def max_error_vs_exact(x: np.ndarray, z: np.ndarray, window: int, idx: np.ndarray, ddof=1) -> float:
    return max(abs(z[i] - exact_zscore(x[i - window : i], x[i], ddof)) for i in idx)


def fsum_zscore(w: np.ndarray, x: float, ddof: int = 1) -> float:
    """Near-exact z for large windows (correctly rounded sums), faster than fractions."""
    n = len(w)
    mean = math.fsum(w) / n
    m2 = math.fsum(np.square(w - mean)) - math.fsum(w - mean) ** 2 / n
    sd = math.sqrt(m2 / (n - ddof))
    return 0.0 if sd == 0 else (x - mean) / sd


def quiet_poisson_symbol(
    days: float, mean_gap_s: float, nu: float, seed: int, daily_vol: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One sparse symbol with nothing happening: Poisson trades, Student-t(nu) log-steps
    scaled by sqrt(gap) (variance grows with time), lognormal sizes. Columns for
    ``DetectorBank.push_batch`` (symbol 0)."""
    rng = np.random.default_rng(seed)
    n = int(days * 86_400 / mean_gap_s * 1.2) + 10
    gaps = rng.exponential(mean_gap_s, n)
    t = np.cumsum(gaps)
    keep = t < days * 86_400
    t, gaps = t[keep], gaps[keep]
    unit = rng.standard_t(nu, len(t)) / math.sqrt(nu / (nu - 2))  # unit variance
    step = daily_vol * np.sqrt(gaps / 86_400) * unit
    price = 50.0 * np.exp(np.cumsum(step))
    ts = (t * 1e9).astype(np.int64)
    return np.zeros(len(t), np.int32), ts, price, rng.lognormal(0.0, 1.0, len(t))
