"""The market as the engine knows it: latest prices, minute closes, a bounded news window.

:class:`MarketState` is the one place a trip becomes an :class:`~tripwire.incident.Incident`
in every mode (backtest, live data plane, the CLI's demos). Its rules, each written once:

- **Minute closes.** One close per minute of exchange time (the ticks' ``ts_ns``): the close
  of minute *m* is every symbol's last price at or before the end of *m*. A minute without
  ticks repeats the previous close (a gap is flat, not missing). How the ticks are cut
  into batches does not matter: a batch crossing minute boundaries closes each of them at
  the right tick.
- **The market reference** is a configured symbol (``[engine] reference_symbol``, default
  BTCUSDT), never a guess by position or name; when it is not in the symbol table the
  incident's ``reference_move_pct`` is None (and ``reference_symbol`` still names it).
- **The lead trip** of several metrics tripping on one tick is the one of largest |z|,
  ties broken by metric order (:func:`tripwire.incident.lead_trip`).
- **The news window** keeps the latest ``max_news`` headlines (the oldest fall out first,
  counted in :meth:`MarketState.stats`); an incident reads only headlines at or before its
  trip (no look-ahead).

>>> from tripwire.model import SymbolTable, TickBatch
>>> m = MarketState(SymbolTable(["ETHUSDT", "BTCUSDT"]), horizon_min=2)
>>> m.on_ticks(TickBatch.from_columns([0, 1, 0], [0, 1, 150 * 10**9], [10.0, 100.0, 11.0],
...                                   [1, 1, 1]))
>>> m.stats()["minutes_closed"], m.last_price(0)
(2, 11.0)
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from tripwire.engine.config import EngineSettings
from tripwire.incident import Incident, MarketContext, lead_trip
from tripwire.model import NS_PER_SECOND, Anomaly, NewsItem, SymbolTable, TickBatch, last_rows

MINUTE_NS = 60 * NS_PER_SECOND


class MarketState:
    """Every symbol's latest price, its minute closes and recent news (see the module doc)."""

    def __init__(self, symbols: SymbolTable, settings: EngineSettings | None = None,
                 **overrides: object) -> None:
        s = settings or EngineSettings()
        if overrides:  # a keyword per EngineSettings key, validated the same way
            s = EngineSettings.model_validate({**s.model_dump(), **overrides})
        self.symbols = symbols
        self.settings = s
        self.horizon_min = s.horizon_min
        self.news_window_s = s.news_window_s
        self.reference_symbol = s.reference_symbol
        self.reference_id = symbols.id(s.reference_symbol) if s.reference_symbol in symbols \
            else None
        self._last = np.full(max(len(symbols), 1), np.nan)
        self._closes: collections.deque[np.ndarray] = collections.deque(maxlen=s.horizon_min)
        self._minute: int | None = None
        self._news: collections.deque[NewsItem] = collections.deque(maxlen=s.max_news)
        self._news_dropped = 0
        self._built = 0

    # -- ticks and news ------------------------------------------------------------------

    def on_ticks(self, batch: TickBatch) -> None:
        """Latest prices, and the close of every minute boundary the batch crosses."""
        if not len(batch):
            return
        ts = batch.ts_ns
        if len(ts) > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
            batch = batch.take(np.argsort(ts, kind="stable"))  # closes need time order
            ts = batch.ts_ns
        if self._minute is None:
            self._minute = int(ts[0]) // MINUTE_NS
        last_minute = int(ts[-1]) // MINUTE_NS
        lo = 0
        while self._minute < last_minute:
            # Ticks before the next minute's start close the current minute.
            nxt = self._minute + 1
            hi = int(np.searchsorted(ts, nxt * MINUTE_NS, side="left"))
            self._update(batch, lo, hi)
            lo = hi
            # The first tick at or after `nxt` tells which minute comes next: the minutes
            # between are gaps that repeat this close (at most a horizon's worth matters).
            m = int(ts[hi]) // MINUTE_NS
            for _ in range(min(m - self._minute, self.horizon_min)):
                self._closes.append(self._last.copy())
            self._minute = m
        self._update(batch, lo, len(batch))

    def _update(self, batch: TickBatch, lo: int, hi: int) -> None:
        if hi <= lo:
            return
        # Each symbol's last row in the range (one pass, no sort: this runs on every batch).
        uniq, rows = last_rows(batch.symbol_id[lo:hi])
        self._last[uniq] = batch.price[lo:hi][rows]

    def on_news(self, items: Iterable[NewsItem]) -> None:
        for item in items:
            if len(self._news) == self._news.maxlen:
                self._news_dropped += 1
            self._news.append(item)

    def last_price(self, symbol_id: int) -> float | None:
        p = float(self._last[symbol_id])
        return None if math.isnan(p) else p

    # -- incidents -----------------------------------------------------------------------

    def context(self, symbol_id: int, price: float) -> MarketContext | None:
        """The moves over the horizon up to now, in percent; None until it is filled."""
        if len(self._closes) < self.horizon_min:
            return None
        base = self._closes[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            moves = (self._last / base - 1.0) * 100.0
        finite = moves[np.isfinite(moves)]
        ref = None if self.reference_id is None else _finite(moves[self.reference_id])
        own = _finite((price / base[symbol_id] - 1.0) * 100.0) if base[symbol_id] > 0 else None
        return MarketContext(
            horizon_s=self.horizon_min * 60,
            reference_symbol=self.reference_symbol,
            reference_move_pct=ref,
            market_move_pct=_finite(np.median(finite)) if len(finite) else None,
            symbol_move_pct=own,
        )

    def incidents(self, anomalies: Sequence[Anomaly],
                  ids: Callable[[str], str] | None = None) -> list[Incident]:
        """One incident per tripping tick (symbol and time), in (time, symbol) order, from
        the market as it stands now: the caller moves it up to the trips first (see
        :func:`tripwire.engine.step.segments`). ``ids(symbol)`` names each incident
        (default: its lead trip's id)."""
        groups: dict[tuple[int, str], list[Anomaly]] = {}
        for a in anomalies:
            groups.setdefault((a.ts_ns, a.symbol), []).append(a)
        out = []
        for (_ts, symbol), group in sorted(groups.items(), key=lambda kv: kv[0]):
            market = self.context(self.symbols.id(symbol), lead_trip(group).price)
            inc = Incident.from_anomalies(group, self._news, market,
                                          news_window_s=self.news_window_s)
            if ids is not None:
                inc = inc.model_copy(update={"id": ids(symbol)})
            out.append(inc)
        self._built += len(out)
        return out

    def stats(self) -> dict[str, int]:
        return {"incidents_built": self._built, "news_kept": len(self._news),
                "news_dropped": self._news_dropped, "minutes_closed": len(self._closes)}


def _finite(x: float) -> float | None:
    x = float(x)
    return round(x, 4) if math.isfinite(x) else None
