"""The data plane behind an HTTP or feed intake: validate, store, score, hand over incidents.

:class:`DataPlane` owns one :class:`~actors.shard.DetectorShard` Ray actor per shard and,
with a tick-store URL, the :class:`~actors.sink.TickSink` actor (the store's only writer).
``ingest`` takes a batch in arrival order: validation splits off dead letters (kept in the
decision store with their reason), the clean ticks go to the sink and to their shards
concurrently, and the shards' anomalies become incidents (the engine's
:class:`~tripwire.engine.MarketState` and :func:`~tripwire.engine.step.through_trips`) handed
to ``on_incidents`` — the Serve app's sign-off deployment. Batches are ingested one at a
time (a lock): validation and the detectors depend on arrival order.

Idempotent ingest (:meth:`DataPlane.ingest_once`): a batch sent with an id (the HTTP
``Idempotency-Key``) is applied at most once. The id is *claimed* in the decision store
before anything is applied (record-then-apply: a database that is down refuses the claim,
nothing happens and a retry is safe), remembered in memory from the first side effect on,
and given its result after. A retry of an applied batch gets the first result back; a retry
of a batch a fault stopped part-way is refused (:class:`BatchOutcomeUnknown`), never applied
twice; a batch applied whose result could not be recorded (the database went away) answers
:class:`BatchNotRecorded` and its retry records and returns the result. Ids are kept
``batch_id_retention_s`` in the store and the last ``max_remembered_batches`` in memory.

Heartbeats: ``feed:<source>`` on every batch, and ``shard:<i>`` from :meth:`beat` only when
that shard actor answers a ping, so a dead shard's heartbeat goes stale and the watchdog
halts trading. The shard heartbeat's detail carries ``restarts=<n>``; the watchdog logs each
new restart.

Self-healing: shard actors are created with ``max_restarts`` (bounded). Every
``checkpoint_every_batches`` batches or ``checkpoint_every_s`` seconds (whichever first) a
shard returns its detector bank's checkpoint with a batch's result, and the plane keeps the
latest one per shard. A restarted shard refuses to score until it is restored; the plane
(on the next batch, or on the next heartbeat, whichever comes first) hands it that
checkpoint, counts the restart, and writes a ``shard_unavailable`` dead letter and a bus
message saying how many ticks scored after the checkpoint are missing from its windows
(they are stored; only their scoring state is lost). The batch in flight when the actor died
is dead-lettered ``shard_unavailable`` as before. Process calls are never retried by Ray
(``max_task_retries=0``): a retry could reach the new incarnation before its restore; the
shard also ignores a batch sequence number it has applied already.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actors.shard import DetectorShard, ShardNotRestored, routing_table
from tripwire import telemetry
from tripwire.config import TimeSettings
from tripwire.engine import EngineSettings, MarketState
from tripwire.engine.step import through_trips
from tripwire.feeds.validate import TickValidator, TimeWindow
from tripwire.incident import Incident
from tripwire.model import (
    Anomaly,
    DeadLetter,
    NewsItem,
    SymbolTable,
    TickBatch,
    Trips,
    new_id,
)
from tripwire.store.decisions import DecisionStore
from tripwire.store.trade_ids import NO_ID, TradeIds

OnIncidents = Callable[[list[Incident], dict[str, str] | None], Awaitable[Any]]
OnClean = Callable[[TickBatch], Awaitable[Any]]
PING_TIMEOUT_S = 2.0
RESTORE_TIMEOUT_S = 30.0  # a restarted shard's restore from the heartbeat loop
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
    batch_id_retention_s: float = 7 * 86_400.0  # how long a batch id guards against a retry
    max_remembered_batches: int = 10_000  # batch ids (and results) kept in memory too
    shard_max_restarts: int = 3  # Ray restarts of one shard actor; then it stays dead
    checkpoint_every_batches: int = 20  # per shard; 1 = after every batch
    checkpoint_every_s: float = 5.0  # per shard: at most this old when a batch arrives
    # [engine]: the market reference and the market state's bounds (news window)
    engine: EngineSettings = field(default_factory=EngineSettings)
    # Symbols whose prices are probabilities (a prediction market's instrument provider,
    # e.g. PolymarketWebSocketFeed.probability_symbols()): scored on log-odds changes.
    probability_symbols: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.shard_max_restarts, bool) or not (
                isinstance(self.shard_max_restarts, int) and 0 <= self.shard_max_restarts
                <= 1_000):
            raise ValueError(f"shard_max_restarts must be an integer in [0, 1000], got "
                             f"{self.shard_max_restarts!r}")
        if isinstance(self.checkpoint_every_batches, bool) or not (
                isinstance(self.checkpoint_every_batches, int)
                and self.checkpoint_every_batches >= 1):
            raise ValueError(f"checkpoint_every_batches must be an integer >= 1, got "
                             f"{self.checkpoint_every_batches!r}")
        if not (isinstance(self.checkpoint_every_s, int | float)
                and 0 < self.checkpoint_every_s < float("inf")):
            raise ValueError(f"checkpoint_every_s must be a number > 0, got "
                             f"{self.checkpoint_every_s!r}")


@dataclass
class _ShardState:
    """The plane's memory of one shard: its last checkpoint and what came after it."""

    next_seq: int = 0
    checkpoint: bytes | None = None
    checkpoint_seq: int = -1
    checkpoint_at: float = 0.0  # time.monotonic() when it was taken
    batches_since: int = 0  # batches applied after the checkpoint
    ticks_since: int = 0  # ticks scored after the checkpoint (lost to the windows on a crash)
    restarts: int = 0


