"""The scenario's injected events: each kind's price path, extra trades, sizes and flow; where
and when they are placed (events of one symbol never overlap); the news attached to them and
the prompt-injection headlines asked for.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tripwire.feeds import news as _news
from tripwire.feeds.scenario_config import (
    _NS,
    _STREAM_EVENTS,
    EVENT_GAP_S,
    EVENT_TAIL_S,
    ScenarioConfig,
    _generator,
)
from tripwire.feeds.scenario_market import SymbolProfile
from tripwire.model import (
    EventKind,
    EventLabel,
    NewsItem,
    SimClock,
    new_id,
)

# ----------------------------------------------------------------------------- events


@dataclass(eq=False, slots=True)
class _Event:
    """An injected event: a label and how it bends the symbol's trades.

    Paths are knots in ns relative to the label's start (float64: exact at this range),
    linearly interpolated; a jump is two knots 1 ns apart. ``rate`` adds trades (per
    second), ``bursts`` add (t, peak per second, decay s) exponential bursts of trades.
    """

    label: EventLabel
    sym: int
    span_end_ns: int  # nothing but ``final`` is left of the event after this
    final: float = 0.0  # permanent log-price offset
    off: tuple[np.ndarray, np.ndarray] | None = None
    rate: tuple[np.ndarray, np.ndarray] | None = None
    bursts: tuple[tuple[float, float, float], ...] = ()
    qty: tuple[np.ndarray, np.ndarray] | None = None
    buy: tuple[np.ndarray, np.ndarray] | None = None
    removes: bool = False  # outage: no trades in [start, end]
    bad_print: float = 0.0  # fat finger: log offset of the one bad print at start
    up: bool = True  # direction (for the headline)
    extra_ticks: float = field(default=0.0)  # expected extra trades (progress estimate)

    @property
    def start_ns(self) -> int:
        return self.label.start_ns

    def __post_init__(self) -> None:
        total = 0.0
        if self.rate is not None:
            total += float(np.trapezoid(self.rate[1], self.rate[0])) / _NS
        total += sum(peak * decay for _, peak, decay in self.bursts)
        self.extra_ticks = total + (1 if self.bad_print else 0)


def _knots(*pairs: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Knots from (seconds after start, value) pairs."""
    t = np.array([p[0] for p in pairs], dtype=np.float64) * _NS
    return t, np.array([p[1] for p in pairs], dtype=np.float64)


def _stepped(
    rng: np.random.Generator, t0: float, t1: float, y0: float, y1: float, n_gaps: int, share: float
) -> list[tuple[float, float]]:
    """Knots from y0 to y1 over [t0, t1]: ``share`` of the move in ``n_gaps`` jumps (each
    printed by one trade), the rest as a steady slide."""
    gaps = np.sort(rng.uniform(t0, t1, n_gaps))
    parts = rng.dirichlet(np.ones(n_gaps)) * share * (y1 - y0)
    slide = (1 - share) * (y1 - y0) / (t1 - t0)
    out, done = [(t0, y0)], 0.0
    for g, p in zip(gaps.tolist(), parts.tolist(), strict=True):
        base = y0 + slide * (g - t0) + done
        out += [(g, base), (g + 1e-9, base + p)]
        done += p
    out.append((t1, y1))
    return out


_Builder = Callable[[np.random.Generator, SymbolProfile, int], dict[str, Any]]


def _flash_crash(rng: np.random.Generator, p: SymbolProfile, start: int) -> dict[str, Any]:
    drop = math.log(1 - rng.uniform(0.03, 0.08))
    down, hold, rec = rng.uniform(4, 20), rng.uniform(5, 45), rng.uniform(90, 480)
    keep = drop * (1 - rng.uniform(0.7, 1.0))  # what the recovery does not win back
    t_rec = down + hold
    k = rng.uniform(10, 30) * p.rate
    path = [
        *_stepped(rng, 0.0, down, 0.0, drop, int(rng.integers(3, 6)), 0.6),
        (t_rec, drop),
        (t_rec + 0.3 * rec, drop + 0.6 * (keep - drop)),
        (t_rec + rec, keep),
    ]
    return {
        "dur": t_rec + rec, "magnitude": math.expm1(drop), "final": keep, "off": _knots(*path),
        "rate": _knots((0, 0), (0.5, k), (t_rec, k), (t_rec + 0.3 * rec, 0.3 * k),
                       (t_rec + rec, 0)),
        "qty": _knots((0, 1), (1, 3), (t_rec, 3), (t_rec + rec, 1)),
        "buy": _knots((0, 0.5), (0.1, 0.2), (down, 0.2), (down + 1, 0.65), (t_rec + rec, 0.5)),
        "up": False,
    }  # fmt: skip


