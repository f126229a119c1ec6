"""Reference implementations the tests hold the C++ detectors to.

* :func:`rolling_zscores` - vectorised NumPy two-pass over each window (float64, pairwise
  summation); the speed baseline in benchmarks/detector.py and a parity oracle.
* :func:`exact_zscore` - one z-score in exact rational arithmetic (``fractions``); the
  oracle for exactness (only the final square root is rounded).
* :class:`ReferenceBank` - the DetectorBank's semantics (metrics, buckets, cool-down,
  rejections, time-bucketed returns, log-volume of active buckets, the minimum-activity
  gate, per-symbol thresholds, the drift over >= drift_buckets return buckets, the Poisson
  rate tail of sparse symbols) as a plain Python loop over ticks, for parity tests.
* :func:`adversarial_walk` and :func:`naive_sumsq_zscores` - the series on which exactness
  is judged, and the textbook method that fails on it (for contrast).

Conventions match tripwire.detect: z against the window before the value, NaN below
``min_periods`` (at least ``ddof + 1``), 0 for zero variance, invalid inputs skipped.
A metric trips when its z (|z| when two-sided) is >= its threshold, z being the one
:class:`_Window` computes here (shift by the newest value, ``math.fsum`` means and squares):
the native bank's fast z is certified within ~1e-9, and where it falls within 1e-6 of a
threshold the bank recomputes this same z operation for operation (``ExactSum`` in
rolling.hpp is ``math.fsum``'s algorithm), so exact ties are decided alike on both sides.

>>> import numpy as np
>>> rolling_zscores(np.array([1.0, 2.0, 3.0, 10.0]), window=3, min_periods=2).round(3)
array([  nan,   nan, 2.121, 8.   ])
>>> round(exact_zscore([1.0, 2.0, 3.0], 10.0), 12)
8.0
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from fractions import Fraction

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tripwire.detect.config import DetectorConfig
from tripwire.model import Metric, RejectReason


def _effective_min_periods(window: int, min_periods: int | None, ddof: int) -> int:
    mp = window if min_periods is None else min_periods
    return max(mp, ddof + 1)


def rolling_zscores(
    values: np.ndarray,
    window: int,
    min_periods: int | None = None,
    ddof: int = 1,
    positive_only: bool = False,
    chunk: int = 1 << 16,
) -> np.ndarray:
    """z of each value against the (up to) ``window`` valid values before it."""
    x = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(x) & ((x > 0) if positive_only else True)
    v = x[valid]
    zv = np.full(len(v), np.nan)
    mp = _effective_min_periods(window, min_periods, ddof)
    # Growing phase: windows shorter than `window`.
    for i in range(min(len(v), window)):
        if i >= mp:
            zv[i] = _two_pass_z(v[:i], v[i], ddof)
    # Full windows, vectorised in chunks (memory: chunk * window doubles).
    if len(v) > window and window >= mp:
        views = sliding_window_view(v[:-1], window)  # views[k] = v[k : k + window]
        for start in range(0, len(views), chunk):
            # Shift each window by its newest value: near-equal doubles subtract exactly
            # (Sterbenz), so prices near 1e5 keep their small differences intact.
            w = views[start : start + chunk]
            shift = w[:, -1:]
            w = w - shift
            mean = w.mean(axis=1)
            m2 = np.square(w - mean[:, None]).sum(axis=1)
            sd = np.sqrt(m2 / (window - ddof))
            target = v[window + start : window + start + len(w)] - shift[:, 0]
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(sd > 0, (target - mean) / sd, 0.0)
            zv[window + start : window + start + len(w)] = z
    out = np.full(len(x), np.nan)
    out[valid] = zv
    return out


def adversarial_walk(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random walk from 1e5 with steps of +-1e-4 (summed sequentially in float64)."""
    steps = rng.choice(np.array([-1e-4, 1e-4]), size=n - 1)
    return np.cumsum(np.concatenate([[1e5], steps]))


def naive_sumsq_zscores(x: np.ndarray, window: int, idx: np.ndarray) -> np.ndarray:
    """Textbook z at ``idx`` from window sums of x and x*x (what the detectors must NOT do).

    NaN where the cancelled variance comes out <= 0.
    """
    s1 = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])
    s = s1[idx] - s1[idx - window]
    ss = s2[idx] - s2[idx - window]
    var = (ss - s * s / window) / (window - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, (x[idx] - s / window) / np.sqrt(var), np.nan)