class BatchKeyReused(ValueError):
    """The batch id was used before for a different body (the API answers 422)."""


class BatchOutcomeUnknown(RuntimeError):
    """A fault stopped this batch id part-way (or a restart lost what it did): it is not
    applied again (the API answers 409; send the ticks again under a new id after checking
    what was stored)."""


class BatchNotRecorded(RuntimeError):
    """The batch was applied but its id and result could not be recorded (the database is
    unavailable); a retry under the same id records and returns the result (the API
    answers 503)."""


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
        # One rule for ticks without an exchange id, the tick store's (0 = not sent, too).
        self._trade_ids = TradeIds(config.source, missing=(NO_ID, 0))
        self.validator = TickValidator(
            source=config.source, symbols=symbols,
            window=TimeWindow.from_settings(config.time, market=market))
        self.market = MarketState(symbols, config.engine)
        self.routing = routing_table(symbols, config.n_shards)
        self.shards: list[Any] = []
        self.sink: Any = None
        self._lock = asyncio.Lock()
        self._trips: list[Trips] = []
        self._trace: dict[str, str] = {}
        self._kept_trips = 0
        self._instance = new_id()  # who claims batch ids (a restart is another instance)
        # batch id -> (digest, result or None while/after a part-way fault, recorded?)
        self._batches: OrderedDict[str, tuple[str, dict[str, Any] | None, bool]] = \
            OrderedDict()
        self._claims = 0
        self._c = {"batches": 0, "ticks_in": 0, "accepted": 0, "dead_letters": 0, "trips": 0,
                   "incidents": 0, "news": 0, "news_bad_time": 0, "shard_errors": 0,
                   "trips_not_kept": 0,
                   "shard_restarts": 0, "shard_restores_empty": 0,
                   "ticks_lost_to_restarts": 0, "checkpoints": 0, "checkpoint_bytes": 0}
        self._state: list[_ShardState] = []
        self._restore_lock = asyncio.Lock()  # ingest and the heartbeat both may restore

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> DataPlane:
        import ray

        cfg = self.config
        # max_task_retries=0: a process call in flight when the actor dies fails (its ticks
        # are dead-lettered); a retry could reach the new incarnation before its restore.
        shard_cls = ray.remote(DetectorShard).options(
            num_cpus=0, max_concurrency=1, max_restarts=cfg.shard_max_restarts,
            max_task_retries=0)
        self.shards = [shard_cls.remote(i, cfg.n_shards, self.symbols, cfg.detector,
                                        probability_symbols=cfg.probability_symbols)
                       for i in range(cfg.n_shards)]
        self._state = [_ShardState(checkpoint_at=time.monotonic())
                       for _ in range(cfg.n_shards)]
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

    async def ingest_once(self, batch: TickBatch, now_ns: int, *, batch_id: str | None = None,
                          digest: str = "", dead: Sequence[DeadLetter] = ()
                          ) -> tuple[dict[str, Any], bool]:
        """Ingest ``batch`` (``dead``: its rows already refused upstream, recorded and
        counted with it) at most once per ``batch_id``: (result, replayed). Without an id
        every call applies the batch."""
        if len(batch) > self.config.max_batch_ticks:
            raise ValueError(f"ticks: a batch holds at most {self.config.max_batch_ticks} "
                             f"ticks, got {len(batch)}")
        async with self._lock:
            if batch_id is None:
                return await self._apply(batch, now_ns, dead), False
            known = self._batches.get(batch_id)
            if known is not None:
                return await self._known(batch_id, digest, known, now_ns), True
            if self._claims % 256 == 0:  # bounded retention of the store's batch ids
                await self.store.prune_ingest_batches(
                    now_ns - int(self.config.batch_id_retention_s * 1e9))
            self._claims += 1
            prior = await self.store.claim_ingest_batch(batch_id, digest, self._instance,
                                                        now_ns)
            if prior is not None:  # claimed before (by this or an earlier instance)
                if prior.digest != digest:
                    raise BatchKeyReused(f"batch id {batch_id!r} was used for another body")
                if prior.result is None:
                    raise BatchOutcomeUnknown(
                        f"batch {batch_id!r} was stopped part-way by a fault (or a restart) "
                        "and is not applied again")
                return dict(prior.result), True
            self._remember(batch_id, (digest, None, False))  # from here on: never again
            result = await self._apply(batch, now_ns, dead)
            self._remember(batch_id, (digest, result, False))
            await self._record(batch_id, digest, result)
            return result, False

    async def _apply(self, batch: TickBatch, now_ns: int,
                     dead: Sequence[DeadLetter]) -> dict[str, Any]:
        await self._dead_letters(list(dead))
        out = (await self._ingest(batch, now_ns, None)).to_dict()
        out["rejected"] += len(dead)
        return out

    async def _known(self, batch_id: str, digest: str,
                     known: tuple[str, dict[str, Any] | None, bool],
                     now_ns: int) -> dict[str, Any]:
        seen_digest, result, recorded = known
        if seen_digest != digest:
            raise BatchKeyReused(f"batch id {batch_id!r} was used for another body")
        if result is None:
            raise BatchOutcomeUnknown(f"batch {batch_id!r} was stopped part-way by a fault "
                                      "and is not applied again")
        if not recorded:
            await self._record(batch_id, digest, result)
        return dict(result)

    async def _record(self, batch_id: str, digest: str, result: dict[str, Any]) -> None:
        try:
            await self.store.finish_ingest_batch(batch_id, result, time.time_ns())
        except Exception as exc:
            raise BatchNotRecorded(
                f"batch {batch_id!r} was applied but its result could not be recorded "
                f"({type(exc).__name__}); retry with the same id to get it") from exc
        self._remember(batch_id, (digest, result, True))

    def _remember(self, batch_id: str,
                  entry: tuple[str, dict[str, Any] | None, bool]) -> None:
        self._batches[batch_id] = entry
        self._batches.move_to_end(batch_id)
        while len(self._batches) > self.config.max_remembered_batches:
            self._batches.popitem(last=False)  # the store still knows it (retention)

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
        try:
            await self.store.heartbeat(f"feed:{self.config.source}", now_ns,
                                       f"{len(batch)} ticks")
        except Exception:  # the database is down: the batch is applied all the same (the
            pass  # watchdog sees the heartbeat go stale, as with the shard heartbeats)
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
        """The engine's walk through the batch's trips (:func:`through_trips`): each
        incident is built from the market as it was at its trip (context, news), not at
        the batch's end. ``sync`` (a replay on market time): the venue and the prices also
        move only up to each trip, the incident is handed over, and the next ticks wait
        until its decision is made -- as if the market had waited for the agents."""
        return await through_trips(self.market, clean, anomalies,
                                   venue=self._venue if sync else None,
                                   decisions=_HandOver(self) if sync else None)

    async def _venue(self, part: TickBatch, _until_ns: int | None) -> None:
        if len(part) and self.on_clean is not None:
            await self.on_clean(part)  # the orchestrator's venue step (its clock follows)

    def _number(self, batch: TickBatch) -> TickBatch:
        """Ticks sent without a trade id (0, the HTTP body's default) get the tick store's
        deterministic id (:mod:`tripwire.store.trade_ids`: negative, so the validator checks
        them on time only), which makes a re-sent tick the same trade in the store; ticks
        with ids are judged as sent."""
        return self._trade_ids.assign(batch, self.symbols)

    async def _score(self, clean: TickBatch) -> list[Anomaly]:
        if not len(clean):
            return []
        parts = self._split(clean)
        results = await asyncio.gather(*(self._process(s, part) for s, part in parts),
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

    async def _process(self, s: int, part: TickBatch) -> Any:
        """One shard's part of a batch, restoring the shard first if Ray restarted it."""
        st = self._state[s]
        for _ in range(2):  # at most one restore per batch: a second refusal is a failure
            cfg = self.config
            due = (st.batches_since + 1 >= cfg.checkpoint_every_batches
                   or time.monotonic() - st.checkpoint_at >= cfg.checkpoint_every_s)
            try:
                res = await self.shards[s].process.remote(part, cfg.source, st.next_seq, due)
            except Exception as exc:
                if not _is_not_restored(exc):
                    raise
                await self.recover_shard(s)
                continue
            st.next_seq += 1
            if res.checkpoint is not None:
                self._checkpointed(st, res.checkpoint, st.next_seq - 1)
            else:
                st.batches_since += 1
                st.ticks_since += res.ticks
            return res
        raise ShardNotRestored(f"shard {s} still refuses to score after a restore")

    def _checkpointed(self, st: _ShardState, blob: bytes, seq: int) -> None:
        st.checkpoint, st.checkpoint_seq = blob, seq
        st.checkpoint_at, st.batches_since, st.ticks_since = time.monotonic(), 0, 0
        self._c["checkpoints"] += 1
        self._c["checkpoint_bytes"] = len(blob)  # the latest one's size (bounded by the bank)

    async def recover_shard(self, s: int) -> bool:
        """Hand shard ``s`` its last checkpoint if it is a restarted incarnation waiting for
        one; record the restart. True when this call restored it."""
        async with self._restore_lock:
            st = self._state[s]
            if not await self.shards[s].recover.remote(st.checkpoint):
                return False
            st.restarts += 1
            lost, st.ticks_since, st.batches_since = st.ticks_since, 0, 0
            st.checkpoint_at = time.monotonic()
            self._c["shard_restarts"] += 1
            self._c["ticks_lost_to_restarts"] += lost
            if st.checkpoint is None:
                self._c["shard_restores_empty"] += 1
            what = (f"restored the checkpoint after batch {st.checkpoint_seq}"
                    if st.checkpoint is not None else "no checkpoint yet: started empty")
            detail = (f"shard {s} was restarted (restart {st.restarts} of at most "
                      f"{self.config.shard_max_restarts}); {what}; {lost} tick(s) scored "
                      f"after it are missing from its windows (stored, not re-scored)")
            now = time.time_ns()
            with contextlib.suppress(Exception):  # the database may be the reason: keep going
                await self.store.dead_letter(now, self.config.source, "shard_unavailable",
                                             None, detail, f"{lost} ticks")
            with contextlib.suppress(Exception):
                await self.store.append_message(None, f"shard:{s}", "watchdog",
                                                "shard_restarted",
                                                {"shard": s, "restarts": st.restarts,
                                                 "checkpoint_seq": st.checkpoint_seq,
                                                 "ticks_lost": lost}, now)
            return True

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
        self.market.on_news(accepted)
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
        """Ping every shard (restoring one Ray restarted); write the heartbeat of each that
        answers and is restored. The detail says how often it was restarted."""
        alive = {}
        for i, s in enumerate(self.shards):
            try:
                waiting = await asyncio.wait_for(s.waiting_for_restore.remote(),
                                                 PING_TIMEOUT_S)
                if waiting:  # a big bank takes a while to unpickle: a longer bound
                    await asyncio.wait_for(self.recover_shard(i), RESTORE_TIMEOUT_S)
                alive[f"shard:{i}"] = True
                await self.store.heartbeat(f"shard:{i}", now_ns,
                                           f"ping ok restarts={self._state[i].restarts}")
            except Exception:  # dead or stuck: no heartbeat, so it goes stale
                alive[f"shard:{i}"] = False
        return alive

    async def flush(self) -> None:
        if self.sink is not None:
            await self.sink.flush.remote()

    def shard_states(self) -> list[dict[str, Any]]:
        """Per shard: restarts, the checkpoint's batch and size, what came after it."""
        return [{"shard": i, "restarts": st.restarts, "checkpoint_seq": st.checkpoint_seq,
                 "checkpoint_bytes": len(st.checkpoint or b""), "next_seq": st.next_seq,
                 "batches_since_checkpoint": st.batches_since,
                 "ticks_since_checkpoint": st.ticks_since} for i, st in enumerate(self._state)]

    async def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self._c, **self.market.stats(),
                               "validator": self.validator.counters(),
                               "time_window": self.validator.time_stats()}
        if self.sink is not None:
            out["sink"] = await self.sink.stats.remote()
        return out


class _HandOver:
    """The engine's decisions port on market time: hand a trip's incidents to the
    sign-off deployment and wait until they are decided."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def on_incidents(self, incidents: Sequence[Incident]) -> None:
        await self.plane.on_incidents(list(incidents), self.plane._trace or None)
        await self.plane._settle()


def _is_not_restored(exc: BaseException) -> bool:
    """A shard's ShardNotRestored, as Ray delivers it (a RayTaskError subclassing it, or
    wrapping it as its cause)."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, ShardNotRestored):
            return True
        seen = getattr(seen, "cause", None) or seen.__cause__
    return False
