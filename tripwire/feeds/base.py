"""The feed port: what every market data source hands to the runtime.

A feed yields :class:`FeedChunk` s: validated ticks (columnar), the dead letters of what it
refused, trade-id gaps, and, for sources that have them, news items and event labels.
Every adapter has the same parts: a parser (wire format -> columnar batch), a
:class:`~tripwire.feeds.validate.TickValidator`, and this iteration protocol.

Sources that read from memory or disk (scenario, CSV, replay) implement the synchronous
:meth:`IterableFeed.iter_chunks`; :meth:`IterableFeed.chunks` turns that into the async
stream the runtime consumes, pacing it against the wall clock when asked (recorded speed,
N x speed) and stamping each tick's arrival time (``recv_ns``) as it is released.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tripwire.feeds.validate import Gap
from tripwire.model import (
    NS_PER_MS,
    Clock,
    DeadLetter,
    EventLabel,
    NewsItem,
    SymbolTable,
    SystemClock,
    TickBatch,
)


@dataclass(frozen=True, slots=True)
class FeedChunk:
    """One step of a feed. ``ticks`` are clean; everything refused is in ``dead``."""

    ticks: TickBatch
    dead: list[DeadLetter] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    news: list[NewsItem] = field(default_factory=list)
    labels: list[EventLabel] = field(default_factory=list)
    # Venue events (a market resolved, halted, its tick size changed; e.g. Polymarket's
    # VenueEvent): not prices, never scored; tripwire.adapters.market_state stops trading a
    # closed market on them.
    events: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ticks)


@runtime_checkable
class Feed(Protocol):
    """A market data source. ``chunks`` ends when the source is exhausted or stopped."""

    source: str
    symbols: SymbolTable

    def chunks(self) -> AsyncIterator[FeedChunk]: ...

    def stats(self) -> dict: ...


def stamp_arrival(ticks: TickBatch, now_ns: int) -> TickBatch:
    """The same ticks with ``recv_ns`` set to ``now_ns`` where it is still unknown (0)."""
    if len(ticks) == 0 or (ticks.recv_ns != 0).all():
        return ticks
    return replace(ticks, recv_ns=np.where(ticks.recv_ns == 0, np.int64(now_ns), ticks.recv_ns))


class IterableFeed(ABC):
    """Base for sources that can be read synchronously, in exchange-time order.

    ``speed``: None reads as fast as possible; 1.0 at recorded speed; 10.0 ten times faster.
    When paced, a chunk is released in slices of at most ``slice_ms`` of wall time, so
    arrival times are fine-grained (latency is measured from them).
    """

    source: str = "feed"
    symbols: SymbolTable

    def __init__(
        self, *, speed: float | None = None, clock: Clock | None = None, slice_ms: float = 1.0
    ) -> None:
        if speed is not None and not (isinstance(speed, int | float) and 0 < speed < float("inf")):
            raise ValueError(f"speed must be a finite number > 0 or None, got {speed!r}")
        if not (isinstance(slice_ms, int | float) and slice_ms > 0):
            raise ValueError(f"slice_ms must be a number > 0, got {slice_ms!r}")
        self.speed = speed
        self.clock = clock or SystemClock()
        self.slice_ms = float(slice_ms)
        self._stop = False

    @abstractmethod
    def iter_chunks(self) -> Iterator[FeedChunk]:
        """The source's chunks in exchange-time order (a generator)."""

    def stats(self) -> dict:
        """Counters for progress lines; sources override it with their own."""
        return {}

    def stop(self) -> None:
        """Ask the stream to end after the chunk in hand."""
        self._stop = True

    async def chunks(self) -> AsyncIterator[FeedChunk]:
        # The synchronous reader runs in a worker thread (NumPy and file/zip reads release
        # the GIL), so the event loop that hosts this feed keeps serving stats and stop.
        it = self.iter_chunks()
        pacer = _Pacer(self.speed, self.clock) if self.speed is not None else None
        while not self._stop:
            chunk = await asyncio.to_thread(next, it, None)
            if chunk is None:
                return
            if pacer is None:
                yield replace(chunk, ticks=stamp_arrival(chunk.ticks, self.clock.now_ns()))
            else:
                async for part in pacer.release(chunk, self.slice_ms):
                    yield part


class GeneratedFeed(IterableFeed):
    """A seeded market generator as a feed: its ``blocks()`` through a
    :class:`~tripwire.feeds.validate.TickValidator` (gaps detected), optionally paced. The
    generator gives ``symbols``, ``blocks()`` (chunks with ticks, news and labels),
    ``n_blocks`` and ``estimated_ticks``: the scenario and the realistic market both do."""

    def __init__(self, market, *, speed: float | None = None,
                 clock: Clock | None = None) -> None:
        from tripwire.feeds.validate import TickValidator

        super().__init__(speed=speed, clock=clock)
        self.market = market
        self.symbols = market.symbols
        self.validator = TickValidator(source=self.source, clock=self.clock,
                                       symbols=self.symbols, detect_gaps=True)
        self._blocks = 0

    def iter_chunks(self) -> Iterator[FeedChunk]:
        for chunk in self.market.blocks():
            v = self.validator.validate(chunk.ticks)
            self._blocks += 1
            yield FeedChunk(v.ticks, v.dead, v.gaps, chunk.news, chunk.labels)
            if self._stop:
                return

    def stats(self) -> dict:
        return {"source": self.source, "blocks": self._blocks,
                "n_blocks": self.market.n_blocks,
                "estimated_ticks": self.market.estimated_ticks, **self.validator.counters()}


class _Pacer:
    """Maps exchange time to wall time at a fixed speed, anchored at the first tick."""

    def __init__(self, speed: float, clock: Clock) -> None:
        self.speed = speed
        self.clock = clock
        self._anchor: tuple[int, int] | None = None  # (exchange ts, wall ns)

    def _due_ns(self, ts_ns: int) -> int:
        if self._anchor is None:
            self._anchor = (ts_ns, self.clock.now_ns())
        ts0, wall0 = self._anchor
        return wall0 + int((ts_ns - ts0) / self.speed)

    async def _wait(self, ts_ns: int) -> None:
        delay = self._due_ns(ts_ns) - self.clock.now_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)

    async def release(self, chunk: FeedChunk, slice_ms: float) -> AsyncIterator[FeedChunk]:
        ticks = chunk.ticks
        if len(ticks) == 0:
            yield chunk
            return
        step = max(1, int(slice_ms * NS_PER_MS * self.speed))  # exchange ns per slice
        ts = ticks.ts_ns
        edges = np.arange(int(ts[0]), int(ts[-1]) + step, step, dtype=np.int64)
        cuts = np.searchsorted(ts, edges[1:], side="left")
        start = 0
        extras = True  # dead letters, news, labels go with the first slice
        for end in [*cuts.tolist(), len(ts)]:
            if end <= start and not extras:
                continue
            await self._wait(int(ts[end - 1]) if end > start else int(ts[start]))
            part = ticks.take(slice(start, end))
            part = stamp_arrival(part, self.clock.now_ns())
            if extras:
                yield replace(chunk, ticks=part)
                extras = False
            else:
                yield FeedChunk(part)
            start = end
