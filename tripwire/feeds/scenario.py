"""The scenario generator: a seeded, labelled synthetic market with news (the default data).

A :class:`Scenario` produces the trades of ``n_symbols`` symbols over ``duration_s`` of
simulated time, the ground truth of the events injected into them (:class:`EventLabel`)
and a news stream. Same config, same bytes; a different seed, a different market.

The model, per symbol ``i`` (log-prices)::

    log p_i(t) = log p0_i + beta_i * F(t) + I_i(t) + events_i(t) +/- h_i

* ``F`` is a BTC-like market factor: Student-t steps (``tail_df``, unit variance, capped
  at :data:`_TAIL_CAP` sd) on a 1-second grid, and between grid points a Brownian bridge
  common to all symbols, so every trade reads the same continuous path. ``I_i`` is the
  symbol's own Brownian walk, drawn at its trades (variance ~ time since its last trade).
  Volatility clusters: log-volatility follows an AR(1) per minute (90-minute memory) with a
  market-wide part shared by every symbol, and is scaled by the intraday activity curve.
  On the default day 1-minute returns have excess kurtosis ~2-5, a tail index ~4-5 and
  autocorrelated absolute values (0.2-0.3 at one minute, ~0.1 after an hour).
* Trades arrive as Poisson processes whose rate follows the intraday curve (two humps: the
  Asia/Europe morning and the US session, quiet late evening) and the symbol's current
  volatility; BTC is the busiest symbol, small caps trade a few times a minute.
* A buy prints at the ask, a sell at the bid (``h_i`` is the half-spread), so consecutive
  trades bounce as they do on an exchange. Prices are rounded to the symbol's tick size,
  sizes are lognormal (rounded to a lot, following the intraday curve) and trade ids are
  consecutive per symbol from a per-symbol offset.
* Events add a path to the log-price, extra trades (an inhomogeneous Poisson process; a
  liquidation cascade peaks at tens of thousands of trades a second on a big symbol),
  larger sizes and one-sided flow; a fat finger is one extra print far off the market; an
  outage removes a symbol's trades for minutes while its price keeps moving. Events of one
  symbol never overlap and are at least :data:`EVENT_GAP_S` apart.

Streaming: the market is made in blocks of ``block_s`` seconds. A block's randomness comes
from ``SeedSequence([seed, stream, block])`` and only a few numbers per symbol carry from
one block to the next (factor and idiosyncratic levels, volatility state, next trade id,
finished events' permanent offsets), so memory does not grow with the duration. Events and
news are decided up front from the seed; they are few.

The parts, one job each: :mod:`.scenario_config` (the validated config and the default
scenario), :mod:`.scenario_market` (symbols and the intraday curve),
:mod:`.scenario_events` (the injected events and their news), :mod:`.scenario_files`
(labels and news as JSON lines), and this module, the generator and its feed.

>>> sc = Scenario(ScenarioConfig(n_symbols=3, duration_s=120, block_s=60, events=False))
>>> sc.symbols.names
('BTCUSDT', 'ETHUSDT', 'SOLUSDT')
>>> chunks = list(sc.blocks())
>>> len(chunks), sum(len(c) for c in chunks) > 0
(2, True)
"""
from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tripwire.feeds.base import FeedChunk, GeneratedFeed
from tripwire.feeds.scenario_config import (
    _ACTIVITY_VOL_ELASTICITY,
    _IDIO_VOL_SD,
    _MARKET_VOL_SD,
    _NS,
    _SIZE_SIGMA,
    _STREAM_BLOCK,
    _STREAM_SETUP,
    _TAIL_CAP,
    _VOL_MEMORY_MIN,
    DAY_S,
    DEFAULT_START_NS,
    EVENT_GAP_S,
    EVENT_TAIL_S,
    ScenarioConfig,
    _generator,
    default_scenario_config,
)
from tripwire.feeds.scenario_events import _attach_news, _Event, _injections, _place_events
from tripwire.feeds.scenario_files import (
    label_dict,
    news_dict,
    read_labels,
    read_news,
    write_jsonl,
)
from tripwire.feeds.scenario_market import _ACTIVITY, SymbolProfile, activity, make_profiles
from tripwire.model import (
    Clock,
    EventLabel,
    NewsItem,
    SymbolTable,
    TickBatch,
)

# The scenario's public names, wherever they are defined (its config, market, events and
# files live in the scenario_* modules beside this one; the generator is here).
__all__ = [
    "DAY_S", "DEFAULT_START_NS", "EVENT_GAP_S", "EVENT_TAIL_S", "Scenario", "ScenarioConfig",
    "ScenarioFeed", "SymbolProfile", "activity", "default_scenario_config", "make_profiles",
    "read_labels", "read_news",
]