def _two_pass_z(w: np.ndarray, x: float, ddof: int) -> float:
    shift = w[-1]
    w, x = w - shift, x - shift
    mean = w.mean()
    m2 = float(np.square(w - mean).sum())
    sd = math.sqrt(m2 / (len(w) - ddof))
    return 0.0 if sd == 0 else float((x - mean) / sd)


def exact_zscore(window_values: Iterable[float], x: float, ddof: int = 1) -> float:
    """z of x against the window in exact rational arithmetic; only the sqrt is rounded."""
    w = [Fraction(v) for v in window_values]
    n = len(w)
    if n <= ddof:
        return math.nan
    mean = sum(w, Fraction(0)) / n
    m2 = sum(((v - mean) ** 2 for v in w), Fraction(0))
    if m2 == 0:
        return 0.0
    var = m2 / (n - ddof)
    dev = Fraction(x) - mean
    # z = dev / sqrt(var) = sign(dev) * sqrt(dev^2 / var), one rounding in the ratio.
    ratio = dev * dev / var
    return math.copysign(math.sqrt(ratio), dev)


class _Window:
    def __init__(self, window: int, min_periods: int, ddof: int) -> None:
        self.values: deque[float] = deque(maxlen=window)
        self.min_periods = max(min_periods, ddof + 1)
        self.ddof = ddof

    def score(self, x: float) -> tuple[float, float, float]:
        """(z, mean, std) of x against the window, two-pass in float64."""
        n = len(self.values)
        if n < self.min_periods:
            return math.nan, (math.fsum(self.values) / n if n else math.nan), math.nan
        w = np.fromiter(self.values, dtype=np.float64, count=n)
        shift = w[-1]
        w = w - shift
        mean = math.fsum(w) / n
        sd = math.sqrt(math.fsum(np.square(w - mean)) / (n - self.ddof))
        return (0.0 if sd == 0 else ((x - shift) - mean) / sd), mean + shift, sd

    def push(self, x: float) -> None:
        self.values.append(x)


