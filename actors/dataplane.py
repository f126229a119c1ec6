"""The data plane behind an HTTP or feed intake: validate, store, score, hand over incidents.

:class:`DataPlane` owns one :class:`~actors.shard.DetectorShard` Ray actor per shard and,
with a tick-store URL, the :class:`~actors.sink.TickSink` actor (the store's only writer).
``ingest`` takes a batch in arrival order: validation splits off dead letters (kept in the
decision store with their reason), the clean ticks go to the sink and to their shards
concurrently, and the shards' anomalies become incidents (:class:`IncidentBuilder`) handed
to ``on_incidents`` — the Serve app's sign-off deployment. Batches are ingested one at a
time (a lock): validation and the detectors depend on arrival order.

Heartbeats: ``feed:<source>`` on every batch, and ``shard:<i>`` from :meth:`beat` only when
that shard actor answers a ping, so a dead shard's heartbeat goes stale and the watchdog
halts trading.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actors.incidents import IncidentBuilder
from actors.shard import DetectorShard, routing_table
from tripwire import telemetry
from tripwire.config import TimeSettings
from tripwire.feeds.validate import TickValidator, TimeWindow
from tripwire.llm.incident import Incident
from tripwire.model import Anomaly, DeadLetter, NewsItem, SymbolTable, TickBatch, Trips
from tripwire.store.decisions import DecisionStore

OnIncidents = Callable[[list[Incident], dict[str, str] | None], Awaitable[Any]]
OnClean = Callable[[TickBatch], Awaitable[Any]]
PING_TIMEOUT_S = 2.0
SETTLE_TIMEOUT_S = 120.0  # the longest a replay waits for one incident's decision


@dataclass(frozen=True, slots=True)
class DataPlaneConfig:
    n_shards: int = 2
    detector: dict | None = None
    store_url: str | None = None  # None: ticks are scored, not kept
    sink_flush_rows: int = 100_000
    sink_flush_ms: int = 1_000
    max_batch_ticks: int = 100_000  # a bigger POST is refused (422), not split silently
    source: str = "http"
    max_kept_trips: int = 1_000_000  # trips kept for evaluation; beyond it, counted only
    sync_decisions: bool = False  # a replay on market time: the ticks wait for decisions
    # The time window of ticks and news ([time]); market time when None and sync_decisions.
    time: TimeSettings = field(default_factory=TimeSettings)
    market_time: bool | None = None


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    rejected: int
    trips: int
    incidents: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": self.rejected, "trips": self.trips,
                "incidents": list(self.incidents)}


class DataPlane:
    def __init__(self, symbols: SymbolTable, config: DataPlaneConfig, store: DecisionStore,
                 on_incidents: OnIncidents, *, on_clean: OnClean | None = None,
                 idle: Callable[[], Awaitable[bool]] | None = None,
                 ray_metrics: Any = None) -> None:
        self.symbols = symbols
        self.config = config
        self.store = store
        self.on_incidents = on_incidents
        self.on_clean = on_clean  # the venue and prices see every clean tick, in order
        self.idle = idle  # sync_decisions: True once the handed-over incidents are decided
        self.ray_metrics = ray_metrics
        market = config.sync_decisions if config.market_time is None else config.market_time
        self.validator = TickValidator(
            source=config.source, symbols=symbols,
            window=TimeWindow.from_settings(config.time, market=market))
        self.builder = IncidentBuilder(symbols)
        self.routing = routing_table(symbols, config.n_shards)
        self.shards: list[Any] = []
        self.sink: Any = None
        self._lock = asyncio.Lock()
        self._trips: list[Trips] = []
        self._trace: dict[str, str] = {}
        self._kept_trips = 0
        self._c = {"batches": 0, "ticks_in": 0, "accepted": 0, "dead_letters": 0, "trips": 0,
                   "incidents": 0, "news": 0, "news_bad_time": 0, "shard_errors": 0,
                   "trips_not_kept": 0}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> DataPlane:
        import ray

        cfg = self.config
        shard_cls = ray.remote(DetectorShard).options(num_cpus=0, max_concurrency=1)
        self.shards = [shard_cls.remote(i, cfg.n_shards, self.symbols, cfg.detector)
                       for i in range(cfg.n_shards)]
        if cfg.store_url is not None:
            from actors.sink import TickSink

            self.sink = ray.remote(TickSink).options(num_cpus=0).remote(
                cfg.store_url, self.symbols, flush_rows=cfg.sink_flush_rows,
                flush_ms=cfg.sink_flush_ms)
        ray.get([s.ping.remote() for s in self.shards])  # construction errors surface here
        if self.sink is not None:
            ray.get(self.sink.stats.remote())
        return self

    async def close(self) -> dict[str, Any]:
        """Flush and close the tick store (nothing buffered is lost), end the actors."""
        import ray

        from actors.runtime import kill_and_wait

        out: dict[str, Any] = {}
        async with self._lock:  # an ingest in flight finishes first
            if self.sink is not None:
                out = await self.sink.close.remote()
                await asyncio.to_thread(kill_and_wait, self.sink)
            for s in self.shards:
                ray.kill(s)
            self.sink, self.shards = None, []
        return out

    # -- intake ------------------------------------------------------------------------------

    async def ingest(self, batch: TickBatch, now_ns: int,
                     raw: Sequence[str] | None = None) -> IngestResult:
        if len(batch) > self.config.max_batch_ticks:
            raise ValueError(f"ticks: a batch holds at most {self.config.max_batch_ticks} "
                             f"ticks, got {len(batch)}")
        async with self._lock:
            return await self._ingest(batch, now_ns, raw)

    async def _ingest(self, batch: TickBatch, now_ns: int,
                      raw: Sequence[str] | None) -> IngestResult:
        with telemetry.span("dataplane.ingest", ticks=len(batch)):
            self._trace = telemetry.inject()  # one trace from this batch to the orders
            checked = self.validator.validate(self._number(batch), raw)
            clean = checked.ticks
            self._c["batches"] += 1
            self._c["ticks_in"] += len(batch)
            self._c["accepted"] += len(clean)
            await self._dead_letters(checked.dead)
            writes = [self.sink.write_ticks.remote(clean, self.config.source)] if (
                self.sink is not None and len(clean)) else []
            sync = self.config.sync_decisions and self.on_clean is not None
            if self.on_clean is not None and len(clean) and not sync:
                writes.append(self.on_clean(clean))  # live: the venue sees the batch now
            anomalies = await self._score(clean)
            incidents = await self._incidents(clean, anomalies, sync)
            await asyncio.gather(*writes)
        self._c["trips"] += len(anomalies)
        self._c["incidents"] += len(incidents)
        await self.store.heartbeat(f"feed:{self.config.source}", now_ns,
                                   f"{len(batch)} ticks")
        if incidents and not sync:
            await self.on_incidents(incidents, self._trace or None)
        if self.ray_metrics is not None:
            self.ray_metrics.ticks(len(clean))
            self.ray_metrics.trips(len(anomalies))
            for _ in incidents:
                self.ray_metrics.incident()
        return IngestResult(len(clean), len(checked.dead), len(anomalies),
                            tuple(i.id for i in incidents))

    async def _incidents(self, clean: TickBatch, anomalies: list[Anomaly],
                         sync: bool) -> list[Incident]:
        """Build each incident from the market as it was at its trip (context, news), not
        at the batch's end. ``sync`` (a replay on market time): the venue and the prices
        also move only up to each trip, the incident is handed over, and the next ticks
        wait until its decision is made -- as if the market had waited for the agents."""
        fed = np.zeros(len(clean), dtype=bool)
        groups: dict[int, list[Anomaly]] = {}
        for a in anomalies:
            groups.setdefault(a.ts_ns, []).append(a)
        out: list[Incident] = []
        for ts in sorted(groups):
            await self._advance(clean, fed, ts, sync)
            built = self.builder.build(groups[ts])
            out.extend(built)
            if sync and built:
                await self.on_incidents(built, self._trace or None)
                await self._settle()
        await self._advance(clean, fed, None, sync)
        return out

    async def _advance(self, clean: TickBatch, fed: np.ndarray, upto_ns: int | None,
                       sync: bool) -> None:
        todo = ~fed if upto_ns is None else ~fed & (clean.ts_ns <= upto_ns)
        rows = np.flatnonzero(todo)
        if not len(rows):
            return
        fed[rows] = True
        part = clean if len(rows) == len(clean) else clean.take(rows)  # no copy: no trips
        self.builder.on_ticks(part)
        if sync:
            await self.on_clean(part)

    def _number(self, batch: TickBatch) -> TickBatch:
        """Ticks sent without a trade id (0) get the next ids of their symbol, so the
        validator's duplicate check (ids must rise) passes them; ticks with ids are judged
        as sent."""
        rows = np.flatnonzero(batch.trade_id == 0)
        if not len(rows):
            return batch
        tid = batch.trade_id.copy()
        sym = batch.symbol_id[rows]
        for s in np.unique(sym):
            mine = rows[sym == s]
            tid[mine] = self.validator.last_trade_id(int(s)) + 1 + np.arange(len(mine))
        return TickBatch(batch.symbol_id, batch.ts_ns, batch.price, batch.qty, batch.side,
                         tid, batch.recv_ns)

    async def _score(self, clean: TickBatch) -> list[Anomaly]:
        if not len(clean):
            return []
        parts = self._split(clean)
        results = await asyncio.gather(
            *(self.shards[s].process.remote(part, self.config.source) for s, part in parts),
            return_exceptions=True)
        anomalies: list[Anomaly] = []
        for (s, part), res in zip(parts, results, strict=True):
            if isinstance(res, BaseException):
                # The ticks are stored; they are not scored. Recorded, never silent.
                self._c["shard_errors"] += 1
                await self.store.dead_letter(
                    time.time_ns(), self.config.source, "shard_unavailable", None,
                    f"shard {s} failed: {type(res).__name__}: {res}"[:500],
                    f"{len(part)} ticks not scored")
                continue
            anomalies.extend(res.anomalies)
            self._keep(res.trips)
        return anomalies

    def _keep(self, trips: Trips) -> None:
        if not len(trips.ts_ns):
            return
        if self._kept_trips + len(trips.ts_ns) > self.config.max_kept_trips:
            self._c["trips_not_kept"] += len(trips.ts_ns)
            return
        self._kept_trips += len(trips.ts_ns)
        self._trips.append(trips)

    def trips(self) -> Trips:
        """Every trip kept so far (for scoring a labelled replay)."""
        return Trips.concat(self._trips)

    def _split(self, batch: TickBatch) -> list[tuple[int, TickBatch]]:
        shard = self.routing[batch.symbol_id]
        return [(int(s), batch.take(np.flatnonzero(shard == s))) for s in np.unique(shard)]

    async def _dead_letters(self, items: list[DeadLetter]) -> None:
        self._c["dead_letters"] += len(items)
        for d in items:
            await self.store.dead_letter(d.ts_ns, d.source, d.reason.value, d.symbol,
                                         d.detail, d.raw)

    async def on_news(self, items: Sequence[NewsItem]) -> dict[str, int]:
        """Take the headlines whose time is in the feed's window (the ticks' window: the
        wall clock live, the ticks' market clock on a replay); the others are dead letters
        ``bad_time``. How many were accepted and rejected."""
        ok, late = [], []
        for item in items:
            why = self.validator.time_refusal(item.ts_ns)
            (ok if why is None else late).append((item, why))
        for item, why in late:
            await self.store.dead_letter(time.time_ns(), f"{self.config.source}-news",
                                         "bad_time", None, why, item.headline[:500])
        accepted = [item for item, _ in ok]
        self._c["news"] += len(accepted)
        self._c["news_bad_time"] += len(late)
        self.builder.on_news(accepted)
        if self.sink is not None and accepted:
            self.sink.write_news.remote(accepted)
        return {"accepted": len(accepted), "rejected": len(late)}

    # -- health ------------------------------------------------------------------------------

    async def _settle(self) -> None:
        """Until everything handed over is decided (polled; bounded by SETTLE_TIMEOUT_S)."""
        if self.idle is None:
            return
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not await self.idle() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def heartbeats(self, interval_s: float) -> None:
        """Ping the shards and write their heartbeats every ``interval_s``, until cancelled."""
        while True:
            try:
                await self.beat(time.time_ns())
            except Exception:  # the database is down: the watchdog sees no heartbeat
                pass
            await asyncio.sleep(interval_s)

    async def beat(self, now_ns: int) -> dict[str, bool]:
        """Ping every shard; write the heartbeat of each that answers."""
        alive = {}
        for i, s in enumerate(self.shards):
            try:
                await asyncio.wait_for(s.ping.remote(), PING_TIMEOUT_S)
                alive[f"shard:{i}"] = True
                await self.store.heartbeat(f"shard:{i}", now_ns, "ping ok")
            except Exception:  # dead or stuck: no heartbeat, so it goes stale
                alive[f"shard:{i}"] = False
        return alive

    async def flush(self) -> None:
        if self.sink is not None:
            await self.sink.flush.remote()

    async def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self._c, **self.builder.stats(),
                               "validator": self.validator.counters(),
                               "time_window": self.validator.time_stats()}
        if self.sink is not None:
            out["sink"] = await self.sink.stats.remote()
        return out
