"""What the detectors score for a symbol whose price is a probability (a prediction market).

A Polymarket outcome token trades in [0, 1]. Its log-return is not a useful move: 0.01 ->
0.02 and 0.30 -> 0.60 are both +69 %, and the YES and NO tokens of one market (p and 1 - p)
give very different log-returns for the same news. What carries information is the change
of **log-odds**, ``logit(p) = log(p / (1 - p))``: symmetric between YES and NO, small for a
drift near certainty, large for a re-pricing in the middle.

The detector bank scores the log-return of what it is given, so a probability symbol is fed
its **odds** ``p / (1 - p)`` (with ``p`` clipped to ``[eps, 1 - eps]``): the log-return of the
odds is exactly the change of log-odds, and odds stay positive and finite (the bank refuses
prices <= 0). For such symbols the price-LEVEL metric is switched off (a z-score of odds
levels means nothing; a jump in the level already shows as a log-odds change), volume is
scored as for any symbol. These are pure functions: the venue, the broker and the snapshot
shown to the analyst keep the real prices (:func:`from_scored` maps a scored value back).

>>> import numpy as np
>>> p = np.array([0.01, 0.02, 0.30, 0.60])
>>> o = to_scored(p, np.ones(4, dtype=bool))
>>> [round(float(x), 3) for x in np.diff(np.log(o))[[0, 2]]]  # 0.01->0.02, 0.30->0.60
[0.703, 1.253]
>>> bool(np.allclose(from_scored(o, np.ones(4, dtype=bool)), p))
True
"""

from __future__ import annotations

import numpy as np

# 1e-4 bounds the odds to [1e-4, 1e4]: a trade at 0.9999 or above scores as 0.9999. Prices
# of a CLOB with a 0.001 tick never get closer to 0 or 1 than that.
EPS = 1e-4


def logit(p: np.ndarray | float, eps: float = EPS) -> np.ndarray:
    """Log-odds of ``p`` clipped to ``[eps, 1 - eps]``."""
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(q / (1.0 - q))


def to_scored(price: np.ndarray, probability: np.ndarray, eps: float = EPS) -> np.ndarray:
    """The prices the detectors score: the odds of the rows flagged ``probability`` (a bool
    array, one per row), the price itself elsewhere. A new array; ``price`` is not changed."""
    if not probability.any():
        return price
    q = np.clip(price, eps, 1.0 - eps)
    return np.where(probability, q / (1.0 - q), price)


def from_scored(scored: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_scored` (clipped prices come back as the clip bound)."""
    if not probability.any():
        return scored
    return np.where(probability, scored / (1.0 + scored), scored)
