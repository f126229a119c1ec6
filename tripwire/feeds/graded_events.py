"""Graded events for the realistic market: each kind at a size chosen from a ladder.

An event's *size* is the fraction a trader reads off a chart: the depth of a flash crash or
a liquidation cascade, the height of a pump, the jump of a news shock, how far a fat finger
printed off the market. Sizes come from :data:`SIZES` (0.05 % ... 10 %), from barely
above a liquid symbol's noise (0.05 % in seconds is ~2 sd of a 50-trades/s symbol's
10-second move) to obvious on any symbol, so detection can be reported as recall against
size. Extra trading scales with size (a 10 % crash trades far more than a 0.2 %
one) and has a floor, so even a symbol that trades once in ten minutes prints a few trades
while something happens to it (:func:`extra_rate`).

A shape is a set of knots (seconds after the start, value), linearly interpolated:

* ``off``: the log-price offset added to the symbol's mid; after the last knot the offset
  stays at ``final`` (what the market keeps of the move);
* ``rate``: extra trades per second; ``qty``: a multiplier of trade sizes;
* ``buy``: the probability a trade is a buy (one-sided flow);
* ``bad_print``: a fat finger's one print, this log offset off the mid.

>>> import numpy as np
>>> s = build(EventKind.FLASH_CRASH, np.random.default_rng(1), 0.05, base_rate=1.0)
>>> round(math.expm1(min(s.off[1])), 3), s.dur_s > 60, s.up
(-0.05, True, False)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tripwire.model import EventKind

SIZES: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.10)
KINDS: tuple[EventKind, ...] = (
    EventKind.FLASH_CRASH,
    EventKind.PUMP_AND_DUMP,
    EventKind.LIQUIDATION_CASCADE,
    EventKind.NEWS_SHOCK,
    EventKind.FAT_FINGER,
)
MAX_DURATION_S = 1_000.0  # no shape lasts longer (the placer leaves room for it)
_RATE_FLOOR = 0.05  # trades/s an event's extra flow is scaled from on the sparsest symbols
_RATE_PER_SIZE = 100.0  # extra trades/s per unit of size, times max(base rate, floor)


def size_bucket(size: float) -> str:
    """The ladder rung's name: ``0.002`` -> ``'0.2%'``."""
    return f"{size * 100:g}%"


def extra_rate(base_rate: float, size: float) -> float:
    """Extra trades per second at an event's peak: +5 % of the base rate at 0.05 %, 10x at
    10 %, and at least a few trades on symbols that barely trade."""
    return max(base_rate, _RATE_FLOOR) * _RATE_PER_SIZE * size


@dataclass(frozen=True, slots=True)
class Shape:
    """How an event bends its symbol's trades (knots in seconds after the start)."""

    dur_s: float
    off: tuple[np.ndarray, np.ndarray] | None = None
    final: float = 0.0
    rate: tuple[np.ndarray, np.ndarray] | None = None
    qty: tuple[np.ndarray, np.ndarray] | None = None
    buy: tuple[np.ndarray, np.ndarray] | None = None
    bad_print: float = 0.0
    up: bool = True
    magnitude: float = 0.0  # signed fractional move (the label's magnitude)

    def expected_extra_trades(self) -> float:
        if self.rate is None:
            return 1.0 if self.bad_print else 0.0
        return float(np.trapezoid(self.rate[1], self.rate[0]))


def _knots(*pairs: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([p[0] for p in pairs], np.float64), np.array([p[1] for p in pairs]))


def _steps(rng: np.random.Generator, t0: float, t1: float, y1: float, n: int) -> list:
    """Knots from 0 to y1 over [t0, t1] in ``n`` jumps (each printed by the next trade)."""
    at = np.sort(rng.uniform(t0, t1, n))
    parts = rng.dirichlet(np.ones(n)) * y1
    out, level = [(t0, 0.0)], 0.0
    for t, p in zip(at.tolist(), parts.tolist(), strict=True):
        out += [(t, level), (t + 1e-6, level + p)]
        level += p
    return [*out, (t1, y1)]


def _flash_crash(rng, size: float, k: float) -> Shape:
    drop = math.log1p(-size)
    down, hold, rec = rng.uniform(3, 15), rng.uniform(5, 30), rng.uniform(60, 300)
    keep = drop * rng.uniform(0.0, 0.3)
    t_rec = down + hold
    off = _knots(*_steps(rng, 0.0, down, drop, int(rng.integers(3, 6))), (t_rec, drop),
                 (t_rec + rec, keep))
    return Shape(
        dur_s=t_rec + rec, off=off, final=keep, magnitude=-size, up=False,
        rate=_knots((0, 0), (1, k), (t_rec, k), (t_rec + rec, 0)),
        qty=_knots((0, 1), (1, 1 + 50 * size), (t_rec + rec, 1)),
        buy=_knots((0, 0.2), (down, 0.2), (down + 1, 0.6), (t_rec + rec, 0.5)),
    )  # fmt: skip


