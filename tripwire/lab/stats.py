"""Error bars over seeds: a bootstrap confidence interval and a paired test.

Both are deterministic (a fixed generator seed), so a report is reproducible bit for bit.

* :func:`bootstrap_ci`: the percentile bootstrap of a statistic (the mean by default) over
  the per-seed values, ``n_boot`` resamples, a ``level`` interval;
* :func:`paired_test`: policy vs baseline over the *same* seeds: the mean of the per-seed
  differences, its bootstrap interval, and a two-sided sign-flip (randomisation) p-value --
  under "no difference" each seed's difference is as likely positive as negative. Exact
  (all 2^n sign patterns) up to :data:`EXACT_MAX_N` seeds, else :data:`N_FLIPS` random ones.
  It needs no normality and no scipy; with fewer than 6 seeds no p-value can reach 0.05,
  and the result says so (``underpowered``).

>>> ci = bootstrap_ci([1.0, 2.0, 3.0, 4.0])
>>> ci.mean, ci.lo <= 2.5 <= ci.hi, ci.n
(2.5, True, 4)
>>> t = paired_test([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0.0] * 6)
>>> t.mean_diff, round(t.p_value, 4), t.verdict
(3.5, 0.0312, 'better')
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

N_BOOT = 2_000
LEVEL = 0.95
EXACT_MAX_N = 16
N_FLIPS = 20_000
SEED = 20_260_105  # the lab's fixed resampling seed
ALPHA = 0.05


@dataclass(frozen=True, slots=True)
class CI:
    """A statistic over seeds with its bootstrap interval (NaN bounds with < 2 values)."""

    mean: float
    lo: float
    hi: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {k: _clean(v) for k, v in asdict(self).items()}

    def text(self, fmt: str = "{:.4g}") -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "n/a"
        if self.n < 2 or math.isnan(self.lo):
            return fmt.format(self.mean)
        return f"{fmt.format(self.mean)} [{fmt.format(self.lo)}, {fmt.format(self.hi)}]"


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def bootstrap_ci(values: Sequence[float], *, stat: Callable[[np.ndarray], float] = np.mean,
                 n_boot: int = N_BOOT, level: float = LEVEL, seed: int = SEED) -> CI:
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return CI(math.nan, math.nan, math.nan, 0)
    m = float(stat(x))
    if n < 2:
        return CI(m, math.nan, math.nan, n)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = np.apply_along_axis(stat, 1, x[idx]) if stat is not np.mean else x[idx].mean(1)
    a = (1 - level) / 2
    lo, hi = np.quantile(boots, [a, 1 - a])
    return CI(m, float(lo), float(hi), n)


@dataclass(frozen=True, slots=True)
class PairedTest:
    """Policy minus baseline over the same seeds."""

    mean_diff: float
    lo: float
    hi: float
    p_value: float
    n: int
    verdict: str  # "better" | "worse" | "no significant difference" | "underpowered" | "n/a"

    def to_dict(self) -> dict[str, Any]:
        return {k: _clean(v) for k, v in asdict(self).items()}


def sign_flip_p(d: np.ndarray, *, seed: int = SEED) -> float:
    """Two-sided p-value of mean(d) under random signs (exact up to EXACT_MAX_N)."""
    n = len(d)
    obs = abs(d.mean())
    if n <= EXACT_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(N_FLIPS, n))
    means = np.abs((signs * d).mean(1))
    return float((means >= obs - 1e-12 * max(1.0, obs)).mean())


def paired_test(policy: Sequence[float], baseline: Sequence[float], *,
                alpha: float = ALPHA, seed: int = SEED) -> PairedTest:
    if len(policy) != len(baseline):
        raise ValueError(f"paired test: {len(policy)} policy values vs {len(baseline)} "
                         "baseline values (they must be the same seeds)")
    pairs = [(a, b) for a, b in zip(policy, baseline, strict=True)
             if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    d = np.asarray([a - b for a, b in pairs], dtype=float)
    n = len(d)
    if n == 0:
        return PairedTest(math.nan, math.nan, math.nan, math.nan, 0, "n/a")
    ci = bootstrap_ci(d, seed=seed)
    if n < 2 or not d.any():
        p = 1.0
    else:
        p = sign_flip_p(d, seed=seed)
    if 2.0 ** (1 - n) > alpha:  # the smallest p-value n seeds can give
        verdict = "underpowered"
    elif p < alpha:
        verdict = "better" if d.mean() > 0 else "worse"
    else:
        verdict = "no significant difference"
    return PairedTest(float(d.mean()), ci.lo, ci.hi, p, n, verdict)
