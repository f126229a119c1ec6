"""Detector configuration: one window, threshold and warm-up per metric, plus cool-down.

Validated at construction; a bad value raises ValueError naming the key, e.g.
``detector.volume.window must be an integer >= 1, got 0``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tripwire.model import NS_PER_SECOND

MAX_WINDOW = 10_000_000


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


# The defaults are calibrated on the scenario generator's default day (tripwire.feeds.scenario;
# see tripwire.detect.evaluate): every flash crash, pump, cascade, news shock and fat finger
# detected, no return trip on slow trends, well under one false trip per symbol-day.


def _returns_default() -> MetricConfig:
    # Trade-to-trade returns are heavy-tailed (Student-t steps, volatility clustering, bid-ask
    # bounce): |z| >= 6 comes a few times per symbol-day with nothing happening, and an
    # ordinary one-second market jump reaches z ~ 11 on many symbols at once.
    return MetricConfig(window=1000, threshold=12.0)


def _volume_default() -> MetricConfig:
    # Scored per volume bucket (see DetectorConfig.volume_bucket_ns): 300 x 30 s, 2.5 hours.
    # Trade sizes are lognormal, so even 30-second sums have a long right tail.
    return MetricConfig(window=300, threshold=10.0, two_sided=False)


def _price_default() -> MetricConfig:
    # After a burst of trades the window spans seconds, so the next minutes of ordinary drift
    # look far off; 8 keeps those aftershocks quiet and still sees a fat finger at z > 15.
    return MetricConfig(window=1000, threshold=8.0)


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

    def __post_init__(self) -> None:
        for name in ("returns", "volume", "price"):
            m = getattr(self, name)
            if not isinstance(m, MetricConfig):
                _fail(f"detector.{name}", "a MetricConfig", m)
            m.validate(f"detector.{name}")
        _check_int("detector.volume_bucket_ns", self.volume_bucket_ns, 0)
        _check_int("detector.cooldown_ns", self.cooldown_ns, 0)
        _check_int("detector.snapshot_len", self.snapshot_len, 1, 1_000_000)
        _check_int("detector.ddof", self.ddof, 0, 1)

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
        known = {f.name for f in fields(cls)} | {"cooldown_s", "volume_bucket_s", "return"}
        for k in data:
            if k not in known:
                raise ValueError(f"{key}.{k} is not a detector setting (known: {sorted(known)})")
        if "return" in data:
            data["returns"] = data.pop("return")
        for seconds, ns in (("cooldown_s", "cooldown_ns"), ("volume_bucket_s", "volume_bucket_ns")):
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
