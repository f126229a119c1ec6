"""What the realistic market is made of: liquidity tiers, regimes, and its configuration.

See :mod:`tripwire.feeds.realistic` for the model; this module holds the tables and the
validated :class:`RealisticConfig` (errors name the key, e.g. ``realistic.nu must be a
number > 2 (or inf), got 2``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tripwire.feeds.scenario import DEFAULT_START_NS
from tripwire.model import NS_PER_SECOND

_MIN_NS = 60 * NS_PER_SECOND
DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class Tier:
    """A liquidity tier: its mean trade rate and the traits of its symbols."""

    name: str
    rate: float  # mean trades per second on a weekday
    share: float  # of the symbols, before rounding
    daily_vol: float  # typical daily volatility of the log-price
    half_spread: float  # relative
    notional: float  # median trade size in USD


TIERS: tuple[Tier, ...] = (
    Tier("t1_50ps", 50.0, 1 / 12, 0.030, 0.5e-4, 2_000.0),
    Tier("t2_5ps", 5.0, 1 / 6, 0.045, 1.5e-4, 800.0),
    Tier("t3_0p5ps", 0.5, 1 / 4, 0.060, 4e-4, 300.0),
    Tier("t4_1per2min", 1 / 120, 1 / 4, 0.080, 10e-4, 150.0),
    Tier("t5_1per10min", 1 / 600, 1 / 4, 0.100, 25e-4, 80.0),
)
TIER_NAMES = tuple(t.name for t in TIERS)
_TIER = {t.name: t for t in TIERS}

REGIMES = ("calm", "trending", "high_vol", "crash")
REGIME_VOL = {"calm": 0.7, "trending": 1.0, "high_vol": 2.0, "crash": 2.5}
REGIME_ACTIVITY = {"calm": 0.85, "trending": 1.0, "high_vol": 1.6, "crash": 2.0}


def _fail(key: str, rule: str, value: Any) -> None:
    raise ValueError(f"realistic.{key} must be {rule}, got {value!r}")


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def tier_counts(n_symbols: int) -> dict[str, int]:
    """Symbols per tier: few busy, many quiet; every tier gets one once there are 5.

    >>> tier_counts(24)
    {'t1_50ps': 2, 't2_5ps': 4, 't3_0p5ps': 6, 't4_1per2min': 6, 't5_1per10min': 6}
    >>> tier_counts(3)
    {'t1_50ps': 1, 't2_5ps': 1, 't3_0p5ps': 1, 't4_1per2min': 0, 't5_1per10min': 0}
    """
    if n_symbols < len(TIERS):
        return {t.name: int(i < n_symbols) for i, t in enumerate(TIERS)}
    raw = np.array([t.share for t in TIERS]) * n_symbols
    counts = np.maximum(np.floor(raw).astype(int), 1)
    while counts.sum() < n_symbols:  # largest remainder, quiet tiers first on ties
        counts[int(np.argmax(raw - counts + np.arange(len(TIERS)) * 1e-9))] += 1
    while counts.sum() > n_symbols:
        counts[int(np.argmax(counts))] -= 1
    return {t.name: int(c) for t, c in zip(TIERS, counts, strict=True)}


@dataclass(frozen=True, slots=True)
class RealisticConfig:
    """What market to make. Validated at construction; errors name the key.

    seed                   everything follows from it
    n_symbols              split over the tiers by :func:`tier_counts` unless ``tiers``
    days                   simulated days (whole minutes), from ``start_ns``
    start_ns               first instant; the default is Monday 2026-01-05T00:00Z
    nu                     Student-t degrees of freedom of the innovations (> 2; inf:
                           Gaussian)
    tiers                  None, or {tier name: symbols} (n_symbols is then their sum)
    regimes                None (drawn per day from the seed) or names, cycled over days
    events_per_symbol_day  graded events per symbol-day; 0: quiet days, no event at all
    warmup_s               no event before start + warm-up (the detectors fill windows;
                           at most a quarter of the run)
    block_s                seconds per generated block (divides 86,400; whole minutes)
    news_per_hour          background headlines per hour
    """

    seed: int = 7
    n_symbols: int = 24
    days: float = 1.0
    start_ns: int = DEFAULT_START_NS
    nu: float = 4.0
    tiers: Mapping[str, int] | None = None
    regimes: tuple[str, ...] | None = None
    events_per_symbol_day: int = 6
    warmup_s: float = 7_200.0
    block_s: int = 3_600
    news_per_hour: float = 6.0

    def __post_init__(self) -> None:
        if not _int(self.seed) or self.seed < 0:
            _fail("seed", "an integer >= 0", self.seed)
        if self.tiers is not None:
            if not isinstance(self.tiers, Mapping):
                _fail("tiers", "None or a table {tier: symbols}", self.tiers)
            for k, v in self.tiers.items():
                if k not in _TIER:
                    raise ValueError(f"realistic.tiers.{k} is not a tier (known: "
                                     f"{', '.join(TIER_NAMES)})")
                if not _int(v) or v < 0:
                    _fail(f"tiers.{k}", "an integer >= 0", v)
            object.__setattr__(self, "n_symbols", sum(self.tiers.values()))
        if not _int(self.n_symbols) or not 1 <= self.n_symbols <= 10_000:
            _fail("n_symbols", "an integer in [1, 10000]", self.n_symbols)
        if not _num(self.days) or not 60 / DAY_S <= self.days <= 366:
            _fail("days", "a number of days in [1 minute, 366]", self.days)
        if not _int(self.start_ns) or self.start_ns <= 0 or self.start_ns % _MIN_NS:
            _fail("start_ns", "ns since the epoch > 0, on a whole minute", self.start_ns)
        if not isinstance(self.nu, int | float) or isinstance(self.nu, bool) or not self.nu > 2:
            _fail("nu", "a number > 2 (or inf)", self.nu)
        if self.regimes is not None and (
            not isinstance(self.regimes, tuple | list) or not self.regimes
            or any(r not in REGIMES for r in self.regimes)
        ):
            _fail("regimes", f"None or a non-empty list of {', '.join(REGIMES)}", self.regimes)
        if not _int(self.events_per_symbol_day) or not 0 <= self.events_per_symbol_day <= 24:
            _fail("events_per_symbol_day", "an integer in [0, 24]", self.events_per_symbol_day)
        if not _num(self.warmup_s) or self.warmup_s < 0:
            _fail("warmup_s", "a number of seconds >= 0", self.warmup_s)
        if not _int(self.block_s) or self.block_s < 60 or self.block_s % 60 or DAY_S % self.block_s:
            _fail("block_s", "whole minutes that divide a day", self.block_s)
        if not _num(self.news_per_hour) or not 0 <= self.news_per_hour <= 3_600:
            _fail("news_per_hour", "a number in [0, 3600]", self.news_per_hour)

    @property
    def minutes(self) -> int:
        return max(1, round(self.days * 1440))

    @property
    def duration_ns(self) -> int:
        return self.minutes * _MIN_NS

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    @property
    def tier_counts(self) -> dict[str, int]:
        if self.tiers is not None:
            return {t: int(self.tiers.get(t, 0)) for t in TIER_NAMES}
        return tier_counts(self.n_symbols)

