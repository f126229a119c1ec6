"""FeedActor: runs one feed adapter and drives its ticks through the detector shards.

Inside the actor two tasks share an :class:`~actors.batching.IntakeBuffer`:

* the *intake* pulls chunks from the feed; their dead letters, news and labels go straight
  to the sink, their ticks into the buffer (bounded: a replayable source waits, a live one
  sheds and counts);
* the *dispatcher* cuts batches (size or age, whichever first), splits each by shard and
  submits it. Each shard has at most ``max_inflight`` batches in flight (a semaphore): when
  a shard or the sink falls behind, dispatch waits, the buffer fills, and the intake slows
  or sheds. Memory is bounded at every step.

Results come back as :class:`~actors.shard.ShardResult`; their anomalies are kept (bounded),
forwarded to the sink and to an optional subscriber, and their latencies recorded.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.batching import BatchCutter, IntakeBuffer
from actors.runtime import process_rss_mb
from actors.shard import ShardResult, routing_table
from tripwire.feeds.base import Feed, FeedChunk
from tripwire.model import DeadLetter, DeadReason, SymbolTable, TickBatch, Trips


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """The bounds of one feed's flow (see :class:`actors.pipeline.PipelineConfig`)."""

    batch_rows: int = 50_000
    batch_ms: float = 5.0
    max_inflight: int = 4
    buffer_ticks: int = 2_000_000
    max_sink_inflight: int = 4  # calls in flight to the sink (and to the subscriber)
    keep_trips: int = 1_000_000
    keep_anomalies: int = 10_000
    keep_dead_letters: int = 1_000
    latency_samples: int = 100_000
    live: bool | None = None  # None: ask the feed (its ``live`` attribute, default False)
    store_ticks: bool = True  # False: the sink gets anomalies etc. but not ticks (replay)


class _Samples:
    """A fixed-size ring of int64 samples (latencies), so a long run stays bounded."""

    def __init__(self, size: int) -> None:
        self._buf = np.zeros(max(1, size), dtype=np.int64)
        self._n = 0

    def add(self, values: np.ndarray) -> None:
        for v in values[-len(self._buf):].tolist():
            self._buf[self._n % len(self._buf)] = v
            self._n += 1

    def values(self) -> np.ndarray:
        return self._buf[: min(self._n, len(self._buf))].copy()

    @property
    def count(self) -> int:
        return self._n


