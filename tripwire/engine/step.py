"""The one step of the tick path: validated ticks -> detect -> incidents -> decisions -> venue.

:meth:`Engine.step` takes one batch of validated ticks (a sub-batch of a replay, or one
ingested batch) through every stage, the same way in every mode:

1. **detect**: the shard's own symbols go to the detectors (:class:`~.ports.Detectors`);
   every symbol's ticks feed the market state (the market context reads them all);
2. **warm-up**: before the trading window only the detectors and the market state learn
   (no incidents, no orders);
3. **segments**: the batch is cut at each trip time (:func:`segments`): the market state and
   the venue move up to and including the trip, so an incident sees the market as it was
   at its trip and an order placed on it fills against the ticks after it, however the
   stream was cut into batches;
4. **incidents**: one per tripping tick (:meth:`MarketState.incidents`), handed to the
   decisions port (:class:`~.ports.Decisions`), which returns once the mode's decision
   point is reached (decided in a backtest, queued live);
5. **venue**: :class:`Venue` -- the broker takes the ticks (fills), the latest prices
   follow, and on market time the clock moves to the segment's end;
6. **outcomes** (``[memory]`` on): incidents whose horizon the batch passed get their
   realised move recorded (:mod:`~.outcomes`), after the batch's own decisions.
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from tripwire.engine.market import MarketState
from tripwire.engine.outcomes import OutcomeRecorder
from tripwire.engine.ports import Decisions, Detectors, PriceBook, TickSink, VenueBroker
from tripwire.incident import Incident
from tripwire.model import NS_PER_SECOND, Anomaly, Clock, SimClock, TickBatch


class Venue:
    """The venue step, written once: ``broker.on_ticks`` (fills), the prices the
    fact-checker reads, and -- on market time (a :class:`SimClock`) -- the clock.

    The clock moves to ``until_ns`` when given (a replay: the segment's end over every
    symbol, so ids and ages do not depend on which symbols share a shard), else to the
    latest tick the venue took (a late row it refused does not move market time); never
    back. On the wall clock (live) the clock is left alone.
    """

    def __init__(self, broker: VenueBroker | None, prices: PriceBook | None = None,
                 clock: Clock | None = None) -> None:
        self.broker, self.prices = broker, prices  # broker None: an exchange fills itself
        self.clock = clock if isinstance(clock, SimClock) else None

    def step(self, batch: TickBatch, until_ns: int | None = None) -> list[Any]:
        fills = self.broker.on_ticks(batch) if self.broker is not None and len(batch) else []
        if self.prices is not None and len(batch):
            self.prices.update(batch)
        if until_ns is None:
            taken = getattr(self.broker, "last_tick_ns", None)
            until_ns = taken if taken is not None or not len(batch) else int(batch.ts_ns[-1])
        self.advance(until_ns)
        return fills

    def advance(self, ts_ns: int | None) -> None:
        if self.clock is not None and ts_ns is not None:
            self.clock.set(max(self.clock.now_ns(), int(ts_ns)))


def segments(batch: TickBatch, times: Sequence[int]) -> Iterator[tuple[TickBatch, int | None]]:
    """``batch`` cut at each of ``times`` (ascending): the rows at or before each time not
    yet given, with that time; then the rest with None. Rows out of time order go with the
    first time at or after them (the data plane's validated batches are ordered per symbol,
    not across symbols)."""
    if not times:
        yield batch, None
        return
    ts = batch.ts_ns
    if len(ts) < 2 or bool(np.all(ts[1:] >= ts[:-1])):
        cuts = np.searchsorted(ts, np.asarray(times, dtype=np.int64), side="right").tolist()
        lo = 0
        for t, hi in zip(times, cuts, strict=True):
            yield (batch.take(slice(lo, hi)) if hi > lo else batch.take(slice(0, 0))), t
            lo = max(lo, hi)
        yield batch.take(slice(lo, len(batch))), None
        return
    fed = np.zeros(len(batch), dtype=bool)
    for t in times:
        rows = np.flatnonzero(~fed & (ts <= t))
        fed[rows] = True
        yield batch.take(rows), t
    yield batch.take(np.flatnonzero(~fed)), None


T = TypeVar("T")
SUB_BATCH_S = 5  # a replay reaches the detectors in batches of this many seconds


def sub_batches(ticks: TickBatch, seconds: float = SUB_BATCH_S) -> Iterator[TickBatch]:
    """A replay's time-ordered chunk in ``seconds``-long pieces from its first tick (the
    batches a live feed would have delivered; empty pieces are skipped)."""
    if not len(ticks):
        return
    step = round(seconds * NS_PER_SECOND)
    edges = np.arange(int(ticks.ts_ns[0]), int(ticks.ts_ns[-1]) + 1, step)
    cuts = np.searchsorted(ticks.ts_ns, edges[1:]).tolist()
    for lo, hi in zip([0, *cuts], [*cuts, len(ticks)], strict=True):
        if hi > lo:
            yield ticks.take(slice(lo, hi))


def run_inline(coro: Coroutine[Any, Any, T]) -> T:
    """Run a step whose ports never wait (in-process detectors, no decisions) without an
    event loop -- callable from sync code, or from inside a running loop. A port that does
    wait is a wiring error, raised rather than blocked on."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("run_inline: a port waited; drive this engine from an event loop")