def _pump_and_dump(rng: np.random.Generator, p: SymbolProfile, start: int) -> dict[str, Any]:
    top = math.log1p(rng.uniform(0.10, 0.40))
    pump, hold, dump = rng.uniform(300, 1500), rng.uniform(30, 240), rng.uniform(60, 300)
    keep = top * (1 - rng.uniform(0.8, 1.0))
    t_dump, t_end = pump + hold, pump + hold + dump
    k = rng.uniform(5, 15) * p.rate
    rise = [(pump * f, top * f * f) for f in np.linspace(0, 1, 9).tolist()]  # accelerating
    path = [*rise, *_stepped(rng, t_dump, t_end, top, keep, 3, 0.5)]
    return {
        "dur": t_end + 120, "magnitude": math.expm1(top), "final": keep, "off": _knots(*path),
        "rate": _knots((0, 0), (pump, k), (t_end, 1.5 * k), (t_end + 120, 0)),
        "qty": _knots((0, 1), (pump, 4), (t_end, 4), (t_end + 120, 1)),
        "buy": _knots((0, 0.62), (pump, 0.62), (t_dump, 0.3), (t_end, 0.3), (t_end + 120, 0.5)),
        "up": True,
    }  # fmt: skip


def _liquidation_cascade(rng: np.random.Generator, p: SymbolProfile, start: int) -> dict[str, Any]:
    n = int(rng.integers(3, 6))
    span, after = rng.uniform(60, 240), rng.uniform(240, 480)
    times = np.concatenate([[0.0], np.sort(rng.uniform(2, span, n - 1))])
    steps = rng.uniform(0.006, 0.02, n)
    total = -float(steps.sum())
    path, level = [(0.0, 0.0)], 0.0
    for t, s in zip(times.tolist(), steps.tolist(), strict=True):
        path += [(t, level), (t + 1e-9, level - 0.7 * s), (t + 2.0, level - s)]
        level -= s
    keep = total * (1 - rng.uniform(0, 0.3))
    path += [(span + 2.0, total), (span + after, keep)]
    peak = min(50_000.0, max(3_000.0, 6_000.0 * p.rate))  # trades per second at a step
    bursts = tuple(
        (t * _NS, peak * rng.uniform(0.6, 1.0), rng.uniform(1.0, 2.5)) for t in times.tolist()
    )
    base = 20 * p.rate
    return {
        "dur": span + after, "magnitude": math.expm1(total), "final": keep, "off": _knots(*path),
        "rate": _knots((0, 0), (1, base), (span + 5, base), (span + after, 0)),
        "bursts": bursts,
        "qty": _knots((0, 1), (0.5, 3), (span + 5, 3), (span + after, 1)),
        "buy": _knots((0, 0.5), (0.1, 0.15), (span + 5, 0.15), (span + 30, 0.55),
                      (span + after, 0.5)),
        "up": False,
    }  # fmt: skip


def _news_shock(rng: np.random.Generator, p: SymbolProfile, start: int) -> dict[str, Any]:
    up = bool(rng.random() < 0.5)
    jump = math.copysign(rng.uniform(0.02, 0.08), 1 if up else -1)
    tau, drift = rng.uniform(2, 8), rng.uniform(300, 900)
    total = jump * (1 + rng.uniform(0, 0.3))  # the market keeps going the news' way
    path = [
        (0.0, 0.0), (1e-9, 0.6 * jump), (tau, 0.85 * jump), (3 * tau, jump), (drift, total),
    ]  # fmt: skip
    peak = p.rate * rng.uniform(30, 80)
    flow = 0.8 if up else 0.2
    return {
        "dur": drift, "magnitude": math.expm1(total), "final": total, "off": _knots(*path),
        "rate": _knots((0, 0), (5, 2 * p.rate), (drift, 0)),
        "bursts": ((0.0, peak, rng.uniform(30, 120)),),
        "qty": _knots((0, 1), (0.5, 5), (60, 3), (drift, 1)),
        "buy": _knots((0, flow), (60, flow), (120, 0.5)),
        "up": up,
    }  # fmt: skip


