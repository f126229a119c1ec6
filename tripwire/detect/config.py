"""Detector configuration: one window, threshold and warm-up per metric, plus cool-down.

Validated at construction; a bad value raises ValueError naming the key, e.g.
``detector.volume.window must be an integer >= 1, got 0``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tripwire.model import NS_PER_SECOND

MAX_WINDOW = 10_000_000
VOLUME_STATISTICS = ("sum", "log_active", "log_count")  # native codes 0, 1, 2
RETURN_BUCKET_NS = 10 * NS_PER_SECOND
MIN_BUCKET_TRADES = 5
RETURN_ACTIVITY_EXPONENT = 0.15  # native codes 1, 0 (see detector_bank.hpp)
# Drift over >= 30 return buckets (5 min) at |z| 7.5; rate tail 1e-5 over a 2 h EWMA (240
# volume buckets of 30 s), from 3 trades: measured on the realistic market over 4 days (all
# four regimes) at nu 3, 4 and 10 (see tripwire detect-eval and the README).
DRIFT_BUCKETS = 30
DRIFT_THRESHOLD = 7.5
RATE_P = 1e-5
RATE_WINDOW = 240
RATE_MIN_TRADES = 3


def _fail(key: str, rule: str, value: Any) -> None:
    raise ValueError(f"{key} must be {rule}, got {value!r}")


def _check_int(key: str, value: Any, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (
        hi is not None and value > hi
    ):
        rule = f"an integer >= {lo}" + (f" and <= {hi}" if hi is not None else "")
        _fail(key, rule, value)


@dataclass(frozen=True, slots=True)
class MetricConfig:
    """One metric's detector.

    window       values in the rolling window (memory: 8 bytes each per symbol)
    threshold    |z| (or z, when one-sided) at or above which the metric trips
    min_periods  values needed before z is defined (None: the full window)
    two_sided    trip on large negative z too (returns, price); volume is one-sided
    enabled      compute this metric at all
    """

    window: int = 1000
    threshold: float = 6.0  # generic; each metric of DetectorConfig has a calibrated default
    min_periods: int | None = None
    two_sided: bool = True
    enabled: bool = True

    def validate(self, key: str) -> None:
        _check_int(f"{key}.window", self.window, 1, MAX_WINDOW)
        if self.min_periods is not None:
            _check_int(f"{key}.min_periods", self.min_periods, 1, self.window)
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float) or not (
            0 < self.threshold < float("inf")
        ):
            _fail(f"{key}.threshold", "a finite number > 0", self.threshold)
        for name in ("two_sided", "enabled"):
            if not isinstance(getattr(self, name), bool):
                _fail(f"{key}.{name}", "true or false", getattr(self, name))

    @property
    def effective_min_periods(self) -> int:
        return self.window if self.min_periods is None else self.min_periods


# The defaults hold <= 1 false trip per symbol-day on the realistic market
# (tripwire.feeds.realistic: 50 trades/s down to one per 10 minutes, Student-t(3..10)
# innovations, GARCH volatility, bid-ask bounce, Pareto trade sizes); measured with
# `python -m benchmarks.detector` and `tripwire detect-eval`. The figures behind each
# choice are in the README's detector section.


def _returns_default() -> MetricConfig:
    # Time-bucketed returns (RETURN_BUCKET_NS): tests per day are bounded by buckets, and a
    # bucket sums many Student-t steps. 1000 buckets (2.8 h on a liquid symbol, a week of
    # trades on one that trades every 10 minutes); 50 to start, so a sparse symbol is
    # watched after hours, not days. Under Student-t(3) a 0.5-trade/s symbol still crosses
    # |z| = 12 ~0.75 times a day (single 50-sd innovations); 13 leaves room for the others.
    return MetricConfig(window=1000, min_periods=50, threshold=13.0)


def _volume_default() -> MetricConfig:
    # log(trades per 30 s bucket) against the buckets that had trades: counts are not
    # heavy-tailed the way Pareto(1.6) trade sizes make quantity sums (a single trade can be
    # 1000x the median), and empty buckets are not data (zeros made sparse symbols trip on
    # nearly every trade). 300 active buckets, 30 to start.
    return MetricConfig(window=300, min_periods=30, threshold=11.0, two_sided=False)


def _price_default() -> MetricConfig:
    # The level against the last 1000 trades: a fat finger on a liquid symbol. |z| = 8
    # crossed ~4 times a day on a 50/s Student-t(3) symbol; 12 none in 4 symbol-days.
    return MetricConfig(window=1000, min_periods=50, threshold=20.0)


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """All detectors of a bank.

    >>> cfg = DetectorConfig.from_dict({"returns": {"window": 200}, "cooldown_s": 30})
    >>> cfg.returns.window, cfg.cooldown_ns
    (200, 30000000000)
    >>> DetectorConfig.from_dict({"price": {"window": 0}})
    Traceback (most recent call last):
    ...
    ValueError: detector.price.window must be an integer >= 1 and <= 10000000, got 0
    """

    returns: MetricConfig = field(default_factory=_returns_default)
    volume: MetricConfig = field(default_factory=_volume_default)
    price: MetricConfig = field(default_factory=_price_default)
    # 0: score each trade's quantity (hopeless with lognormal sizes); else sum per bucket.
    volume_bucket_ns: int = 30 * NS_PER_SECOND
    cooldown_ns: int = 60 * NS_PER_SECOND
    snapshot_len: int = 256  # recent ticks kept per symbol for escalation
    ddof: int = 1  # 1: sample std, 0: population std
    # 0: trade-to-trade returns; else the running bucket's move from the last completed
    # bucket's close, over sqrt(buckets between them) (see detector_bank.hpp for why).
    return_bucket_ns: int = RETURN_BUCKET_NS
    # "log_count": log(trades in the bucket) against buckets that had trades (default);
    # "log_active": log of the bucket's quantity sum, likewise; "sum": the raw sum against
    # every bucket, empty ones as zero (before issue 16). With volume_bucket_ns = 0 each
    # trade's quantity is scored raw and neither this nor min_bucket_trades applies.
    volume_statistic: str = "log_count"
    # A volume crossing needs this many trades in its bucket (one trade is not a burst).
    min_bucket_trades: int = MIN_BUCKET_TRADES
    # Thresholds as tail probabilities, roughly: a symbol that trades every k buckets is
    # tested 1/k as often, so its RETURN threshold is x min(1, kbar^-exponent) (kbar: an
    # EWMA of the buckets each return spans). 0: off. Needs return_bucket_ns > 0.
    return_activity_exponent: float = RETURN_ACTIVITY_EXPONENT
    # Drift (reported as RETURN): the move since the close at least drift_buckets return
    # buckets ago, z = (r - k mean) / (std sqrt(k)) against the RETURN window; trips at
    # |z| >= drift_threshold (times a symbol's calibrated/default RETURN ratio and the
    # activity scale). Catches sustained moves (pumps, cascades) no single bucket shows.
    # 0: off; off too when return_bucket_ns is 0.
    drift_buckets: int = DRIFT_BUCKETS
    drift_threshold: float = DRIFT_THRESHOLD
    # Rate (reported as VOLUME): trips when the running volume bucket's trade count n has
    # Poisson tail P(N >= n | mu) <= rate_p, mu the symbol's expected trades per bucket (an
    # EWMA over rate_window time buckets, empty ones included), n >= rate_min_trades, and
    # only where mu <= 4 (sparse symbols). 0: off; off too without volume buckets or with
    # volume_statistic "sum".
    rate_p: float = RATE_P
    rate_window: int = RATE_WINDOW
    rate_min_trades: int = RATE_MIN_TRADES
    # Per-symbol thresholds (from `tripwire calibrate`): name -> (returns, volume, price).
    # Not hashed (a dict): configs stay usable as keys, equal ones still hash equal.
    symbols: dict[str, tuple[float, float, float]] = field(default_factory=dict, hash=False)

    @classmethod
    def legacy(cls) -> DetectorConfig:
        """The defaults before issue 16: trade-to-trade returns at |z| >= 12, raw volume
        sums with empty buckets as zeros. Kept for comparison (benchmarks, detect-eval)."""
        return cls(
            returns=MetricConfig(window=1000, threshold=12.0),
            volume=MetricConfig(window=300, threshold=10.0, two_sided=False),
            price=MetricConfig(window=1000, threshold=8.0),
            return_bucket_ns=0,
            volume_statistic="sum",
            min_bucket_trades=0,
            return_activity_exponent=0.0,
            drift_buckets=0,
            rate_p=0.0,
        )

    @property
    def effective_drift_buckets(self) -> int:
        """drift_buckets, or 0 when there are no return buckets (drift needs them)."""
        return self.drift_buckets if self.return_bucket_ns else 0

    @property
    def effective_rate_p(self) -> float:
        """rate_p, or 0 unless volume buckets use a log statistic (the rate needs them)."""
        ok = self.volume_bucket_ns and self.volume_statistic != "sum"
        return float(self.rate_p) if ok else 0.0

    @property
    def volume_statistic_code(self) -> int:
        return VOLUME_STATISTICS.index(self.volume_statistic)

    def thresholds_for(self, symbol: str) -> tuple[float, float, float]:
        """(returns, volume, price) thresholds of a symbol: its calibration or the defaults."""
        return self.symbols.get(symbol) or tuple(float(m.threshold) for m in self.metrics)

    def __post_init__(self) -> None:
        if not isinstance(self.symbols, dict):
            _fail("detector.symbols", "a table {SYMBOL = {returns = z, volume = z, price = z}}",
                  self.symbols)
        base = tuple(float(getattr(self, n).threshold) for n in ("returns", "volume", "price"))
        norm = {}
        for sym, th in self.symbols.items():
            norm[sym] = _symbol_thresholds(sym, th, base)
        object.__setattr__(self, "symbols", norm)
        for name in ("returns", "volume", "price"):
            m = getattr(self, name)
            if not isinstance(m, MetricConfig):
                _fail(f"detector.{name}", "a MetricConfig", m)
            m.validate(f"detector.{name}")
        _check_int("detector.volume_bucket_ns", self.volume_bucket_ns, 0)
        _check_int("detector.cooldown_ns", self.cooldown_ns, 0)
        _check_int("detector.snapshot_len", self.snapshot_len, 1, 1_000_000)
        _check_int("detector.ddof", self.ddof, 0, 1)
        _check_int("detector.return_bucket_ns", self.return_bucket_ns, 0)
        _check_int("detector.min_bucket_trades", self.min_bucket_trades, 0, 1_000_000)
        e = self.return_activity_exponent
        if isinstance(e, bool) or not isinstance(e, int | float) or not (0 <= e <= 1):
            _fail("detector.return_activity_exponent", "a number in [0, 1]", e)
        _check_int("detector.drift_buckets", self.drift_buckets, 0, 100_000)
        d = self.drift_threshold
        if isinstance(d, bool) or not isinstance(d, int | float) or not (0 < d < math.inf):
            _fail("detector.drift_threshold", "a finite number > 0", d)
        p = self.rate_p
        if isinstance(p, bool) or not isinstance(p, int | float) or not (0 <= p < 1):
            _fail("detector.rate_p", "a probability in [0, 1)", p)
        _check_int("detector.rate_window", self.rate_window, 2, 10_000_000)
        _check_int("detector.rate_min_trades", self.rate_min_trades, 0, 1_000_000)
        if self.volume_statistic not in VOLUME_STATISTICS:
            _fail("detector.volume_statistic", f"one of {list(VOLUME_STATISTICS)}",
                  self.volume_statistic)

    @property
    def metrics(self) -> tuple[MetricConfig, MetricConfig, MetricConfig]:
        """In native order: RETURN, VOLUME, PRICE."""
        return (self.returns, self.volume, self.price)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], key: str = "detector") -> DetectorConfig:
        """Build from a TOML-style table. Seconds may be given as ``*_s`` instead of ``*_ns``."""
        data = dict(data)
        if "calibration" in data:
            data = {**_calibration_table(data.pop("calibration"), key), **data}
        known = {f.name for f in fields(cls)} | {
            "cooldown_s", "volume_bucket_s", "return_bucket_s", "return"}
        for k in data:
            if k not in known:
                raise ValueError(f"{key}.{k} is not a detector setting (known: {sorted(known)})")
        if "return" in data:
            data["returns"] = data.pop("return")
        for seconds, ns in (("cooldown_s", "cooldown_ns"), ("volume_bucket_s", "volume_bucket_ns"),
                            ("return_bucket_s", "return_bucket_ns")):
            if seconds in data:
                v = data.pop(seconds)
                if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                    _fail(f"{key}.{seconds}", "a number of seconds >= 0", v)
                data[ns] = round(v * NS_PER_SECOND)
        for name in ("returns", "volume", "price"):
            if name in data:
                table = data[name]
                if not isinstance(table, dict):
                    _fail(f"{key}.{name}", "a table", table)
                allowed = {f.name for f in fields(MetricConfig)}
                for k in table:
                    if k not in allowed:
                        raise ValueError(
                            f"{key}.{name}.{k} is not a metric setting (known: {sorted(allowed)})"
                        )
                base = getattr(cls(), name)
                data[name] = MetricConfig(**{**asdict(base), **table})
        return cls(**data)


_METRIC_KEYS = ("returns", "volume", "price")


def _symbol_thresholds(sym: Any, th: Any, base: tuple[float, ...]) -> tuple[float, float, float]:
    """A symbol's table ({returns = z, ...}, missing ones from the base) or 3-sequence."""
    key = f"detector.symbols.{sym}"
    if not isinstance(sym, str) or not sym:
        _fail("detector.symbols", "keyed by non-empty symbol names", sym)
    if isinstance(th, dict):
        for k in th:
            if k not in _METRIC_KEYS:
                raise ValueError(f"{key}.{k} is not a metric (known: {list(_METRIC_KEYS)})")
        vals = tuple(th.get(k, b) for k, b in zip(_METRIC_KEYS, base, strict=True))
    elif isinstance(th, list | tuple) and len(th) == 3:
        vals = tuple(th)
    else:
        _fail(key, "a table {returns = z, volume = z, price = z}", th)
    for k, v in zip(_METRIC_KEYS, vals, strict=True):
        if isinstance(v, bool) or not isinstance(v, int | float) or not (0 < v < math.inf):
            _fail(f"{key}.{k}", "a finite number > 0", v)
    return tuple(float(v) for v in vals)  # type: ignore[return-value]


def _calibration_table(path: Any, key: str) -> dict[str, Any]:
    """The [detector] table of a file written by `tripwire calibrate`."""
    if not isinstance(path, str | Path) or not str(path):
        _fail(f"{key}.calibration", "a path to a calibration TOML file", path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ValueError(f"{key}.calibration: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{key}.calibration: {path} is not valid TOML: {exc}") from None
    table = doc.get("detector")
    if not isinstance(table, dict):
        raise ValueError(f"{key}.calibration: {path} has no [detector] table")
    if "calibration" in table:
        raise ValueError(f"{key}.calibration: {path} may not name another calibration file")
    return table
