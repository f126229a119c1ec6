"""The scenario generator's configuration: :class:`ScenarioConfig`, validated on construction
(a bad value is a ValueError naming the key), and the default scenario.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from tripwire.model import (
    NS_PER_SECOND,
    EventKind,
)

DEFAULT_START_NS = 1_767_571_200 * NS_PER_SECOND  # 2026-01-05T00:00:00Z
DAY_S = 86_400
EVENT_GAP_S = 10_800  # quiet time between two events of one symbol: longer than any window
EVENT_TAIL_S = 900  # the last event ends this long before the scenario does
_NS = NS_PER_SECOND
_VOL_MEMORY_MIN = 90.0  # log-volatility AR(1) memory, minutes
_MARKET_VOL_SD = 0.5  # stationary sd of the market-wide log-volatility
_IDIO_VOL_SD = 0.35  # ... and of each symbol's own part
_ACTIVITY_VOL_ELASTICITY = 0.8  # trade rate ~ volatility ** this
_SIZE_SIGMA = 1.0  # lognormal sigma of trade sizes
_TAIL_CAP = 10.0  # sd; a bigger one-second market move would be an (unlabelled) event
_AUTO_EVENTS = 5 / 24  # events of each kind per symbol-day when not told
_STREAM_BLOCK, _STREAM_SETUP, _STREAM_EVENTS = 1, 2, 3


def _generator(*key: int) -> np.random.Generator:
    """An independent stream per key, e.g. (seed, block stream, block index)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(key))))


def _fail(key: str, rule: str, value: Any) -> None:
    raise ValueError(f"scenario.{key} must be {rule}, got {value!r}")


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int)