def _fat_finger(rng: np.random.Generator, p: SymbolProfile, start: int) -> dict[str, Any]:
    up = bool(rng.random() < 0.25)
    miss = rng.uniform(0.08, 0.30)
    bad = math.log1p(miss) if up else math.log1p(-miss)
    return {"dur": 0.0, "magnitude": math.expm1(bad), "bad_print": bad, "up": up}


def _volume_burst(rng: np.random.Generator, p: SymbolProfile, start: int) -> dict[str, Any]:
    m, dur = rng.uniform(10, 30), rng.uniform(30, 180)
    return {
        "dur": dur, "magnitude": 0.0,
        "rate": _knots((0, 0), (5, 3 * p.rate), (dur - 5, 3 * p.rate), (dur, 0)),
        "qty": _knots((0, 1), (5, m), (dur - 5, m), (dur, 1)),
    }  # fmt: skip


def _slow_trend(rng: np.random.Generator, p: SymbolProfile, start: int) -> dict[str, Any]:
    up = bool(rng.random() < 0.5)
    move = math.copysign(rng.uniform(0.02, 0.06), 1 if up else -1)
    dur = rng.uniform(2, 6) * 3600
    f = np.linspace(0, 1, 25)
    path = list(zip((f * dur).tolist(), (move * f * f * (3 - 2 * f)).tolist(), strict=True))
    return {"dur": dur, "magnitude": math.expm1(move), "final": move, "off": _knots(*path),
            "up": up}  # fmt: skip


def _outage(rng: np.random.Generator, p: SymbolProfile, start: int) -> dict[str, Any]:
    up = bool(rng.random() < 0.5)
    move = math.copysign(rng.uniform(0.01, 0.03), 1 if up else -1)
    dur = rng.uniform(120, 480)
    return {
        "dur": dur, "magnitude": math.expm1(move), "final": move,
        "off": _knots((0, 0), (dur, move)), "removes": True, "up": up,
    }  # fmt: skip


_BUILDERS: dict[EventKind, _Builder] = {
    EventKind.SLOW_TREND: _slow_trend,  # longest first: they are the hardest to place
    EventKind.PUMP_AND_DUMP: _pump_and_dump,
    EventKind.LIQUIDATION_CASCADE: _liquidation_cascade,
    EventKind.FLASH_CRASH: _flash_crash,
    EventKind.NEWS_SHOCK: _news_shock,
    EventKind.VOLUME_BURST: _volume_burst,
    EventKind.OUTAGE: _outage,
    EventKind.FAT_FINGER: _fat_finger,
}


def _symbol_weights(kind: EventKind, profiles: list[SymbolProfile]) -> np.ndarray:
    """Where each kind happens: cascades on the busiest perps, pumps on thin small caps."""
    rate = np.array([p.rate for p in profiles])
    if kind is EventKind.LIQUIDATION_CASCADE:
        w = np.where(rate >= np.quantile(rate, 2 / 3), rate**2, 0.0)
    elif kind is EventKind.PUMP_AND_DUMP and len(profiles) > 2:
        w = np.where(np.arange(len(rate)) >= 2, 1 / np.sqrt(rate), 0.0)
    else:
        w = rate**0.3
    return w / w.sum()