def _pump_and_dump(rng, size: float, k: float) -> Shape:
    top = math.log1p(size)
    pump, hold, dump = rng.uniform(120, 600), rng.uniform(30, 120), rng.uniform(30, 120)
    t_dump, t_end = pump + hold, pump + hold + dump
    keep = top * rng.uniform(0.0, 0.2)
    rise = [(pump * f, top * f * f) for f in np.linspace(0, 1, 9).tolist()]  # accelerating
    off = _knots(*rise, (t_dump, top), (t_end, keep))
    return Shape(
        dur_s=t_end, off=off, final=keep, magnitude=size, up=True,
        rate=_knots((0, 0), (pump, k), (t_end, k), (t_end + 1, 0)),
        qty=_knots((0, 1), (pump, 1 + 50 * size), (t_end, 1 + 50 * size), (t_end + 1, 1)),
        buy=_knots((0, 0.65), (pump, 0.65), (t_dump, 0.3), (t_end, 0.3), (t_end + 1, 0.5)),
    )  # fmt: skip


def _liquidation_cascade(rng, size: float, k: float) -> Shape:
    total = math.log1p(-size)
    n = int(rng.integers(3, 6))
    span, after = rng.uniform(30, 120), rng.uniform(120, 300)
    times = np.concatenate([[0.0], np.sort(rng.uniform(2, span, n - 1))])
    parts = rng.dirichlet(np.ones(n)) * total
    knots, level = [(0.0, 0.0)], 0.0
    for t, p in zip(times.tolist(), parts.tolist(), strict=True):
        knots += [(t, level), (t + 1e-6, level + 0.7 * p), (t + 2.0, level + p)]
        level += p
    keep = total * rng.uniform(0.7, 1.0)
    off = _knots(*knots, (span + 2.0, total), (span + after, keep))
    # Trades come in bursts at each forced sale: rate knots peak at every step.
    rate = [(0.0, 0.0)]
    for t in times.tolist():
        rate += [(t, 0.3 * k), (t + 0.5, 3 * k), (t + 3.0, 0.3 * k)]
    rate += [(span + after, 0.0)]
    rate.sort()
    return Shape(
        dur_s=span + after, off=off, final=keep, magnitude=-size, up=False,
        rate=_knots(*rate),
        qty=_knots((0, 1), (0.5, 1 + 50 * size), (span + 5, 1 + 50 * size), (span + after, 1)),
        buy=_knots((0, 0.15), (span + 5, 0.15), (span + 30, 0.55), (span + after, 0.5)),
    )  # fmt: skip


def _news_shock(rng, size: float, k: float) -> Shape:
    up = bool(rng.random() < 0.5)
    jump = math.log1p(size) if up else math.log1p(-size)
    tau, drift = rng.uniform(2, 8), rng.uniform(200, 600)
    off = _knots((0.0, 0.0), (1e-6, 0.6 * jump), (tau, 0.85 * jump), (3 * tau, jump),
                 (drift, jump))
    flow = 0.8 if up else 0.2
    return Shape(
        dur_s=drift, off=off, final=jump, magnitude=math.expm1(jump), up=up,
        rate=_knots((0, 0), (0.5, 2 * k), (30, k), (drift, 0)),
        qty=_knots((0, 1), (0.5, 1 + 50 * size), (60, 1 + 20 * size), (drift, 1)),
        buy=_knots((0, flow), (60, flow), (120, 0.5)),
    )  # fmt: skip


def _fat_finger(rng, size: float, k: float) -> Shape:
    up = bool(rng.random() < 0.25)
    bad = math.log1p(size) if up else math.log1p(-size)
    return Shape(dur_s=0.0, bad_print=bad, up=up, magnitude=math.expm1(bad))


_BUILDERS: dict[EventKind, Callable[[np.random.Generator, float, float], Shape]] = {
    EventKind.FLASH_CRASH: _flash_crash,
    EventKind.PUMP_AND_DUMP: _pump_and_dump,
    EventKind.LIQUIDATION_CASCADE: _liquidation_cascade,
    EventKind.NEWS_SHOCK: _news_shock,
    EventKind.FAT_FINGER: _fat_finger,
}


def build(kind: EventKind, rng: np.random.Generator, size: float, *, base_rate: float) -> Shape:
    """The shape of one ``kind`` event of ``size`` on a symbol trading ``base_rate``/s."""
    if kind not in _BUILDERS:
        raise ValueError(f"no graded shape for event kind {kind.value!r}")
    if not 0 < size < 1:
        raise ValueError(f"event size must be a fraction in (0, 1), got {size!r}")
    return _BUILDERS[kind](rng, size, extra_rate(base_rate, size))


def combo(c: int) -> tuple[EventKind, float]:
    """The ``c``-th (kind, size) of a cycle through all of them in which consecutive
    entries change both size and kind (every pair once per ``len(KINDS) * len(SIZES)``)."""
    a, b = divmod(c % (len(KINDS) * len(SIZES)), len(SIZES))
    return KINDS[(2 * a + b) % len(KINDS)], SIZES[b]
