"""A realistic synthetic market: liquidity tiers, heavy tails, bid-ask bounce, graded events.

Usage::

    from tripwire.feeds.realistic import RealisticConfig, RealisticMarket

    m = RealisticMarket(RealisticConfig(seed=7, n_symbols=24, days=1, nu=4))
    m.symbols                 # SymbolTable, liquid first
    m.tier_of["BTCUSDT"]      # 't1_50ps' (see TIERS); m.tiers: symbol -> tier, in order
    m.events                  # GradedEvent(label, tier, size) per injected event
    m.labels                  # the EventLabels alone (label.magnitude: signed move)
    m.news                    # NewsItems (event headlines + background)
    for batch in m.batches(): # TickBatch per block (1 h), time-ordered, all symbols
        ...
    RealisticFeed(cfg)        # the same market as a feed (FeedChunk, validated)
    RealisticConfig(events_per_symbol_day=0)  # quiet days: no event at all

Same config, same bytes (every block's randomness comes from ``SeedSequence([seed,
stream, block, symbol])``); a different seed, a different market.

The model, per symbol (log-prices; ``t`` in seconds)::

    log mid(t) = log p0 + sum of sigma(minute) * sqrt(dt) * T_nu  over its trades
                 + beta * regime_path(t) + graded events' offsets
    trade price = round_to_tick(mid * exp(side * half_spread))

* **Liquidity tiers** (:data:`TIERS`): 50 trades/s down to one per 10 minutes, few symbols
  in the busy tiers and many in the quiet ones (:func:`tier_counts`). Trades arrive as a
  Poisson process per minute whose rate is the tier's rate times the intraday curve (quiet
  late evening, a morning and a larger US-session hump), the weekend factor (0.55 on
  Saturday and Sunday), the regime's activity and the current volatility (rate ~ vol^0.8).
  There is no floor: a one-per-10-minutes symbol really leaves most minutes empty.
* **Microstructure**: innovations are Student-t(``nu``) (unit variance, capped at 50 sd)
  scaled by sqrt(time since the symbol's last trade), so variance grows with time and the
  tails are those of T_nu; volatility clusters through a GARCH(1,1) recursion on a minute
  grid (half market-wide, half the symbol's own; persistence 0.98, ~50 minutes of
  memory; its own shocks are t(5) whatever ``nu``, so ``nu`` changes the returns only);
  buys print at the ask and sells at the bid on the symbol's tick grid (bid-ask bounce:
  trade-to-trade returns have negative lag-1 autocorrelation); sizes are lognormal
  times Pareto(1.6), so a few trades are huge.
* **Regime days** (market-wide, one per day): ``calm`` (vol x0.7), ``trending`` (a smooth
  drift of 3-8 % over the day), ``high_vol`` (vol x2, activity x1.6) and ``crash`` (vol
  x2.5, activity x2, a market-wide drawdown of 8-15 % over 3-6 hours). ``regimes=None``:
  every four days hold each regime once, in an order drawn from the seed. Regimes are
  background: they carry no label (a trip on a crash day's slide is a false trip).
* **Graded events** (:mod:`tripwire.feeds.graded_events`): flash crash, pump and dump,
  liquidation cascade, news shock and fat finger, each at sizes from 0.05 % to 10 %.
  Each symbol-day holds ``events_per_symbol_day`` events, one per equal slot of the day
  (fewer when a run is too short for 20-minute slots; none in the first ``warmup_s`` or
  quarter of the run, whichever is shorter), and within a tier the (kind, size) pairs are dealt in a
  cycle that visits every pair, so every tier sees every kind at every size given enough
  symbol-days. Labels carry kind, symbol, start/end and the signed move; :attr:`events`
  adds the tier and the unsigned size.

>>> m = RealisticMarket(RealisticConfig(n_symbols=5, days=1 / 24, events_per_symbol_day=0))
>>> list(m.tiers.values())
['t1_50ps', 't2_5ps', 't3_0p5ps', 't4_1per2min', 't5_1per10min']
>>> batch = next(iter(m.batches()))
>>> bool((batch.ts_ns[1:] >= batch.ts_ns[:-1]).all()), len(batch) > 50_000  # 1 h at night
(True, True)
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from tripwire.feeds import news as _news
from tripwire.feeds.base import FeedChunk, GeneratedFeed
from tripwire.feeds.graded_events import KINDS, SIZES, Shape, build, combo
from tripwire.feeds.realistic_config import (
    DAY_S,
    REGIME_ACTIVITY,
    REGIME_VOL,
    REGIMES,
    TIER_NAMES,
    TIERS,
    RealisticConfig,
    Tier,
    tier_counts,
)
from tripwire.feeds.scenario_market import _MAJORS, _activity_curve, _names
from tripwire.model import (
    NS_PER_SECOND,
    Clock,
    EventKind,
    EventLabel,
    NewsItem,
    SimClock,
    SymbolTable,
    TickBatch,
    new_id,
)

_NS = NS_PER_SECOND
_MIN_NS = 60 * _NS
__all__ = [  # the config's names are re-exported: one import for users of the market
    "DAY_S", "REGIMES", "TIERS", "TIER_NAMES", "GradedEvent", "RealisticConfig",
    "RealisticFeed", "RealisticMarket", "Tier", "tier_counts",
]


_GARCH_ALPHA, _GARCH_BETA = 0.05, 0.93
_RATE_VOL_ELASTICITY = 0.8  # trade rate ~ volatility ** this
_WEEKEND = 0.55  # activity on Saturday and Sunday
_T_CAP = 50.0  # sd; a bigger innovation would be an (unlabelled) event
_PARETO_ALPHA = 1.6  # trade sizes' tail index
_EVENT_GAP_S = 900.0  # quiet time after an event inside its slot
_MIN_SLOT_S = 1_200.0  # shorter slots hold no event (a short run gets fewer)
_STREAM_SETUP, _STREAM_VOL, _STREAM_EVENTS, _STREAM_BLOCK, _STREAM_T = 11, 12, 13, 14, 15
_VOL_SHOCK_NU = 5.0  # the GARCH's own shocks: fixed, so nu changes the returns only
_ACTIVITY = _activity_curve()


def _gen(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(key))))


@dataclass(frozen=True, slots=True)
class GradedEvent:
    """One injected event: its label, the tier of its symbol and its unsigned size."""

    label: EventLabel
    tier: str
    size: float


@dataclass(slots=True)
class _Placed:
    event: GradedEvent
    sym: int
    shape: Shape
    end_ns: int  # start + duration (the label's end)


@dataclass(slots=True)
class _State:
    """What carries from one block to the next, per symbol."""

    mid: np.ndarray  # log mid at the last trade, without event offsets
    last_ts: np.ndarray
    next_id: np.ndarray
    level: np.ndarray = field(default_factory=lambda: np.zeros(0))  # finished events' finals
    folded: int = 0


class RealisticMarket:
    """The market of a :class:`RealisticConfig`: symbols, tiers, events and news up front,
    trades block by block (memory bounded by one block, not the duration)."""

    def __init__(self, config: RealisticConfig | None = None) -> None:
        self.config = cfg = config or RealisticConfig()
        setup = _gen(cfg.seed, _STREAM_SETUP)
        counts = cfg.tier_counts
        self._tier_idx = np.repeat(np.arange(len(TIERS)), [counts[t] for t in TIER_NAMES])
        n = len(self._tier_idx)
        names = _names(n, setup)
        self.symbols = SymbolTable(names)
        self.tiers: dict[str, str] = {names[i]: TIERS[k].name for i, k in
                                      enumerate(self._tier_idx.tolist())}
        self.tier_of = self.tiers
        self._symbol_traits(setup)
        self.regimes: tuple[str, ...] = self._draw_regimes(setup)
        self._grids()
        self._placed = self._place_events() if cfg.events_per_symbol_day else []
        ids = random.Random(cfg.seed * 1_000_003 + 17)
        self.news: list[NewsItem] = self._news(ids)
        self.events: tuple[GradedEvent, ...] = tuple(p.event for p in self._placed)
        self.labels: list[EventLabel] = [e.label for e in self.events]
        self._by_end = sorted(self._placed, key=lambda p: (p.end_ns, p.event.label.start_ns))

    # -- set-up ---------------------------------------------------------------------------------

    def _symbol_traits(self, rng: np.random.Generator) -> None:
        n = len(self._tier_idx)
        tiers = [TIERS[k] for k in self._tier_idx.tolist()]
        price = np.empty(n)
        for i in range(n):
            price[i] = (_MAJORS[i][1] * math.exp(rng.normal(0, 0.05)) if i < len(_MAJORS)
                        else 10 ** rng.uniform(-4, 3))
        self.rate = np.array([t.rate for t in tiers])
        self.half_spread = np.array([t.half_spread for t in tiers])
        self.daily_vol = np.array([t.daily_vol for t in tiers]) * np.exp(rng.normal(0, 0.15, n))
        self.beta = rng.uniform(0.7, 1.3, n)
        self.price0 = price
        self.tick = 10.0 ** np.floor(np.log10(price * self.half_spread))
        median_qty = np.array([t.notional for t in tiers]) / price
        self.lot = 10.0 ** np.floor(np.log10(median_qty / 20))
        self._log_qty = np.log(median_qty)
        self._first_id = rng.integers(10**6, 4 * 10**9, n)

    def _draw_regimes(self, rng: np.random.Generator) -> tuple[str, ...]:
        days = -(-self.config.minutes // 1440)
        if self.config.regimes is not None:
            r = tuple(self.config.regimes)
            return tuple(r[d % len(r)] for d in range(days))
        # Every four days hold each regime once, in an order drawn from the seed.
        cycles = [rng.permutation(len(REGIMES)) for _ in range(-(-days // len(REGIMES)))]
        return tuple(REGIMES[int(k)] for k in np.concatenate(cycles)[:days])

    def _grids(self) -> None:
        """Per symbol and minute: trade rate (per s) and sigma (per sqrt(s))."""
        cfg = self.config
        n, m = len(self._tier_idx), cfg.minutes
        rng = _gen(cfg.seed, _STREAM_VOL)
        minute0 = cfg.start_ns // _MIN_NS
        minutes = minute0 + np.arange(m)
        season = _ACTIVITY[minutes % 1440]
        weekday = ((minutes // 1440) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        season = season * np.where(weekday >= 5, _WEEKEND, 1.0)
        day = (np.arange(m) // 1440).astype(int)
        vol_mult = np.array([REGIME_VOL[r] for r in self.regimes])[day]
        act_mult = np.array([REGIME_ACTIVITY[r] for r in self.regimes])[day]
        # GARCH(1,1) unit-mean variance, market (row 0) and each symbol, on the minute grid.
        h = np.empty((n + 1, m))
        g = np.ones(n + 1)
        z = rng.standard_t(_VOL_SHOCK_NU, (m, n + 1)) * math.sqrt(1 - 2 / _VOL_SHOCK_NU)
        z2 = np.clip(z, -8, 8) ** 2
        w = 1 - _GARCH_ALPHA - _GARCH_BETA
        for j in range(m):
            h[:, j] = g
            g = w + _GARCH_ALPHA * g * z2[j] + _GARCH_BETA * g
        var = 0.5 * h[0] + 0.5 * h[1:]
        couple = var ** (0.5 * _RATE_VOL_ELASTICITY)
        couple /= couple.mean(axis=1, keepdims=True)
        self._lam = self.rate[:, None] * season * act_mult * couple
        sig = self.daily_vol[:, None] / math.sqrt(DAY_S) * np.sqrt(var * season)
        self._sig = sig * vol_mult
        self._season = season
        self._regime_knots = self._regime_path(rng)

    def _regime_path(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Market-wide log-price path of the regime days (knots in ns since the start)."""
        t, y, level = [0.0], [0.0], 0.0
        f = np.linspace(0, 1, 13)
        smooth = f * f * (3 - 2 * f)
        for d, regime in enumerate(self.regimes):
            day0 = d * DAY_S * _NS
            if regime == "trending":
                move = math.copysign(rng.uniform(0.03, 0.08), rng.random() - 0.5)
                t += (day0 + f * DAY_S * _NS).tolist()[1:]
                y += (level + move * f).tolist()[1:]
                level += move
            elif regime == "crash":
                start, dur = rng.uniform(8, 14) * 3600, rng.uniform(3, 6) * 3600
                move = math.log1p(-rng.uniform(0.08, 0.15))
                t += (day0 + (start + f * dur) * _NS).tolist()
                y += (level + move * smooth).tolist()
                level += move
        t.append(float(self.config.duration_ns + DAY_S * _NS))
        y.append(level)
        return np.array(t), np.array(y)

    def _t(self, rng: np.random.Generator, size: int, cap: float = _T_CAP) -> np.ndarray:
        nu = self.config.nu
        if math.isinf(nu):
            x = rng.standard_normal(size)
        else:
            x = rng.standard_t(nu, size)
            x *= math.sqrt((nu - 2) / nu)
        return np.clip(x, -cap, cap, out=x)

    def _place_events(self) -> list[_Placed]:
        cfg = self.config
        rng = _gen(cfg.seed, _STREAM_EVENTS)
        ids = random.Random(cfg.seed * 7_919 + 3)
        k = cfg.events_per_symbol_day
        days = self.config.minutes / 1440
        cursor = {t: int(rng.integers(0, len(KINDS) * len(SIZES))) for t in range(len(TIERS))}
        out: list[_Placed] = []
        warmup = self.warmup_s
        for d in range(math.ceil(days)):
            lo_s = d * DAY_S + (warmup if d == 0 else 0.0)
            hi_s = min((d + 1) * DAY_S, cfg.duration_ns / _NS) - 300.0
            k_day = min(k, int((hi_s - lo_s) // _MIN_SLOT_S))  # fewer when the day is short
            if k_day < 1:
                continue
            slot = (hi_s - lo_s) / k_day
            for i in range(len(self._tier_idx)):
                tier = int(self._tier_idx[i])
                for j in range(k_day):
                    kind, size = combo(cursor[tier])
                    cursor[tier] += 1
                    shape = build(kind, rng, size, base_rate=float(self.rate[i]))
                    room = slot - shape.dur_s - _EVENT_GAP_S
                    if room <= 0:
                        continue
                    start = cfg.start_ns + round((lo_s + j * slot + rng.uniform(0, room)) * _NS)
                    end = start + round(shape.dur_s * _NS)
                    name = self.symbols.name(i)
                    label = EventLabel(new_id(SimClock(start), ids), kind, name, start, end,
                                       float(shape.magnitude))
                    out.append(_Placed(GradedEvent(label, TIERS[tier].name, size), i, shape,
                                       end))
        out.sort(key=lambda p: (p.event.label.start_ns, p.sym))
        return out

    def _news(self, ids: random.Random) -> list[NewsItem]:
        cfg = self.config
        items: list[NewsItem] = []
        reported = (EventKind.LIQUIDATION_CASCADE, EventKind.PUMP_AND_DUMP)
        for p in self._placed:
            lab = p.event.label
            if lab.kind is EventKind.NEWS_SHOCK:
                at = lab.start_ns
            elif lab.kind in reported and ids.random() < 0.5:
                at = lab.start_ns + round(ids.uniform(0.1, 0.5) * (lab.end_ns - lab.start_ns))
            else:
                continue
            item = _news.for_event(ids, lab.kind, at, lab.symbol, p.shape.up)
            if item is not None:
                items.append(item)
                p.event = GradedEvent(
                    EventLabel(lab.id, lab.kind, lab.symbol, lab.start_ns, lab.end_ns,
                               lab.magnitude, item.id), p.event.tier, p.event.size)
        n_bg = _gen(cfg.seed, _STREAM_SETUP, 1).poisson(cfg.news_per_hour * cfg.minutes / 60)
        for _ in range(int(n_bg)):
            items.append(_news.background(ids, cfg.start_ns + ids.randrange(cfg.duration_ns)))
        items.sort(key=lambda x: (x.ts_ns, x.id))
        return items

    # -- public ---------------------------------------------------------------------------------

    @property
    def warmup_s(self) -> float:
        """No event before start + this: ``warmup_s``, at most a quarter of the run."""
        return min(self.config.warmup_s, self.config.duration_ns / _NS / 4)

    @property
    def n_blocks(self) -> int:
        return -(-self.config.duration_ns // (self.config.block_s * _NS))

    @property
    def estimated_ticks(self) -> int:
        """Expected number of trades (for progress bars): background plus events."""
        bg = float(self._lam.sum()) * 60
        return round(bg + sum(p.shape.expected_extra_trades() for p in self._placed))

    def symbols_of_tier(self, tier: str) -> list[str]:
        return [s for s, t in self.tiers.items() if t == tier]

    def batches(self) -> Iterator[TickBatch]:
        """The trades, one time-ordered batch per block."""
        for ticks, _ in self._blocks():
            yield ticks

    def blocks(self) -> Iterator[FeedChunk]:
        """The market as feed chunks: trades and news per block; labels with the first."""
        news_ts = np.array([x.ts_ns for x in self.news], dtype=np.int64)
        for b, (ticks, (t0, t1)) in enumerate(self._blocks()):
            lo, hi = np.searchsorted(news_ts, [t0, t1])
            yield FeedChunk(ticks, news=self.news[lo:hi],
                            labels=list(self.labels) if b == 0 else [])

    # -- generation -----------------------------------------------------------------------------

    def _blocks(self) -> Iterator[tuple[TickBatch, tuple[int, int]]]:
        cfg = self.config
        n = len(self._tier_idx)
        st = _State(mid=np.log(self.price0), last_ts=np.full(n, cfg.start_ns, np.int64),
                    next_id=self._first_id.astype(np.int64).copy(), level=np.zeros(n))
        step = cfg.block_s * _NS
        active: list[_Placed] = []
        upcoming = 0
        for b in range(self.n_blocks):
            t0 = cfg.start_ns + b * step
            t1 = min(t0 + step, cfg.end_ns)
            active = [p for p in active if p.end_ns >= t0]
            while upcoming < len(self._placed) and self._placed[upcoming].event.label.start_ns < t1:
                active.append(self._placed[upcoming])
                upcoming += 1
            parts = [self._symbol_block(b, i, t0, t1, st, [p for p in active if p.sym == i])
                     for i in range(n)]
            self._fold(st, t1)
            yield self._merge(parts), (t0, t1)

    def _fold(self, st: _State, t1: int) -> None:
        while st.folded < len(self._by_end) and self._by_end[st.folded].end_ns < t1:
            p = self._by_end[st.folded]
            st.level[p.sym] += p.shape.final
            st.folded += 1

    def _merge(self, parts: list[tuple[np.ndarray, ...]]) -> TickBatch:
        cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
        sym, ts, price, qty, side, tid = cols
        order = np.argsort(ts, kind="stable")
        return TickBatch(sym[order], ts[order], price[order], qty[order], side[order], tid[order])

    def _symbol_block(self, b: int, i: int, t0: int, t1: int, st: _State,
                      events: list[_Placed]) -> tuple[np.ndarray, ...]:
        cfg = self.config
        rng = _gen(cfg.seed, _STREAM_BLOCK, b, i)
        m0 = (t0 - cfg.start_ns) // _MIN_NS
        m1 = -(-(t1 - cfg.start_ns) // _MIN_NS)
        counts = rng.poisson(self._lam[i, m0:m1] * 60.0)
        nb = int(counts.sum())
        ts = np.repeat(np.arange(m0, m1, dtype=np.int64) * _MIN_NS + cfg.start_ns, counts)
        ts += (rng.random(nb) * _MIN_NS).astype(np.int64)
        flag = np.zeros(nb, np.int8)
        extra_t, extra_f = [ts], [flag]
        for p in events:
            t = self._event_times(rng, p, t0, t1)
            extra_t.append(t)
            extra_f.append(np.ones(len(t), np.int8))
            lab = p.event.label
            if p.shape.bad_print and t0 <= lab.start_ns < t1:
                extra_t.append(np.array([lab.start_ns], np.int64))
                extra_f.append(np.array([2], np.int8))
        if len(extra_t) > 1:
            ts, flag = np.concatenate(extra_t), np.concatenate(extra_f)
            order = np.argsort(ts, kind="stable")
            ts, flag = ts[order], flag[order]
        else:  # background only: all flags 0, a plain sort is enough (5x cheaper)
            ts.sort()
        n = len(ts)
        if n == 0:
            e = np.empty(0)
            return (np.empty(0, np.int32), np.empty(0, np.int64), e, e, np.empty(0, np.int8),
                    np.empty(0, np.int64))
        minute = (ts - cfg.start_ns) // _MIN_NS
        dt = np.diff(ts, prepend=st.last_ts[i]).astype(np.float64) * (1.0 / _NS)
        eps = self._t(_gen(cfg.seed, _STREAM_T, b, i), n)  # own stream: nu changes only this
        eps *= np.sqrt(dt)
        eps *= self._sig[i, minute]
        mid = np.cumsum(eps)
        mid += st.mid[i]
        st.mid[i] = mid[-1]
        st.last_ts[i] = ts[-1]
        rel = (ts - cfg.start_ns).astype(np.float64)
        logp = mid + st.level[i]
        knots_t, knots_y = self._regime_knots
        a, b = np.searchsorted(knots_t, [rel[0], rel[-1]])
        around = knots_y[max(a - 1, 0) : b + 1]  # the knots that bracket this block
        if np.ptp(around) > 0:
            logp += self.beta[i] * np.interp(rel, knots_t, knots_y)
        else:  # a flat stretch (calm and high-vol days): one number, no per-trade interp
            logp += self.beta[i] * around[0]
        p_buy = np.full(n, 0.5)
        qmult = np.ones(n)
        for p in events:
            self._apply(p, ts, logp, p_buy, qmult)
        side = np.where(rng.random(n) < p_buy, 1, -1).astype(np.int8)
        bad = flag == 2
        logp += np.where(bad, 0.0, self.half_spread[i] * side)
        if bad.any():
            for p in events:
                if p.shape.bad_print:
                    hit = bad & (ts == p.event.label.start_ns)
                    logp[hit] += p.shape.bad_print
                    side[hit] = 1 if p.shape.bad_print > 0 else -1
        price = np.exp(logp)
        price *= 1.0 / self.tick[i]
        np.rint(price, out=price)
        np.maximum(price, 1.0, out=price)
        price *= self.tick[i]
        qty = rng.standard_normal(n)
        qty *= 0.6
        qty += self._log_qty[i]
        np.exp(qty, out=qty)
        qty *= rng.pareto(_PARETO_ALPHA, n) + 1.0
        qty *= np.sqrt(self._season[minute]) * qmult / self.lot[i]
        np.rint(qty, out=qty)
        np.maximum(qty, 1.0, out=qty)
        qty *= self.lot[i]
        tid = st.next_id[i] + np.arange(n, dtype=np.int64)
        st.next_id[i] += n
        return (np.full(n, i, np.int32), ts, price, qty, side, tid)

    def _apply(self, p: _Placed, ts, logp, p_buy, qmult) -> None:
        s = p.shape
        start = p.event.label.start_ns
        t = (ts - start) * (1.0 / _NS)
        if s.off is not None:
            logp += np.interp(t, s.off[0], s.off[1], left=0.0, right=s.final)
        inside = (t >= 0) & (t <= s.dur_s)
        if s.qty is not None:
            qmult *= np.where(inside, np.interp(t, *s.qty), 1.0)
        if s.buy is not None:
            p_buy[inside] = np.interp(t[inside], *s.buy)

    def _event_times(self, rng, p: _Placed, t0: int, t1: int) -> np.ndarray:
        """Extra trade times in [t0, t1) from the shape's rate (time-rescaled Poisson)."""
        s = p.shape
        start = p.event.label.start_ns
        if s.rate is None:
            return np.empty(0, np.int64)
        lo = max(t0, start)
        hi = min(t1, start + round(float(s.rate[0][-1]) * _NS))
        if hi <= lo:
            return np.empty(0, np.int64)
        grid = np.linspace((lo - start) / _NS, (hi - start) / _NS,
                           max(2, int((hi - lo) / (0.05 * _NS)) + 1))
        rate = np.interp(grid, *s.rate)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(grid))])
        k = int(rng.poisson(cum[-1]))
        if k == 0:
            return np.empty(0, np.int64)
        u = np.sort(rng.random(k)) * cum[-1]
        t = start + np.round(np.interp(u, cum, grid) * _NS).astype(np.int64)
        return np.clip(t, lo, hi - 1)


class RealisticFeed(GeneratedFeed):
    """The realistic market as a feed: blocks through a :class:`TickValidator`."""

    source = "realistic"

    def __init__(self, config: RealisticConfig | None = None, *, speed: float | None = None,
                 clock: Clock | None = None) -> None:
        super().__init__(RealisticMarket(config), speed=speed, clock=clock)