# ----------------------------------------------------------------------------- generator


class _State:
    """What carries from one block to the next: a few numbers per symbol."""

    def __init__(
        self, profiles: list[SymbolProfile], rng: np.random.Generator, start_ns: int
    ) -> None:
        n = len(profiles)
        self.level = np.log([p.price for p in profiles])  # log p0 + finished events
        self.factor = 0.0
        self.idio = np.zeros(n)  # at each symbol's last trade
        self.last_ts = np.full(n, start_ns, dtype=np.int64)
        self.mvol = float(rng.normal(0, _MARKET_VOL_SD))
        self.ivol = rng.normal(0, _IDIO_VOL_SD, n)
        self.next_trade_id = np.array([p.first_trade_id for p in profiles], dtype=np.int64)
        self.folded = 0  # events (sorted by span end) whose final offset is in ``level``


class Scenario:
    """A labelled synthetic market: trades in blocks, labels and news up front."""

    def __init__(self, config: ScenarioConfig | None = None) -> None:
        self.config = cfg = config or ScenarioConfig()
        setup = _generator(cfg.seed, _STREAM_SETUP)
        self.profiles = make_profiles(cfg.n_symbols, cfg.tick_rate, setup)
        self.symbols = SymbolTable([p.name for p in self.profiles])
        ids = random.Random(cfg.seed * 1_000_003 + 11)
        self._events = _place_events(cfg, self.profiles, ids) if cfg.events else []
        self.news: list[NewsItem] = _attach_news(cfg, self._events, self.profiles, ids)
        if cfg.injections:
            self.news = sorted([*self.news, *_injections(cfg, self._events, self.profiles)],
                               key=lambda n: (n.ts_ns, n.id))
        self.labels: list[EventLabel] = [e.label for e in self._events]
        self._by_end = sorted(self._events, key=lambda e: (e.span_end_ns, e.start_ns, e.sym))
        self._state_seed = int(setup.integers(0, 2**63))
        self._prepare_arrays()

    # -- fixed per-symbol arrays ------------------------------------------------------------

    def _prepare_arrays(self) -> None:
        ps = self.profiles
        self._rate = np.array([p.rate for p in ps])
        self._beta = np.array([p.beta for p in ps])
        vol = np.array([p.daily_vol for p in ps])
        factor_vol = ps[0].daily_vol  # the factor is BTC-like
        self._factor_vol = factor_vol / math.sqrt(DAY_S)
        idio = np.sqrt(np.maximum(vol**2 - (self._beta * factor_vol) ** 2, (0.35 * vol) ** 2))
        idio[0] = 0.2 * vol[0]  # BTC is mostly the factor itself
        self._idio_vol = idio / math.sqrt(DAY_S)
        self._half_spread = np.array([p.half_spread for p in ps])
        self._tick = np.array([p.tick_size for p in ps])
        self._inv_tick = 1.0 / self._tick
        self._lot = np.array([p.lot for p in ps])
        self._inv_lot = 1.0 / self._lot
        self._log_size = np.log([p.size_median for p in ps])
        n = len(ps)
        self._sym_small = np.int16 if n <= 32_767 else np.uint16
        df = self.config.tail_df
        self._t_scale = 1.0 if math.isinf(df) else math.sqrt((df - 2) / df)

    # -- public ------------------------------------------------------------------------------

    @property
    def n_blocks(self) -> int:
        cfg = self.config
        return -(-(cfg.end_ns - cfg.start_ns) // (cfg.block_s * _NS))

    @property
    def estimated_ticks(self) -> int:
        """Expected number of trades (for progress bars): background plus events."""
        cfg = self.config
        minute = 60 * _NS
        minutes = np.arange(cfg.start_ns // minute, -(-cfg.end_ns // minute)) % 1440
        background = float(self._rate.sum()) * cfg.duration_s * float(_ACTIVITY[minutes].mean())
        return round(background + sum(e.extra_ticks for e in self._events))

    def blocks(self) -> Iterator[FeedChunk]:
        """The market, block by block; all labels ride with the first chunk."""
        cfg = self.config
        state = _State(self.profiles, np.random.default_rng(self._state_seed), cfg.start_ns)
        news_ts = [n.ts_ns for n in self.news]
        active: list[_Event] = []
        upcoming = 0  # self._events is sorted by start
        for b in range(self.n_blocks):
            t0 = cfg.start_ns + b * cfg.block_s * _NS
            t1 = min(t0 + cfg.block_s * _NS, cfg.end_ns)
            active = [e for e in active if e.span_end_ns >= t0]
            while upcoming < len(self._events) and self._events[upcoming].start_ns < t1:
                active.append(self._events[upcoming])
                upcoming += 1
            ticks = self._block(b, t0, t1, state, active)
            news = self.news[bisect_left(news_ts, t0) : bisect_left(news_ts, t1)]
            yield FeedChunk(ticks, news=news, labels=list(self.labels) if b == 0 else [])

    def write_labels(self, path: str | Path) -> Path:
        """The labels as JSON lines (one object per event)."""
        return write_jsonl(path, [label_dict(x) for x in self.labels])

    def write_news(self, path: str | Path) -> Path:
        """The news stream as JSON lines."""
        return write_jsonl(path, [news_dict(x) for x in self.news])

    # -- one block -----------------------------------------------------------------------------

    def _block(self, b: int, t0: int, t1: int, st: _State, active: list[_Event]) -> TickBatch:
        cfg = self.config
        rng = _generator(cfg.seed, _STREAM_BLOCK, b)
        if (t0 - cfg.start_ns) % (60 * _NS) == 0 and b > 0:
            self._advance_volatility(st, rng)
        length = t1 - t0
        act = activity(t0 + length // 2)
        ivol_dev = 0.5 * st.mvol + st.ivol
        ivol_sd2 = 0.25 * _MARKET_VOL_SD**2 + _IDIO_VOL_SD**2
        sig_factor = self._factor_vol * math.exp(st.mvol - _MARKET_VOL_SD**2) * math.sqrt(act)
        sig_idio = self._idio_vol * np.exp(ivol_dev - ivol_sd2) * math.sqrt(act)
        kappa = _ACTIVITY_VOL_ELASTICITY
        lam = self._rate * act * np.exp(kappa * ivol_dev - 0.5 * kappa**2 * ivol_sd2)
        rel, sym = self._arrivals(rng, lam, length)
        flag = np.zeros(0, np.int8)
        if active:
            rel, sym, flag = self._with_event_trades(rng, active, rel, sym, t0, t1)
        ts = rel + t0
        grouped = np.argsort(sym.astype(self._sym_small), kind="stable")
        counts = np.bincount(sym, minlength=len(self.profiles))
        logp = self._factor_path(rng, rel, length, sig_factor, st)
        logp *= self._beta[sym]
        logp += self._idio_path(rng, ts, sym, grouped, counts, sig_idio, st)
        side, qty = self._sides_and_sizes(rng, sym, act)
        for ev in active:
            self._apply_event(rng, ev, ts, sym, logp, side, qty, flag)
        trade_id = self._trade_ids(sym, grouped, counts, st)
        ticks = self._finish(ts, sym, logp, side, qty, trade_id, st)
        self._fold_events(st, t1)
        return ticks

    def _advance_volatility(self, st: _State, rng: np.random.Generator) -> None:
        phi = math.exp(-1 / _VOL_MEMORY_MIN)
        k = math.sqrt(1 - phi * phi)
        st.mvol = phi * st.mvol + k * _MARKET_VOL_SD * float(rng.standard_normal())
        st.ivol = phi * st.ivol + k * _IDIO_VOL_SD * rng.standard_normal(len(st.ivol))

    def _arrivals(self, rng, lam: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Background trades: per-symbol Poisson counts, merged in random order over sorted
        uniform times (the superposition of the symbols' Poisson processes)."""
        counts = rng.poisson(lam * (length / _NS))
        n = int(counts.sum())
        sym = np.repeat(np.arange(len(lam), dtype=self._sym_small), counts)
        rng.shuffle(sym)
        gaps = rng.standard_exponential(n + 1)
        cum = np.cumsum(gaps)
        # Sorted uniforms on [0, length - n), then + rank: strictly increasing, so no ties.
        rel = (cum[:n] * ((length - n) / cum[n])).astype(np.int64)
        rel += np.arange(n, dtype=np.int64)
        return rel, sym.astype(np.int32)

    def _with_event_trades(self, rng, active, rel, sym, t0: int, t1: int):
        """Add events' extra trades (merged by time, ties by symbol) and drop outage trades."""
        parts_rel, parts_sym, parts_flag = [rel], [sym], [np.zeros(len(rel), np.int8)]
        for ev in active:
            extra = self._event_times(rng, ev, t0, t1)
            if len(extra):
                parts_rel.append(extra - t0)
                parts_sym.append(np.full(len(extra), ev.sym, np.int32))
                parts_flag.append(np.ones(len(extra), np.int8))
            if ev.bad_print and t0 <= ev.start_ns < t1:
                parts_rel.append(np.array([ev.start_ns - t0], np.int64))
                parts_sym.append(np.array([ev.sym], np.int32))
                parts_flag.append(np.array([2], np.int8))
        flag = np.concatenate(parts_flag)
        if len(parts_rel) > 1:
            rel, sym = np.concatenate(parts_rel), np.concatenate(parts_sym)
            # Sorted runs: timsort merges them in linear time.
            order = np.argsort(rel * len(self.profiles) + sym, kind="stable")
            rel, sym, flag = rel[order], sym[order], flag[order]
        for ev in active:
            if ev.removes:
                lo, hi = ev.label.start_ns - t0, ev.label.end_ns - t0
                keep = ~((sym == ev.sym) & (rel >= lo) & (rel <= hi))
                rel, sym, flag = rel[keep], sym[keep], flag[keep]
        return rel, sym, flag

    def _event_times(self, rng, ev: _Event, t0: int, t1: int) -> np.ndarray:
        """Extra trade times of ``ev`` in [t0, t1): its rate and bursts, time-rescaled."""
        if ev.rate is None and not ev.bursts:
            return np.empty(0, np.int64)
        lo, hi = max(t0, ev.start_ns), min(t1, ev.span_end_ns + 1)
        if hi <= lo:
            return np.empty(0, np.int64)
        step = 10_000_000  # 10 ms: fine enough for second-scale bursts
        grid = np.arange(lo - ev.start_ns, hi - ev.start_ns + step, step, dtype=np.float64)
        grid[-1] = hi - ev.start_ns
        rate = np.zeros(len(grid))
        if ev.rate is not None:
            rate += np.interp(grid, ev.rate[0], ev.rate[1], left=0.0, right=0.0)
        for at, peak, decay in ev.bursts:
            dt = (grid - at) / _NS
            rise = np.clip(1 + dt / 0.2, 0, 1)  # 200 ms ramp up to the peak
            rate += peak * np.where(dt < 0, rise, np.exp(-np.maximum(dt, 0) / decay))
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(grid))])
        cum /= _NS
        n = int(rng.poisson(cum[-1]))
        if n == 0:
            return np.empty(0, np.int64)
        u = np.cumsum(rng.standard_exponential(n + 1))
        u = u[:n] * (cum[-1] / u[n])
        times = np.interp(u, cum, grid).astype(np.int64) + ev.start_ns
        return np.clip(times, lo, hi - 1)

    def _innovations(self, rng: np.random.Generator, size: int) -> np.ndarray:
        df = self.config.tail_df
        if math.isinf(df):
            return rng.standard_normal(size)
        x = rng.standard_t(df, size)
        x *= self._t_scale
        return np.clip(x, -_TAIL_CAP, _TAIL_CAP, out=x)

    def _factor_path(self, rng, rel: np.ndarray, length: int, sigma: float, st: _State):
        """The market factor at every trade of the block.

        Heavy-tailed steps on a 1-second grid, and between grid points a Brownian bridge
        common to all symbols (read at the merged, time-sorted trades), so a return over
        ``dt`` has variance ~ ``dt`` at any spacing of trades.
        """
        nsec = -(-length // _NS)
        grid = np.empty(nsec + 1)
        grid[0] = st.factor
        np.cumsum(self._innovations(rng, nsec) * sigma, out=grid[1:])
        grid[1:] += st.factor
        sec, rem = divmod(length, _NS)
        st.factor = float(grid[sec] + (rem / _NS) * (grid[min(sec + 1, nsec)] - grid[sec]))
        n = len(rel)
        if n == 0:
            return np.empty(0)
        sec = rel // _NS
        frac = (rel - sec * _NS) * (1.0 / _NS)
        g0 = grid[sec]
        path = g0 + frac * (grid[sec + 1] - g0)
        new_sec = np.empty(n, dtype=bool)
        new_sec[0] = True
        np.not_equal(sec[1:], sec[:-1], out=new_sec[1:])
        step = np.empty(n)
        step[0] = frac[0]
        np.subtract(frac[1:], frac[:-1], out=step[1:])
        step[new_sec] = frac[new_sec]
        np.sqrt(step, out=step)
        step *= rng.standard_normal(n)
        walk = np.cumsum(step)
        first = np.flatnonzero(new_sec)
        seg = np.cumsum(new_sec) - 1
        walk -= (walk[first] - step[first])[seg]
        last = np.append(first[1:], n) - 1
        at_end = walk[last] + np.sqrt(1.0 - frac[last]) * rng.standard_normal(len(last))
        walk -= frac * at_end[seg]  # the bridge: zero at both ends of each second
        path += sigma * walk
        return path

    def _idio_path(self, rng, ts, sym, grouped, counts, sigma: np.ndarray, st: _State):
        """Each symbol's own Brownian walk, read at its trades (variance ~ time between them)."""
        n = len(ts)
        out = np.empty(n)
        if n == 0:
            return out
        ts_g, sym_g = ts[grouped], sym[grouped]
        has = counts > 0
        first = (np.cumsum(counts) - counts)[has]
        last = first + counts[has] - 1
        prev = np.empty(n, np.int64)
        prev[1:] = ts_g[:-1]
        prev[first] = st.last_ts[has]
        step = (ts_g - prev) * (1.0 / _NS)
        np.sqrt(step, out=step)
        step *= rng.standard_normal(n)
        step *= sigma[sym_g]
        walk = np.cumsum(step)
        offset = np.zeros(len(counts))
        offset[has] = walk[first] - step[first] - st.idio[has]
        walk -= np.repeat(offset, counts)
        out[grouped] = walk
        st.idio[has] = walk[last]
        st.last_ts[has] = ts_g[last]
        return out

    def _sides_and_sizes(self, rng, sym: np.ndarray, act: float):
        side = rng.integers(0, 2, len(sym), dtype=np.int8)
        side *= 2
        side -= 1
        qty = rng.standard_normal(len(sym))
        qty *= _SIZE_SIGMA
        qty += self._log_size[sym]
        np.exp(qty, out=qty)
        qty *= math.sqrt(act)  # sizes follow the intraday curve too
        return side, qty

    def _apply_event(self, rng, ev: _Event, ts, sym, logp, side, qty, flag) -> None:
        rows = np.flatnonzero(sym == ev.sym)
        if len(rows) == 0:
            return
        t = (ts[rows] - ev.start_ns).astype(np.float64)
        if ev.off is not None:
            logp[rows] += np.interp(t, ev.off[0], ev.off[1], left=0.0, right=ev.final)
        if ev.qty is not None:
            qty[rows] *= np.interp(t, ev.qty[0], ev.qty[1], left=1.0, right=1.0)
        if ev.buy is not None:
            p_buy = np.interp(t, ev.buy[0], ev.buy[1], left=0.5, right=0.5)
            side[rows] = np.where(rng.random(len(rows)) < p_buy, 1, -1).astype(np.int8)
        if ev.bad_print:
            bad = rows[flag[rows] == 2]
            side[bad] = 1 if ev.bad_print > 0 else -1
            # The bad print replaces the bounce: it is the whole (wrong) price.
            logp[bad] += ev.bad_print - side[bad] * self._half_spread[ev.sym]

    def _trade_ids(self, sym, grouped, counts, st: _State) -> np.ndarray:
        """Consecutive per symbol, in time order, continuing from the previous block."""
        first = np.cumsum(counts) - counts
        rank = np.empty(len(sym), np.int64)
        rank[grouped] = np.arange(len(sym), dtype=np.int64) - np.repeat(first, counts)
        rank += st.next_trade_id[sym]
        st.next_trade_id += counts
        return rank

    def _finish(self, ts, sym, logp, side, qty, trade_id, st: _State) -> TickBatch:
        """Add level and bounce, round to ticks and lots."""
        logp += self._half_spread[sym] * side
        logp += st.level[sym]
        price = np.exp(logp, out=logp)
        price *= self._inv_tick[sym]
        np.rint(price, out=price)
        price *= self._tick[sym]
        qty *= self._inv_lot[sym]
        np.rint(qty, out=qty)
        np.maximum(qty, 1.0, out=qty)
        qty *= self._lot[sym]
        return TickBatch(sym, ts, price, qty, side, trade_id)

    def _fold_events(self, st: _State, t1: int) -> None:
        """Events over by ``t1`` leave only their permanent offset, kept in ``level``."""
        while st.folded < len(self._by_end) and self._by_end[st.folded].span_end_ns < t1:
            ev = self._by_end[st.folded]
            st.level[ev.sym] += ev.final
            st.folded += 1


# ----------------------------------------------------------------------------- feed


class ScenarioFeed(GeneratedFeed):
    """The scenario as a feed: blocks through a :class:`TickValidator`, optionally paced."""

    source = "scenario"

    def __init__(
        self,
        config: ScenarioConfig | None = None,
        *,
        speed: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(Scenario(config), speed=speed, clock=clock)
        self.scenario = self.market