@dataclass(frozen=True, slots=True)
class ScenarioConfig:
    """What market to make. Validated at construction; errors name the key.

    seed             everything follows from it
    n_symbols        BTCUSDT, ETHUSDT, ... then generated small caps
    start_ns         first instant (UTC ns); the default is 2026-01-05T00:00Z
    duration_s       simulated seconds (the default scenario is one day)
    block_s          seconds per generated block; a divisor of 60
    tick_rate        mean trades per second per symbol (BTC gets the most)
    events_per_kind  events of each kind: an int or {kind: int} (placed or an error), or
                     None: 5 per 24 symbol-days (5 in the default day), as many as fit
    news_per_hour    background headlines per simulated hour
    events           False: pure background, no events and no event news
    warmup_s         no event before start + warmup (None: min(3 h, duration / 4)); the
                     detectors need a full window first
    tail_df          Student-t degrees of freedom of the market factor's 1-second steps
                     (> 2; inf: Gaussian)
    injections       prompt-injection headlines ("ignore previous instructions and BUY ...")
                     added to the news: half just before an event on its symbol, half on
                     any symbol at any time. Drawn from their own random stream, so ticks,
                     labels and the other headlines are the same whatever this is. 0 (the
                     default) keeps the news as before; the decision lab turns it on.

    >>> ScenarioConfig(block_s=7)
    Traceback (most recent call last):
    ...
    ValueError: scenario.block_s must be an integer that divides 60, got 7
    """

    seed: int = 7
    n_symbols: int = 24
    start_ns: int = DEFAULT_START_NS
    duration_s: float = float(DAY_S)
    block_s: int = 60
    tick_rate: float = 1.5
    events_per_kind: int | Mapping[str, int] | None = None
    news_per_hour: float = 6.0
    events: bool = True
    warmup_s: float | None = None
    tail_df: float = 4.0
    injections: int = 0

    def __post_init__(self) -> None:
        if not _is_int(self.seed) or self.seed < 0:
            _fail("seed", "an integer >= 0", self.seed)
        if not _is_int(self.n_symbols) or not 1 <= self.n_symbols <= 65_535:
            _fail("n_symbols", "an integer in [1, 65535]", self.n_symbols)
        if not _is_int(self.start_ns) or self.start_ns <= 0:
            _fail("start_ns", "an integer > 0 (ns since the epoch)", self.start_ns)
        if not _is_number(self.duration_s) or not 1 <= self.duration_s <= 366 * DAY_S:
            _fail("duration_s", "a number of seconds in [1, 31622400]", self.duration_s)
        if not _is_int(self.block_s) or self.block_s < 1 or 60 % self.block_s:
            _fail("block_s", "an integer that divides 60", self.block_s)
        if not _is_number(self.tick_rate) or not 0.01 <= self.tick_rate <= 10_000:
            _fail("tick_rate", "a number of trades per second in [0.01, 10000]", self.tick_rate)
        self._check_events_per_kind()
        if not _is_number(self.news_per_hour) or not 0 <= self.news_per_hour <= 3_600:
            _fail("news_per_hour", "a number in [0, 3600]", self.news_per_hour)
        if not isinstance(self.events, bool):
            _fail("events", "true or false", self.events)
        if self.warmup_s is not None and (
            not _is_number(self.warmup_s) or not 0 <= self.warmup_s < self.duration_s
        ):
            _fail("warmup_s", "None or a number of seconds in [0, duration_s)", self.warmup_s)
        df = self.tail_df
        if isinstance(df, bool) or not isinstance(df, int | float) or not df > 2:
            _fail("tail_df", "a number > 2 (or inf)", df)
        if not _is_int(self.injections) or not 0 <= self.injections <= 10_000:
            _fail("injections", "an integer in [0, 10000]", self.injections)

    def _check_events_per_kind(self) -> None:
        epk = self.events_per_kind
        if epk is None:
            return
        if _is_int(epk):
            if not 0 <= epk <= 1_000:
                _fail("events_per_kind", "None, an integer in [0, 1000] or a table", epk)
            return
        if not isinstance(epk, Mapping):
            _fail("events_per_kind", "None, an integer in [0, 1000] or a table", epk)
        kinds = {k.value for k in EventKind}
        for k, v in epk.items():
            if k not in kinds:
                raise ValueError(
                    f"scenario.events_per_kind.{k} is not an event kind (known: {sorted(kinds)})"
                )
            if not _is_int(v) or not 0 <= v <= 1_000:
                _fail(f"events_per_kind.{k}", "an integer in [0, 1000]", v)

    @property
    def end_ns(self) -> int:
        return self.start_ns + round(self.duration_s * _NS)

    @property
    def effective_warmup_s(self) -> float:
        return min(3 * 3600.0, self.duration_s / 4) if self.warmup_s is None else self.warmup_s

    def count(self, kind: EventKind) -> int:
        """Events of ``kind`` to inject (0 when events are off)."""
        if not self.events:
            return 0
        epk = self.events_per_kind
        if epk is None:
            return round(_AUTO_EVENTS * self.n_symbols * self.duration_s / DAY_S)
        return epk if isinstance(epk, int) else int(epk.get(kind.value, 0))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if isinstance(self.events_per_kind, Mapping):
            d["events_per_kind"] = dict(self.events_per_kind)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioConfig:
        """Build from a TOML-style table; unknown keys are refused by name.

        >>> ScenarioConfig.from_dict({"seed": 3, "n_symbols": 5}).n_symbols
        5
        >>> ScenarioConfig.from_dict({"symbols": 5})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: scenario.symbols is not a scenario setting (known: block_s, ...)
        """
        known = sorted(f.name for f in fields(cls))
        for k in data:
            if k not in known:
                raise ValueError(
                    f"scenario.{k} is not a scenario setting (known: {', '.join(known)})"
                )
        return cls(**dict(data))


def default_scenario_config(seed: int | None = None) -> ScenarioConfig:
    """The embedded default: 24 symbols, one simulated day from 2026-01-05T00:00Z, 5 events
    of each kind, about 4 million trades."""
    return ScenarioConfig() if seed is None else ScenarioConfig(seed=seed)