def _scale(span_ns: int, bucket_ns: int) -> float:
    """1 / sqrt(buckets spanned), as the native bank computes it."""
    return 1.0 / math.sqrt(float(span_ns // bucket_ns))


def poisson_tail(n: int, mu: float) -> float:
    """P(N >= n) for N ~ Poisson(mu), summed from the n-th term up (the bank's arithmetic).

    >>> round(poisson_tail(2, 0.5), 6)  # 1 - e^-0.5 (1 + 0.5)
    0.090204
    """
    if n == 0:
        return 1.0
    t = math.exp(-mu)
    for j in range(1, n + 1):
        t = t * mu / j
    total = t
    for j in range(n + 1, n + 200):
        t = t * mu / j
        total = total + t
        if t < total * 1e-17:
            break
    return total


class ReferenceBank:
    """The DetectorBank's semantics in plain Python (slow; for tests)."""

    def __init__(self, config: DetectorConfig, n_symbols: int) -> None:
        self.config = config
        self.n_symbols = n_symbols
        ms = config.metrics
        self.windows = [
            [_Window(m.window, m.effective_min_periods, config.ddof) for m in ms]
            for _ in range(n_symbols)
        ]
        self.prev_price: list[float | None] = [None] * n_symbols
        self.last_ts = [None] * n_symbols
        self.bucket: list[tuple[int, float] | None] = [None] * n_symbols
        self.bucket_trades = [0] * n_symbols
        # Return buckets: (running start, running close) and (reference start, close).
        self.rbucket: list[tuple[int, float] | None] = [None] * n_symbols
        self.rref: list[tuple[int, float] | None] = [None] * n_symbols
        self.thresholds = [[m.threshold for m in ms] for _ in range(n_symbols)]
        self.rk_ewma = [0.0] * n_symbols  # buckets spanned per pushed return (EWMA)
        # Drift: completed return buckets (start, close), oldest first.
        self.drift: list[deque[tuple[int, float]]] = [deque() for _ in range(n_symbols)]
        # Rate: EWMA of trades per volume bucket and its bias correction.
        self.rate_ewma = [0.0] * n_symbols
        self.rate_weight = [0.0] * n_symbols
        self.drift_trips = 0
        self.rate_trips = 0
        self.rthr_scale = [1.0] * n_symbols
        self.gated = 0
        self.cooldown_until = [-(1 << 63)] * n_symbols
        self.recent = [deque(maxlen=config.snapshot_len) for _ in range(n_symbols)]
        self.suppressed = 0

    def set_thresholds(self, s: int, thresholds: list[float]) -> None:
        self.thresholds[s] = [float(t) for t in thresholds]

    def _trips(self, s: int, m: int, z: float) -> bool:
        c = self.config.metrics[m]
        if math.isnan(z):
            return False
        scale = self.rthr_scale[s] if m == Metric.RETURN else 1.0
        return (abs(z) if c.two_sided else z) >= self.thresholds[s][m] * scale

    def _return_bucketed(self, s: int, ts: int, p: float):
        """(value, (z, mean, std)): the running bucket's move from the reference close;
        z of the move over sqrt(buckets between them), against completed buckets."""
        b = self.config.return_bucket_ns
        w = self.windows[s][Metric.RETURN]
        start = ts - ts % b
        run, ref = self.rbucket[s], self.rref[s]
        if run is not None and start > run[0]:
            if ref is not None:
                w.push(math.log(run[1] / ref[1]) * _scale(run[0] - ref[0], b))
                e = self.config.return_activity_exponent
                if e > 0:
                    k = float((run[0] - ref[0]) // b)
                    ew = self.rk_ewma[s]
                    ew = k if ew == 0.0 else ew + (k - ew) * (1.0 / 64.0)
                    self.rk_ewma[s] = ew
                    self.rthr_scale[s] = min(ew ** -e, 1.0)
            ref = self.rref[s] = run
            self.drift[s].append(run)
        self.rbucket[s] = (start, p)
        if ref is None:
            return math.nan, (math.nan, math.nan, math.nan)
        r = math.log(p / ref[1])
        return r, w.score(r * _scale(start - ref[0], b))

    def _volume(self, s: int, ts: int, qty: float) -> tuple[float, tuple[float, float, float]]:
        w = self.windows[s][Metric.VOLUME]
        b = self.config.volume_bucket_ns
        if b == 0:
            scored = w.score(qty)
            w.push(qty)
            return qty, scored
        start = ts - ts % b
        cur = self.bucket[s]
        stat = self.config.volume_statistic
        log_active = stat != "sum"

        def level(bucket: tuple[int, float]) -> float:
            return float(self.bucket_trades[s]) if stat == "log_count" else bucket[1]

        if cur is None:
            cur = (start, 0.0)
            self.bucket_trades[s] = 0
        elif start > cur[0]:
            if not log_active:
                w.push(cur[1])
                empty = (start - cur[0]) // b - 1
                for _ in range(min(empty, self.config.volume.window)):
                    w.push(0.0)
            else:
                if level(cur) > 0:
                    w.push(math.log(level(cur)))  # empty buckets are not data
                if self.config.effective_rate_p > 0:
                    self._rate_close(s, (start - cur[0]) // b - 1)
            cur = (start, 0.0)
            self.bucket_trades[s] = 0
        cur = (cur[0], cur[1] + qty)
        self.bucket_trades[s] += 1
        self.bucket[s] = cur
        if not log_active:
            return cur[1], w.score(cur[1])
        v = level(cur)
        if not v > 0:
            return v, (math.nan, math.nan, math.nan)
        z, mean, sd = w.score(math.log(v))
        return v, (z, math.exp(mean), sd)

    def _drift(self, s: int, p: float) -> tuple[float, float, float, float] | None:
        """(z, mean, std, value) of the move since the newest completed bucket at least
        drift_buckets before the running one; None without one (or while warming up)."""
        c = self.config
        b, run = c.return_bucket_ns, self.rbucket[s]
        cutoff = run[0] - c.drift_buckets * b
        d = self.drift[s]
        while len(d) >= 2 and d[1][0] <= cutoff:
            d.popleft()  # the cutoff only moves forward: older references never return
        if not d or d[0][0] > cutoff:
            return None
        ref = d[0]
        z0, mean, sd = self.windows[s][Metric.RETURN].score(0.0)
        if math.isnan(z0):
            return None
        k = float((run[0] - ref[0]) // b)
        r = math.log(p / ref[1])
        z = 0.0 if sd == 0.0 else (r - k * mean) / (sd * math.sqrt(k))
        return z, k * mean, sd * math.sqrt(k), r

    def _drift_threshold(self, s: int) -> float:
        c = self.config
        return c.drift_threshold * (self.thresholds[s][Metric.RETURN] / c.returns.threshold)

    def _rate_close(self, s: int, empty: int) -> None:
        a = 1.0 / self.config.rate_window
        c = float(self.bucket_trades[s])
        ew = self.rate_ewma[s] + (c - self.rate_ewma[s]) * a
        wt = self.rate_weight[s] + (1.0 - self.rate_weight[s]) * a
        if empty > 0:
            q = (1.0 - a) ** float(empty)
            ew = ew * q
            wt = 1.0 - (1.0 - wt) * q
        self.rate_ewma[s], self.rate_weight[s] = ew, wt

    def _rate(self, s: int) -> tuple[float, float, float, float] | None:
        """(z, mu, sqrt(mu), n) when the running bucket's count is a rate trip, else None."""
        c = self.config
        if not self.rate_weight[s] >= 0.5:
            return None
        mu = self.rate_ewma[s] / self.rate_weight[s]
        n = self.bucket_trades[s]
        if not (0.0 < mu <= 4.0) or n < c.rate_min_trades:
            return None
        if poisson_tail(min(n, 64), mu) > c.rate_p:
            return None
        sd = math.sqrt(mu)
        return (n - mu) / sd, mu, sd, float(n)

    def push_batch(self, symbol_ids, ts_ns, price, qty):
        """Returns (trips as a list of tuples, rejections as a list of (row, reason))."""
        trips, rejected = [], []
        for row, (s, ts, p, q) in enumerate(zip(symbol_ids, ts_ns, price, qty, strict=True)):
            s, ts, p, q = int(s), int(ts), float(p), float(q)
            if not (math.isfinite(p) and p > 0):
                rejected.append((row, RejectReason.BAD_PRICE))
                continue
            if not (math.isfinite(q) and q >= 0):
                rejected.append((row, RejectReason.BAD_QTY))
                continue
            if self.last_ts[s] is not None and ts < self.last_ts[s]:
                rejected.append((row, RejectReason.OUT_OF_ORDER))
                continue
            self.last_ts[s] = ts
            scored: dict[int, tuple[float, float, float, float]] = {}
            c = self.config
            if c.returns.enabled and c.return_bucket_ns > 0:
                r, sc = self._return_bucketed(s, ts, p)
                scored[Metric.RETURN] = (*sc, r)
            elif c.returns.enabled and self.prev_price[s] is not None:
                r = math.log(p / self.prev_price[s])
                w = self.windows[s][Metric.RETURN]
                scored[Metric.RETURN] = (*w.score(r), r)
                w.push(r)
            self.prev_price[s] = p
            if c.volume.enabled:
                value, sc = self._volume(s, ts, q)
                scored[Metric.VOLUME] = (*sc, value)
            if c.price.enabled:
                w = self.windows[s][Metric.PRICE]
                scored[Metric.PRICE] = (*w.score(p), p)
                w.push(p)
            self.recent[s].append((ts, p, q))
            if c.volume_bucket_ns == 0:  # no buckets: the gate does not apply
                self.bucket_trades[s] = c.min_bucket_trades
            vol = scored.get(Metric.VOLUME)
            if vol and self._trips(s, Metric.VOLUME, vol[0]) and (
                self.bucket_trades[s] < c.min_bucket_trades
            ):
                self.gated += 1
                scored[Metric.VOLUME] = (math.nan, *vol[1:])
            hits = [m for m, v in scored.items() if self._trips(s, m, v[0])]
            by_drift = by_rate = False
            if (c.effective_drift_buckets and c.returns.enabled and Metric.RETURN not in hits
                    and self.rref[s] is not None):
                d = self._drift(s, p)
                if d is not None and abs(d[0]) >= self._drift_threshold(s):
                    scored[Metric.RETURN] = d
                    hits.append(Metric.RETURN)
                    by_drift = True
            if c.effective_rate_p > 0 and c.volume.enabled and Metric.VOLUME not in hits:
                r = self._rate(s)
                if r is not None:
                    scored[Metric.VOLUME] = r
                    hits.append(Metric.VOLUME)
                    by_rate = True
            if not hits:
                continue
            self.drift[s].clear()  # a move already alarmed on is not news again
            if ts < self.cooldown_until[s]:
                self.suppressed += 1
                continue
            self.cooldown_until[s] = ts + c.cooldown_ns
            self.drift_trips += by_drift
            self.rate_trips += by_rate
            for m in sorted(hits):
                z, mean, sd, value = scored[m]
                trips.append((row, ts, s, int(m), z, mean, sd, value))
        return trips, rejected