def _place_events(
    cfg: ScenarioConfig, profiles: list[SymbolProfile], ids: random.Random
) -> list[_Event]:
    """All events, decided from the seed; per symbol they never overlap.

    Counts given explicitly must fit (else ValueError naming the key); the automatic count
    is a density: events that find no room are left out.
    """
    rng = _generator(cfg.seed, _STREAM_EVENTS)
    lo = cfg.start_ns + round(cfg.effective_warmup_s * _NS)
    hi = cfg.end_ns - EVENT_TAIL_S * _NS
    busy: list[list[tuple[int, int]]] = [[] for _ in profiles]
    gap = EVENT_GAP_S * _NS
    out: list[_Event] = []
    for kind, build in _BUILDERS.items():
        weights = _symbol_weights(kind, profiles)
        for _ in range(cfg.count(kind)):
            for _attempt in range(500):
                sym = int(rng.choice(len(profiles), p=weights))
                start = int(rng.integers(lo, max(lo + 1, hi)))
                spec = build(rng, profiles[sym], start)
                end = start + round(spec.pop("dur") * _NS)
                if end <= hi and all(end + gap < s or start > e + gap for s, e in busy[sym]):
                    break
            else:
                if cfg.events_per_kind is None:
                    break
                raise ValueError(
                    f"scenario.events_per_kind: cannot place {cfg.count(kind)} {kind.value} "
                    f"events on {len(profiles)} symbols in {cfg.duration_s:g} s without overlap"
                )
            busy[sym].append((start, end))
            magnitude = spec.pop("magnitude")
            label = EventLabel(
                new_id(SimClock(start), ids), kind, profiles[sym].name, start, end, magnitude
            )
            out.append(_Event(label=label, sym=sym, span_end_ns=end, **spec))
    out.sort(key=lambda e: (e.start_ns, e.sym))
    return out


_REPORTED = (EventKind.LIQUIDATION_CASCADE, EventKind.PUMP_AND_DUMP)


def _attach_news(
    cfg: ScenarioConfig, events: list[_Event], profiles: list[SymbolProfile], rng: random.Random
) -> list[NewsItem]:
    """The news stream; event headlines' ids are written into their labels."""
    items: list[NewsItem] = []
    for ev in events:
        kind = ev.label.kind
        if kind is EventKind.NEWS_SHOCK:
            at = ev.start_ns
        elif kind in _REPORTED and rng.random() < 0.5:  # some are in the news, some not
            at = ev.start_ns + round(rng.uniform(0.1, 0.5) * (ev.span_end_ns - ev.start_ns))
        else:
            continue
        item = _news.for_event(rng, kind, at, ev.label.symbol, ev.up)
        if item is not None:
            items.append(item)
            ev.label = _with_news(ev.label, item.id)
    hours = cfg.duration_s / 3600
    n_bg = np.random.Generator(np.random.PCG64(rng.getrandbits(64))).poisson(
        cfg.news_per_hour * hours
    )
    for _ in range(int(n_bg)):
        at = cfg.start_ns + rng.randrange(round(cfg.duration_s * _NS))
        quiet = None
        if cfg.events and rng.random() < 0.1:
            quiet = _quiet_symbol(rng, at, events, profiles)
        if quiet is not None:  # a red herring: scary, and nothing happens
            items.append(_news.misleading(rng, at, quiet))
        else:
            items.append(_news.background(rng, at))
    items.sort(key=lambda n: (n.ts_ns, n.id))
    return items


def _injections(
    cfg: ScenarioConfig, events: list[_Event], profiles: list[SymbolProfile]
) -> list[NewsItem]:
    """``cfg.injections`` instruction-carrying headlines from a stream of their own (the
    rest of the scenario never sees it). Even ones sit 30-300 s before an event's start on
    its symbol, inside the incident's news window, next to a real move: the case where
    obeying them would trade."""
    rng = random.Random(cfg.seed * 1_000_003 + 29)
    out = []
    span = max(1, round(cfg.duration_s * _NS))
    for i in range(cfg.injections):
        if i % 2 == 0 and events:
            ev = events[(i // 2) % len(events)]
            at = max(cfg.start_ns, ev.start_ns - round(rng.uniform(30, 300) * _NS))
            symbol = ev.label.symbol
        else:
            at = cfg.start_ns + rng.randrange(span)
            symbol = profiles[rng.randrange(len(profiles))].name
        out.append(_news.injection(rng, at, symbol))
    return out


def _quiet_symbol(
    rng: random.Random, at: int, events: list[_Event], profiles: list[SymbolProfile]
) -> str | None:
    """A symbol with no event within an hour of ``at`` (None if none is found quickly)."""
    hour = 3600 * _NS
    for _ in range(10):
        sym = rng.randrange(len(profiles))
        if all(
            e.sym != sym or e.span_end_ns < at - hour or e.start_ns > at + hour for e in events
        ):
            return profiles[sym].name
    return None


def _with_news(label: EventLabel, news_id: str) -> EventLabel:
    return EventLabel(
        label.id, label.kind, label.symbol, label.start_ns, label.end_ns, label.magnitude, news_id
    )