class FeedActor:
    """Hosted by Ray as an async actor (``num_cpus=0``); see the module docstring."""

    def __init__(
        self,
        make_feed: Callable[[], Feed],
        symbols: SymbolTable,
        shards: list[Any],
        sink: Any | None = None,
        flow: FlowConfig | None = None,
        subscriber: Any | None = None,
    ) -> None:
        self.flow = flow or FlowConfig()
        # A factory that takes ``sink`` gets the store's actor (replay reads through it).
        wants_sink = "sink" in inspect.signature(make_feed).parameters
        self.feed = make_feed(sink=sink) if wants_sink else make_feed()
        self.source = getattr(self.feed, "source", "feed")
        self.symbols = symbols
        self.shards = shards
        self.sink = sink
        self.subscriber = subscriber
        self.routing = routing_table(symbols, len(shards))
        live = self.flow.live if self.flow.live is not None else getattr(self.feed, "live", False)
        self.buffer = IntakeBuffer(self.flow.buffer_ticks, live=bool(live))
        self.cutter = BatchCutter(self.flow.batch_rows, self.flow.batch_ms)
        self._shard_slots = [asyncio.Semaphore(self.flow.max_inflight) for _ in shards]
        self._sink_slots = asyncio.Semaphore(self.flow.max_sink_inflight)
        self._subscriber_slots = asyncio.Semaphore(self.flow.max_sink_inflight)
        self._inflight = [0] * len(shards)
        self._inflight_high = [0] * len(shards)
        self._tasks: set[asyncio.Task] = set()
        self._trips: list[Trips] = []
        self._trip_rows = 0
        self._anomalies: deque = deque(maxlen=self.flow.keep_anomalies)
        self._dead: deque = deque(maxlen=self.flow.keep_dead_letters)
        self._trip_latency = _Samples(self.flow.latency_samples)
        self._batch_latency = _Samples(self.flow.latency_samples)
        self._c = {
            "chunks": 0, "ticks_in": 0, "ticks_dispatched": 0, "ticks_scored": 0,
            "batches": 0, "trips": 0, "anomalies": 0, "trips_not_kept": 0,
            "anomalies_not_kept": 0, "dead_letters": 0, "gaps": 0, "news": 0, "labels": 0,
            "rejected_by_bank": 0,
        }
        self._dead_by_reason: dict[str, int] = {}
        self._started_ns = 0
        self._last_chunk_ns = 0
        self._finished_ns = 0
        self._error: BaseException | None = None
        self._state = "ready"

    # -- the run -------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Run the feed to its end (or :meth:`stop`); returns the final :meth:`stats`."""
        if self._state != "ready":
            raise RuntimeError(f"feed actor is {self._state}; a FeedActor runs once")
        self._state = "running"
        self._started_ns = time.time_ns()
        intake = asyncio.create_task(self._intake())
        try:
            await self._dispatch_loop()
            await intake
            while self._tasks:
                await asyncio.gather(*list(self._tasks))
        except BaseException as exc:
            self._error = self._error or exc
        finally:
            intake.cancel()
            self._finished_ns = time.time_ns()
            self._state = "failed" if self._error else "done"
        if self._error is not None:
            raise self._error
        return await self.stats()

    async def _intake(self) -> None:
        try:
            async for chunk in self.feed.chunks():
                self._last_chunk_ns = time.time_ns()
                self._c["chunks"] += 1
                await self._side_channels(chunk)
                n = len(chunk.ticks)
                if n:
                    self._c["ticks_in"] += n
                    if not await self.buffer.put(chunk.ticks, n):
                        await self._shed(chunk.ticks)
                if self._error is not None:
                    break
        except BaseException as exc:
            self._error = self._error or exc
        finally:
            await self.buffer.close()

    async def _dispatch_loop(self) -> None:
        while self._error is None:
            deadline = self.cutter.deadline_ns()
            wait_s = 0.05 if deadline is None else max(0.0, (deadline - time.monotonic_ns()) / 1e9)
            ticks = await self.buffer.get(wait_s)
            now = time.monotonic_ns()
            if ticks is not None:
                for batch in self.cutter.add(ticks, now):
                    await self._dispatch(batch)
            if self.cutter.due(now) or (self.buffer.exhausted and self.cutter.pending):
                await self._dispatch(self.cutter.flush())
            if self.buffer.exhausted and not self.cutter.pending:
                return

    async def _dispatch(self, batch: TickBatch) -> None:
        self._c["batches"] += 1
        self._c["ticks_dispatched"] += len(batch)
        for s, part in self._split(batch):
            await self._shard_slots[s].acquire()  # backpressure: wait for a free slot
            self._inflight[s] += 1
            self._inflight_high[s] = max(self._inflight_high[s], self._inflight[s])
            ref = self.shards[s].process.remote(part, self.source)
            first_recv = int(part.recv_ns.min()) if len(part) else 0
            self._track(self._on_result(s, ref, first_recv))
        if self.sink is not None and self.flow.store_ticks:
            await self._to_sink("write_ticks", batch, self.source)

    def _split(self, batch: TickBatch) -> list[tuple[int, TickBatch]]:
        if len(self.shards) == 1:
            return [(0, batch)]
        shard = self.routing[batch.symbol_id]
        order = np.argsort(shard, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(shard, minlength=len(self.shards)))])
        return [
            (s, batch.take(order[bounds[s] : bounds[s + 1]]))
            for s in range(len(self.shards))
            if bounds[s + 1] > bounds[s]
        ]

    def _track(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_result(self, s: int, ref: Any, first_recv_ns: int) -> None:
        try:
            res: ShardResult = await ref
        except BaseException as exc:
            self._error = self._error or exc
            return
        finally:
            self._inflight[s] -= 1
            self._shard_slots[s].release()
        self._c["ticks_scored"] += res.ticks - res.rejected
        self._c["rejected_by_bank"] += res.rejected
        if first_recv_ns > 0:
            self._batch_latency.add(np.array([res.processed_ns - first_recv_ns]))
        self._keep_trips(res.trips)
        if res.anomalies:
            await self._publish(res.anomalies)

    def _keep_trips(self, trips: Trips) -> None:
        if not len(trips):
            return
        self._c["trips"] += len(trips)
        room = self.flow.keep_trips - self._trip_rows
        if room < len(trips):
            self._c["trips_not_kept"] += len(trips) - max(room, 0)
            if room <= 0:
                return
            trips = Trips(**{k: getattr(trips, k)[:room] for k in Trips.__dataclass_fields__})
        self._trips.append(trips)
        self._trip_rows += len(trips)

    async def _publish(self, anomalies: list) -> None:
        self._c["anomalies"] += len(anomalies)
        overflow = len(self._anomalies) + len(anomalies) - self.flow.keep_anomalies
        self._c["anomalies_not_kept"] += max(0, overflow)
        self._anomalies.extend(anomalies)
        lat = np.array([a.detected_ns - a.recv_ns for a in anomalies if a.recv_ns > 0], np.int64)
        if len(lat):
            self._trip_latency.add(lat)
        if self.subscriber is not None:
            await self._send(self.subscriber, self._subscriber_slots, "on_anomalies", anomalies)
        if self.sink is not None:
            await self._to_sink("write_anomalies", anomalies)

    async def _to_sink(self, method: str, *args: Any) -> None:
        await self._send(self.sink, self._sink_slots, method, *args)

    async def _send(self, actor: Any, slots: asyncio.Semaphore, method: str, *args: Any) -> None:
        """Call ``actor.method`` with at most the slots' count of calls in flight."""
        await slots.acquire()  # backpressure: a slow sink or subscriber slows dispatch
        ref = getattr(actor, method).remote(*args)

        async def done() -> None:
            try:
                await ref
            except BaseException as exc:
                self._error = self._error or exc
            finally:
                slots.release()

        self._track(done())

    async def _side_channels(self, chunk: FeedChunk) -> None:
        if chunk.dead:
            await self._dead_letters(chunk.dead)
        self._c["gaps"] += len(chunk.gaps)
        for kind, items in (("news", chunk.news), ("labels", chunk.labels)):
            if items:
                self._c[kind] += len(items)
                if self.sink is not None:
                    await self._to_sink(f"write_{kind}", items)

    async def _dead_letters(self, items: list[DeadLetter]) -> None:
        self._c["dead_letters"] += len(items)
        for d in items:
            self._dead_by_reason[d.reason.value] = self._dead_by_reason.get(d.reason.value, 0) + 1
        self._dead.extend(items)
        if self.sink is not None:
            await self._to_sink("write_dead_letters", items)

    async def _shed(self, ticks: TickBatch) -> None:
        names = sorted({self.symbols.name(int(s)) for s in np.unique(ticks.symbol_id)})
        raw = (f"{len(ticks)} ticks of {len(names)} symbols ({', '.join(names[:10])}"
               f"{', ...' if len(names) > 10 else ''}), ts {int(ticks.ts_ns.min())}.."
               f"{int(ticks.ts_ns.max())}")
        detail = f"intake buffer full ({self.buffer.ticks} of {self.buffer.max_ticks} ticks)"
        letter = DeadLetter.make(self.source, DeadReason.SHED, raw, time.time_ns(), None, detail)
        self._dead_by_reason["shed_ticks"] = self._dead_by_reason.get("shed_ticks", 0) + len(ticks)
        await self._dead_letters([letter])

    # -- control and observation ----------------------------------------------------------

    async def stop(self) -> None:
        """End the run after the chunk in hand; everything buffered is still scored."""
        if hasattr(self.feed, "stop"):
            res = self.feed.stop()
            if asyncio.iscoroutine(res):
                await res

    async def stats(self) -> dict[str, Any]:
        end = self._finished_ns or time.time_ns()
        return {
            "source": self.source,
            "state": self._state,
            "error": repr(self._error) if self._error else None,
            **self._c,
            "dead_by_reason": dict(self._dead_by_reason),
            "shed_ticks": self.buffer.shed_ticks,
            "shed_chunks": self.buffer.shed_chunks,
            "buffer_ticks": self.buffer.ticks,
            "buffer_high_water": self.buffer.high_water,
            "buffer_bound": self.buffer.max_ticks,
            "inflight": list(self._inflight),
            "inflight_high_water": list(self._inflight_high),
            "inflight_bound": self.flow.max_inflight,
            "elapsed_s": (end - self._started_ns) / 1e9 if self._started_ns else 0.0,
            "last_chunk_ns": self._last_chunk_ns,
            "feed": self.feed.stats() if hasattr(self.feed, "stats") else {},
        }

    async def memory(self) -> dict[str, float]:
        return process_rss_mb()

    async def trips(self) -> Trips:
        """Every trip kept so far (up to ``keep_trips`` rows), global symbol ids."""
        return Trips.concat(self._trips)

    async def anomalies(self, limit: int | None = None) -> list:
        items = list(self._anomalies)
        return items if limit is None else items[-limit:]

    async def dead_letters(self) -> list[DeadLetter]:
        return list(self._dead)

    async def latencies(self) -> dict[str, np.ndarray]:
        """Samples in ns: arrival -> trip event, and arrival of a batch's first tick -> done."""
        return {"trip": self._trip_latency.values(), "batch": self._batch_latency.values()}
