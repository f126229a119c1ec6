"""Replay from the tick store: stored ticks (and news) back into the runtime as a feed.

:class:`ReplayFeed` pages through the store with a *reader*, any callable with the signature
of :meth:`tripwire.store.ticks.TickStore.read_ticks`. Locally that is ``store.read_ticks``;
in the Ray runtime only the tick-sink actor may open the store (chdb allows one process per
data directory), so the reader is a remote call to that actor, and everything that crosses
(symbol table, filters, the page, the ``(ts, symbol, trade_id)`` cursor) pickles.

Chunks come out in exchange-time order, one per page (``chunk_rows`` ticks), split where a
news item falls when a news reader is given, so a headline is never released before the
ticks that preceded it (news after the last tick go out with the end of the ticks: there
is no later tick to pace them by). Pacing (as fast as possible, recorded speed, N x) and
arrival stamps are :class:`~tripwire.feeds.base.IterableFeed`'s. Every page passes a
:class:`~tripwire.feeds.validate.TickValidator` (source ``"replay"``): stored ticks whose
symbol is not in the feed's table, or whose trade id repeats (data stored twice), become
dead letters as they would from a live feed.

``recv_ns`` is re-stamped with the replay's own arrival times by default, so latency figures
measured on a replay mean what they mean live; ``keep_recv_ns=True`` keeps the stored ones.

>>> import asyncio, tempfile
>>> from tripwire.model import SymbolTable, TickBatch
>>> from tripwire.store.ticks import TickStore
>>> syms = SymbolTable(["BTCUSDT"])
>>> ticks = TickBatch.from_columns([0, 0, 0], [10, 20, 30], [1.0, 2.0, 3.0], [1.0] * 3)
>>> async def collect(feed):
...     return [chunk async for chunk in feed.chunks()]
>>> with tempfile.TemporaryDirectory() as tmp, TickStore(f"chdb://{tmp}") as store:
...     _ = store.insert_ticks(ticks, syms)
...     chunks = asyncio.run(collect(ReplayFeed(store.read_ticks, syms, chunk_rows=2)))
>>> [c.ticks.price.tolist() for c in chunks]
[[1.0, 2.0], [3.0]]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np

from tripwire.feeds.base import FeedChunk, IterableFeed
from tripwire.feeds.validate import TickValidator
from tripwire.model import Clock, NewsItem, SymbolTable, TickBatch

Cursor = tuple[int, str, int]


class TickReader(Protocol):
    """Reads one page of stored ticks: the signature of ``TickStore.read_ticks``."""

    def __call__(
        self,
        symbols: SymbolTable,
        *,
        names: Sequence[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        after: Cursor | None = None,
        limit: int = 100_000,
    ) -> tuple[TickBatch, Cursor | None]: ...


class NewsReader(Protocol):
    """Reads stored news in time order: the signature of ``TickStore.news``."""

    def __call__(
        self, *, start_ns: int | None = None, end_ns: int | None = None, limit: int = 10_000
    ) -> Sequence[NewsItem]: ...


class ReplayFeed(IterableFeed):
    """Stored ticks (optionally with news) as a feed, in exchange-time order."""

    source = "replay"

    def __init__(
        self,
        reader: TickReader,
        symbols: SymbolTable,
        *,
        names: Sequence[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        chunk_rows: int = 100_000,
        news_reader: NewsReader | None = None,
        news_limit: int = 100_000,
        keep_recv_ns: bool = False,
        speed: float | None = None,
        clock: Clock | None = None,
        slice_ms: float = 1.0,
    ) -> None:
        super().__init__(speed=speed, clock=clock, slice_ms=slice_ms)
        for what, value in (("chunk_rows", chunk_rows), ("news_limit", news_limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{what} must be an int >= 1, got {value!r}")
        if isinstance(names, str):
            raise TypeError(f"names must be a sequence of symbol names, not the string {names!r}")
        self.symbols = symbols
        self.names = None if names is None else tuple(names)
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.chunk_rows = chunk_rows
        self.keep_recv_ns = keep_recv_ns
        self._reader = reader
        self._news_reader = news_reader
        self._news_limit = news_limit
        self.validator = TickValidator(
            len(symbols), source=self.source, clock=self.clock, symbols=symbols
        )
        self._pages = 0
        self._read = 0
        self._news = 0

    def stats(self) -> dict:
        return {
            "source": self.source,
            "pages": self._pages,
            "read": self._read,
            "news": self._news,
            **self.validator.counters(),
        }

    def iter_chunks(self) -> Iterator[FeedChunk]:
        after: Cursor | None = None
        news_from = self.start_ns
        while True:
            page, after = self._reader(
                self.symbols,
                names=self.names,
                start_ns=self.start_ns,
                end_ns=self.end_ns,
                after=after,
                limit=self.chunk_rows,
            )
            self._pages += 1
            self._read += len(page)
            # News up to this page's last tick time go with this page; the rest later.
            news_to = int(page.ts_ns[-1]) + 1 if after is not None else self.end_ns
            news = self._read_news(news_from, news_to)
            news_from = news_to
            yield from self._chunks(page, news)
            if after is None or self._stop:
                return

    def _read_news(self, start_ns: int | None, end_ns: int | None) -> list[NewsItem]:
        if self._news_reader is None:
            return []
        items = list(self._news_reader(start_ns=start_ns, end_ns=end_ns, limit=self._news_limit))
        if len(items) >= self._news_limit:
            # Refuse rather than drop news silently; the window is one page of ticks.
            raise RuntimeError(
                f"replay: {len(items)} news items in [{start_ns}, {end_ns}) reached news_limit="
                f"{self._news_limit}; raise news_limit or lower chunk_rows"
            )
        if self.names is not None:
            wanted = set(self.names)
            items = [n for n in items if not n.symbols or wanted.intersection(n.symbols)]
        self._news += len(items)
        return items

    def _chunks(self, page: TickBatch, news: list[NewsItem]) -> Iterator[FeedChunk]:
        """The validated page, cut before each news item's time (news go first in a chunk)."""
        checked = self.validator.validate(page)
        ticks = checked.ticks
        if not self.keep_recv_ns and len(ticks):
            ticks = replace(ticks, recv_ns=np.zeros(len(ticks), dtype=np.int64))
        cuts = np.searchsorted(ticks.ts_ns, [n.ts_ns for n in news], side="left").tolist()
        bounds = sorted({0, *cuts})
        for i, start in enumerate(bounds):
            end = bounds[i + 1] if i + 1 < len(bounds) else len(ticks)
            first = i == 0
            here = [n for n, c in zip(news, cuts, strict=True) if c == start]
            if end == start and not here and not (first and (checked.dead or checked.gaps)):
                continue
            yield FeedChunk(
                ticks.take(slice(start, end)),
                dead=checked.dead if first else [],
                gaps=checked.gaps if first else [],
                news=here,
            )
