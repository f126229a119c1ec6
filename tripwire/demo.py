"""A small labelled demo market and a run of the detectors over it.

This is the quick-start demo until the scenario generator (tripwire.feeds) arrives: a
seeded Gaussian random walk per symbol with Poisson trade times, into which a few labelled
events are injected (flash crash, volume burst, fat-finger print, slow trend). The run
pushes the interleaved ticks through a DetectorBank in batches and matches trips to labels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tripwire.detect import DetectorBank, DetectorConfig, MetricConfig
from tripwire.model import NS_PER_SECOND, Metric, TickBatch, Trips

MATCH_SLACK_NS = 5 * NS_PER_SECOND  # a trip this soon after an event's end still counts


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    symbol_id: int
    start_ns: int
    end_ns: int


@dataclass(frozen=True, slots=True)
class DemoMarket:
    ticks: TickBatch
    events: tuple[Event, ...]
    symbols: tuple[str, ...]


EVENT_KINDS = ("flash_crash", "volume_burst", "fat_finger", "slow_trend")


def generate(n_symbols: int = 50, ticks_per_symbol: int = 20_000, seed: int = 7) -> DemoMarket:
    """Interleaved ticks of ``n_symbols`` over one simulated hour; same seed, same bytes."""
    if n_symbols < len(EVENT_KINDS) or ticks_per_symbol < 5_000:
        raise ValueError(
            f"the demo needs >= {len(EVENT_KINDS)} symbols and >= 5000 ticks per symbol"
        )
    rng = np.random.default_rng(seed)
    hour = 3600 * NS_PER_SECOND
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("sym", "ts", "price", "qty")}
    events = []
    for s in range(n_symbols):
        n = ticks_per_symbol
        ts = np.sort(rng.integers(0, hour, n)).astype(np.int64)
        logp = np.log(rng.uniform(1.0, 50_000.0)) + np.cumsum(2e-4 * rng.standard_normal(n))
        qty = rng.lognormal(0.0, 0.5, n)
        kind = EVENT_KINDS[s] if s < len(EVENT_KINDS) else None
        at = int(rng.integers(n // 2, n - 1_000))
        if kind == "flash_crash":  # -6% in 20 trades, back over 300
            shape = np.concatenate([np.linspace(0, -0.06, 20), np.linspace(-0.06, 0, 300)])
            logp[at : at + len(shape)] += shape
            end = at + len(shape)
        elif kind == "volume_burst":  # 40x size for 30 trades, price unmoved
            qty[at : at + 30] *= 40.0
            end = at + 30
        elif kind == "fat_finger":  # one print 30% off
            logp[at] += np.log(1.3)
            end = at + 1
        elif kind == "slow_trend":  # +5% spread over 3,000 trades: must not trip returns
            logp[at:] += np.minimum(np.arange(n - at), 3_000) * (0.05 / 3_000)
            end = min(at + 3_000, n - 1)
        if kind:
            events.append(Event(kind, s, int(ts[at]), int(ts[end])))
        cols["sym"].append(np.full(n, s, np.int32))
        cols["ts"].append(ts)
        cols["price"].append(np.exp(logp))
        cols["qty"].append(qty)
    order = np.argsort(np.concatenate(cols["ts"]), kind="stable")
    batch = TickBatch(
        symbol_id=np.concatenate(cols["sym"])[order],
        ts_ns=np.concatenate(cols["ts"])[order],
        price=np.concatenate(cols["price"])[order],
        qty=np.concatenate(cols["qty"])[order],
    )
    names = tuple(f"DEMO{s:03d}" for s in range(n_symbols))
    return DemoMarket(batch, tuple(events), names)


def demo_config() -> DetectorConfig:
    return DetectorConfig(
        returns=MetricConfig(window=1000, threshold=7.0),
        volume=MetricConfig(window=300, threshold=8.0, two_sided=False),
        price=MetricConfig(window=2000, threshold=8.0),
        volume_bucket_ns=NS_PER_SECOND,  # volume per second against the last 5 minutes
        # This market's volume burst is size (40x for 30 trades at the usual rate), which the
        # default trade-count statistic does not see, and its sizes are light-tailed: score
        # summed quantity per 1 s bucket (~2 trades each here, so no 5-trade gate), the
        # statistic these thresholds were set for.
        volume_statistic="sum", min_bucket_trades=1,
        cooldown_ns=60 * NS_PER_SECOND,
    )


def _during(e: Event, trips: Trips) -> np.ndarray:
    """Mask of the trips on the event's symbol within its span (plus slack)."""
    return (
        (trips.symbol_id == e.symbol_id)
        & (trips.ts_ns >= e.start_ns)
        & (trips.ts_ns <= e.end_ns + MATCH_SLACK_NS)
    )


def match(events: tuple[Event, ...], trips: Trips) -> list[dict]:
    """For each labelled event: whether it tripped, which metrics, and the largest |z|."""
    out = []
    for e in events:
        hit = _during(e, trips)
        zs = trips.z[hit]
        out.append(
            {
                "event": e.kind,
                "symbol_id": e.symbol_id,
                "detected": bool(hit.any()),
                "metrics": sorted({Metric(int(m)).name.lower() for m in trips.metric[hit]}),
                "max_abs_z": float(np.max(np.abs(zs))) if len(zs) else None,
            }
        )
    return out


def unlabelled(events: tuple[Event, ...], trips: Trips) -> int:
    """Tripping ticks that no labelled event explains: the demo's false alarms."""
    explained = np.zeros(len(trips), dtype=bool)
    for e in events:
        explained |= _during(e, trips)
    # A tick that trips several metrics is one alarm; `row` alone repeats across batches.
    keys = np.stack([trips.symbol_id[~explained], trips.ts_ns[~explained], trips.row[~explained]])
    return np.unique(keys, axis=1).shape[1]


def run(
    market: DemoMarket,
    config: DetectorConfig,
    batch_size: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[DetectorBank, Trips, float]:
    """Push the market through one bank; returns (bank, all trips, seconds in push_batch)."""
    bank = DetectorBank(config, n_symbols=len(market.symbols))
    t = market.ticks
    parts, spent = [], 0.0
    for lo in range(0, len(t), batch_size):
        hi = min(lo + batch_size, len(t))
        t0 = time.perf_counter()
        res = bank.push_batch(t.symbol_id[lo:hi], t.ts_ns[lo:hi], t.price[lo:hi], t.qty[lo:hi])
        spent += time.perf_counter() - t0
        parts.append(res.trips)
        if progress is not None:
            progress(hi - lo, len(res.trips))
    return bank, Trips.concat(parts), spent