class Engine:
    """The tick path with its ports plugged in (see the module docstring).

    ``own`` marks the symbols this engine detects and trades (a backtest shard's slice);
    None: all. ``ids(symbol)`` names incidents (a backtest's seeded ids); None: the trip's.
    """

    def __init__(self, market: MarketState, detectors: Detectors,
                 decisions: Decisions | None = None, venue: Venue | None = None,
                 sink: TickSink | None = None, *, own: np.ndarray | None = None,
                 ids: Callable[[str], str] | None = None,
                 outcomes: OutcomeRecorder | None = None) -> None:
        self.market, self.detectors, self.decisions = market, detectors, decisions
        self.venue, self.sink, self.own, self.ids = venue, sink, own, ids
        self.outcomes = outcomes  # [memory] on: realised outcomes, once market time passes
        self.counts: collections.Counter[str] = collections.Counter()

    def _mine(self, batch: TickBatch) -> TickBatch:
        if self.own is None or not len(batch):
            return batch
        return batch.take(self.own[batch.symbol_id])

    def _venue_step(self, part: TickBatch, until_ns: int | None) -> list[Any]:
        assert self.venue is not None
        return self.venue.step(self._mine(part), until_ns)

    async def step(self, batch: TickBatch, *, live: bool = True) -> list[Incident]:
        """One batch of validated ticks through the path; the incidents it made."""
        own = self._mine(batch)
        self.counts["ticks" if live else "warmup_ticks"] += len(own)
        if self.sink is not None and len(own):
            await self.sink.write(own)
        anomalies = await self.detectors.process(own) if len(own) else []
        if not live:  # warm-up: the detectors and the market learn, nothing trades
            self.market.on_ticks(batch)
            return []
        self.counts["anomalies"] += len(anomalies)
        venue = self._venue_step if self.venue is not None else None
        out = await through_trips(self.market, batch, anomalies, venue=venue,
                                  decisions=self.decisions, ids=self.ids)
        self.counts["incidents"] += len(out)
        if self.outcomes is not None:  # after the batch's decisions: never ahead of them
            self.outcomes.add(out)
            self.counts["outcomes"] += await self.outcomes.on_batch(batch)
        return out


async def through_trips(market: MarketState, batch: TickBatch, anomalies: Sequence[Anomaly],
                        *, venue: Callable[[TickBatch, int | None], Any] | None = None,
                        decisions: Decisions | None = None,
                        ids: Callable[[str], str] | None = None) -> list[Incident]:
    """Steps 3-5 of the module docstring, for a batch already scored: cut ``batch`` at
    each trip time; move the market and ``venue(part, until_ns)`` (its result awaited when
    it is awaitable: a remote venue) up to the trip; build the trip's incidents and hand
    them to ``decisions``; then the rest of the batch (the venue's clock to its end)."""
    by_time: dict[int, list[Anomaly]] = {}
    for a in anomalies:
        by_time.setdefault(int(a.ts_ns), []).append(a)
    end_ns = int(batch.ts_ns.max()) if len(batch) else None
    out: list[Incident] = []
    for part, upto in segments(batch, sorted(by_time)):
        market.on_ticks(part)
        if venue is not None:
            moved = venue(part, upto if upto is not None else end_ns)
            if inspect.isawaitable(moved):
                await moved
        if upto is None:
            continue
        incidents = market.incidents(by_time[upto], ids)
        out.extend(incidents)
        if decisions is not None and incidents:
            await decisions.on_incidents(incidents)
    return out
