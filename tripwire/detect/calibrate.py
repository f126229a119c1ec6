"""Per-symbol calibration: thresholds that meet a false-trip budget on a user's own data.

The period given is taken as quiet (no event the user wants to hear about). One pass of a
:class:`DetectorBank` with every threshold at ``FLOOR`` x its base value and no cool-down
records every crossing; then, per symbol, the smallest multiplier ``m >= 1`` of the base
thresholds (a grid of ``STEP``) whose alarms, after the base config's cool-down, come to at
most ``budget x days``. Raising a threshold is what it gives up: the smallest move the
returns metric then reports is ``m x threshold x`` the symbol's bucket-return std.

>>> c = SymbolCalibration("X", ticks=10, days=2.0, base_trips_per_day=3.0, multiplier=1.5,
...     trips_per_day=0.5, met=True, thresholds=(19.5, 16.5, 30.0), min_move=0.012)
>>> print(to_toml([c], source="x.csv", budget=0.5).splitlines()[-4])
[detector.symbols.X]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import numpy as np

from tripwire.detect.bank import DetectorBank
from tripwire.detect.config import DetectorConfig, MetricConfig
from tripwire.model import NS_PER_SECOND, SymbolTable, TickBatch

FLOOR = 0.5  # crossings are recorded from half the base thresholds up
STEP = 0.05
MAX_MULTIPLIER = 4.0
NS_PER_DAY = 86_400 * NS_PER_SECOND


@dataclass(frozen=True, slots=True)
class SymbolCalibration:
    symbol: str
    ticks: int
    days: float
    base_trips_per_day: float  # with the base thresholds
    multiplier: float  # of the base thresholds
    trips_per_day: float  # expected, with the calibrated thresholds
    met: bool  # the budget is met (else: the most the grid allows, still over)
    thresholds: tuple[float, float, float]
    min_move: float  # smallest bucketed move the returns metric reports (fraction), or NaN


def parse_budget(text: str) -> float:
    """``"0.5/day"`` or ``"0.5"`` -> 0.5 trips per symbol-day; a clear error otherwise."""
    raw = text.strip().removesuffix("/day").strip()
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"--budget must be trips per day like 0.5/day, got {text!r}") from None
    if not (0 < value < math.inf):
        raise ValueError(f"--budget must be > 0 trips per day, got {text!r}")
    return value


def _scaled(base: DetectorConfig, factor: float) -> DetectorConfig:
    def m(c: MetricConfig) -> MetricConfig:
        return MetricConfig(**{**{f.name: getattr(c, f.name) for f in fields(c)},
                               "threshold": c.threshold * factor})

    over = {"returns": m(base.returns), "volume": m(base.volume), "price": m(base.price),
            "drift_threshold": base.drift_threshold * factor, "cooldown_ns": 0, "symbols": {}}
    return DetectorConfig(**{**{f.name: getattr(base, f.name) for f in fields(base)}, **over})


def _alarms(ts: np.ndarray, ratio: np.ndarray, m: float, cooldown_ns: int) -> int:
    """Alarms of the crossings whose z / base threshold >= m, after the cool-down."""
    t = ts[ratio >= m]
    count, until = 0, None
    for x in t.tolist():
        if until is None or x >= until:
            count += 1
            until = x + cooldown_ns
    return count


def calibrate(
    batches: Iterable[TickBatch],
    symbols: SymbolTable,
    budget_per_day: float,
    base: DetectorConfig | None = None,
) -> list[SymbolCalibration]:
    """Calibrate every symbol of ``symbols`` on ``batches`` (time-ordered, ids of ``symbols``)."""
    base = base or DetectorConfig()
    bank = DetectorBank(_scaled(base, FLOOR), n_symbols=max(1, len(symbols)))
    base_th = np.array([m.threshold for m in base.metrics])
    if base.drift_buckets:
        # A RETURN row may be the drift's (its z against drift_threshold, which scales with
        # the symbol's RETURN threshold): rows cannot tell which, so every RETURN row is
        # read against the lower of the two. That over-counts, never under-counts, alarms.
        base_th[0] = min(base_th[0], base.drift_threshold)
    ts_l, sym_l, ratio_l = [], [], []
    first = np.full(len(symbols), np.iinfo(np.int64).max)
    last = np.full(len(symbols), np.iinfo(np.int64).min)
    ticks = np.zeros(len(symbols), dtype=np.int64)
    for batch in batches:
        if not len(batch):
            continue
        res = bank.push(batch)
        np.minimum.at(first, batch.symbol_id, batch.ts_ns)
        np.maximum.at(last, batch.symbol_id, batch.ts_ns)
        ticks += np.bincount(batch.symbol_id, minlength=len(symbols))
        t = res.trips
        z = np.abs(t.z)
        ts_l.append(t.ts_ns)
        sym_l.append(t.symbol_id)
        ratio_l.append(z / base_th[t.metric])
    ts = np.concatenate(ts_l) if ts_l else np.zeros(0, np.int64)
    sym = np.concatenate(sym_l) if sym_l else np.zeros(0, np.int32)
    ratio = np.concatenate(ratio_l) if ratio_l else np.zeros(0)
    out = []
    grid = np.arange(1.0, MAX_MULTIPLIER + STEP / 2, STEP)
    for i, name in enumerate(symbols.names):
        if ticks[i] == 0:
            continue
        days = max((last[i] - first[i]) / NS_PER_DAY, 1 / 24)  # at least an hour
        mine = sym == i
        s_ts, s_ratio = ts[mine], ratio[mine]
        allowed = budget_per_day * days
        base_trips = _alarms(s_ts, s_ratio, 1.0, base.cooldown_ns)
        m, n, met = grid[-1], None, False
        for g in grid:
            n = _alarms(s_ts, s_ratio, float(g), base.cooldown_ns)
            if n <= allowed:
                m, met = float(g), True
                break
        m = round(float(m), 2)
        n = _alarms(s_ts, s_ratio, m, base.cooldown_ns)
        th = tuple(round(float(x) * m, 3) for x in base_th)
        std = bank.window_stats(i)["return"]["std"]
        min_move = math.expm1(th[0] * std) if std == std and base.return_bucket_ns else math.nan
        out.append(SymbolCalibration(name, int(ticks[i]), days, base_trips / days, m, n / days,
                                     met, th, min_move))  # type: ignore[arg-type]
    return out


def to_toml(results: Sequence[SymbolCalibration], *, source: str, budget: float) -> str:
    """The calibration file: a [detector] table with per-symbol thresholds (the live path
    reads it with ``detector.calibration = "path"``)."""
    lines = [
        f"# Written by `tripwire calibrate` from {source}; budget {budget:g} trips/symbol-day.",
        "# Per-symbol thresholds (returns, volume, price); the other detector settings are",
        "# the base config's. Use: [detector] calibration = \"<this file>\".",
        "[detector]",
    ]
    for r in results:
        note = "" if r.met else "  # budget NOT met at the largest multiplier"
        lines += [
            "",
            f"# {r.ticks} ticks over {r.days:.2f} d: {r.base_trips_per_day:.2f} trips/day at "
            f"the base thresholds -> {r.trips_per_day:.2f} (x{r.multiplier:g}){note}",
            f"[detector.symbols.{_key(r.symbol)}]",
            f"returns = {r.thresholds[0]}",
            f"volume = {r.thresholds[1]}",
            f"price = {r.thresholds[2]}",
        ]
    return "\n".join(lines) + "\n"


def _key(name: str) -> str:
    bare = name.replace("_", "").replace("-", "").isalnum()
    return name if bare and name.isascii() else '"' + name.replace('"', '\\"') + '"'
