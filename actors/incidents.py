"""Trips to incidents on a live stream: the market context and the news each one needs.

:class:`IncidentBuilder` is the live twin of :func:`actors.triage.demo_incidents`: it keeps
every symbol's latest price, one close per minute of exchange time (for the market context)
and a bounded window of recent news, and turns a shard's anomalies into
:class:`~tripwire.incident.Incident` objects, several metrics tripping on one tick
folding into one incident. Coalescing of a cascade into one incident per symbol and
cool-down is the decision runner's intake's job, not this one's.

>>> from tripwire.model import SymbolTable
>>> b = IncidentBuilder(SymbolTable(["BTCUSDT", "ETHUSDT"]), max_news=2)
>>> b.stats()["news_kept"]
0
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence

import numpy as np

from tripwire.incident import DEFAULT_NEWS_WINDOW_S, Incident, market_context
from tripwire.model import NS_PER_SECOND, Anomaly, NewsItem, SymbolTable, TickBatch

MINUTE_NS = 60 * NS_PER_SECOND
HORIZON_MIN = 15  # the market context looks back this many minute closes


class IncidentBuilder:
    def __init__(self, symbols: SymbolTable, *, horizon_min: int = HORIZON_MIN,
                 max_news: int = 1_000, news_window_s: float = DEFAULT_NEWS_WINDOW_S) -> None:
        if max_news < 1:
            raise ValueError(f"max_news must be >= 1, got {max_news!r}")
        self.symbols = symbols
        self.horizon_min = horizon_min
        self.news_window_s = news_window_s
        self._last = np.full(len(symbols), np.nan)
        self._closes: collections.deque[np.ndarray] = collections.deque(maxlen=horizon_min)
        self._minute: int | None = None
        # Bounded: the oldest headlines fall out first (counted), the window needs minutes.
        self._news: collections.deque[NewsItem] = collections.deque(maxlen=max_news)
        self._news_dropped = 0
        self._built = 0

    def on_ticks(self, batch: TickBatch) -> None:
        """Latest prices, and a close per minute boundary the batch crosses."""
        if not len(batch):
            return
        minutes = batch.ts_ns // MINUTE_NS
        if self._minute is None:
            self._minute = int(minutes[0])
        for m in np.unique(minutes):
            if m > self._minute:  # the minute before m closed at the last price before it
                self._update(batch.take(np.flatnonzero(minutes < m)))
                self._closes.append(self._last.copy())
                self._minute = int(m)
        self._update(batch)

    def _update(self, part: TickBatch) -> None:
        if not len(part):
            return
        order = np.argsort(part.symbol_id, kind="stable")
        ids, prices = part.symbol_id[order], part.price[order]
        ends = np.flatnonzero(np.r_[ids[1:] != ids[:-1], True])
        self._last[ids[ends]] = prices[ends]

    def on_news(self, items: Iterable[NewsItem]) -> None:
        for item in items:
            if len(self._news) == self._news.maxlen:
                self._news_dropped += 1
            self._news.append(item)

    def build(self, anomalies: Sequence[Anomaly]) -> list[Incident]:
        """One incident per (symbol, tick) among ``anomalies``, in time order."""
        groups: dict[tuple[str, int], list[Anomaly]] = {}
        for a in anomalies:
            groups.setdefault((a.symbol, a.ts_ns), []).append(a)
        out = []
        for (symbol, _ts), group in sorted(groups.items(), key=lambda kv: kv[0][1]):
            lead = max(group, key=lambda a: abs(a.z))
            market = market_context(self._closes, self._last, self.symbols.id(symbol),
                                    lead.price, horizon_min=self.horizon_min)
            out.append(Incident.from_anomalies(group, self._news, market,
                                               news_window_s=self.news_window_s))
        self._built += len(out)
        return out

    def stats(self) -> dict[str, int]:
        return {"incidents_built": self._built, "news_kept": len(self._news),
                "news_dropped": self._news_dropped, "minutes_closed": len(self._closes)}
