"""The data plane behind an HTTP or feed intake: validate, then the engine's one step.

:class:`DataPlane` validates each batch (dead letters kept in the decision store with their
reason) and hands the clean ticks to :meth:`tripwire.engine.Engine.step` -- the same tick
path the backtest runs -- with the live mode's ports plugged in:

- **detectors**: :class:`actors.ray_detectors.RayDetectors`, one
  :class:`~actors.shard.DetectorShard` Ray actor per shard (restarts, checkpoints; a
  shard's failed part is dead-lettered ``shard_unavailable``: stored, not scored);
- **sink**: with a tick-store URL, the :class:`~actors.sink.TickSink` actor (the store's
  only writer) as the engine's TickSink port: the write is sent before scoring and awaited
  at the batch's end, so scoring does not wait for it and the next batch does;
- **decisions**: ``on_incidents`` (the Serve app's sign-off deployment): a trip's incidents
  are handed over (queued) as the engine reaches them; on market time
  (``sync_decisions``) the ticks then wait until they are decided, as if the market had
  waited for the agents;
- **venue**: ``on_clean(part, until_ns)`` (the orchestrator's ``on_ticks``: the paper
  venue, the prices, and on market time the clock, moved to ``until_ns`` as
  :class:`tripwire.engine.Venue` does): the batch up to each trip, then the rest;
- **outcomes**: with ``[memory]`` on, the engine's
  :class:`~tripwire.engine.outcomes.OutcomeRecorder` on the decision store.

Batches are ingested one at a time (a lock): validation and the detectors depend on arrival
order.

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

Self-healing: shard actors are created with ``max_restarts`` (bounded) and checkpoint every
``checkpoint_every_batches`` batches or ``checkpoint_every_s`` seconds (the port,
:mod:`actors.ray_detectors`). A restarted shard is handed its checkpoint on the next batch or
heartbeat, whichever comes first; the plane counts the restart and writes a
``shard_unavailable`` dead letter and a bus message saying how many ticks scored after the
checkpoint are missing from its windows (they are stored; only their scoring state is
lost). The batch in flight when the actor died is dead-lettered ``shard_unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.ray_detectors import COUNTERS, RayDetectors, Restart
from tripwire import telemetry
from tripwire.config import TimeSettings
from tripwire.decisions.memory import MemorySettings
from tripwire.engine import Engine, EngineSettings, MarketState
from tripwire.engine.outcomes import outcome_recorder
from tripwire.feeds.validate import TickValidator, TimeWindow
from tripwire.incident import Incident
from tripwire.model import DeadLetter, NewsItem, SymbolTable, TickBatch, Trips, new_id
from tripwire.store.decisions import DecisionStore
from tripwire.store.trade_ids import NO_ID, TradeIds

OnIncidents = Callable[[list[Incident], dict[str, str] | None], Awaitable[Any]]
OnClean = Callable[[TickBatch, int | None], Awaitable[Any]]  # (ticks, until_ns): the venue
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
    # [memory]: on, the engine records each incident's realised outcome in the store
    memory: MemorySettings = field(default_factory=MemorySettings)

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
        self._market_time = market
        # One rule for ticks without an exchange id, the tick store's (0 = not sent, too).
        self._trade_ids = TradeIds(config.source, missing=(NO_ID, 0))
        self.validator = TickValidator(
            source=config.source, symbols=symbols,
            window=TimeWindow.from_settings(config.time, market=market))
        self.market = MarketState(symbols, config.engine)
        self.detectors: RayDetectors | None = None  # the engine's ports, from start()
        self.engine: Engine | None = None
        self.sink: Any = None
        self._sink_port: _SinkPort | None = None
        self._hand_over = _HandOver(self, wait=False)
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
                   "ticks_lost_to_restarts": 0, "checkpoints": 0, "checkpoint_bytes": 0,
                   "outcomes": 0}
        assert set(COUNTERS) <= set(self._c)  # the detectors port counts into these

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def shards(self) -> list[Any]:
        """The detector shard actors (operations and tests: a dead one stops its heartbeat)."""
        return self.detectors.shards if self.detectors is not None else []

    def start(self) -> DataPlane:
        import ray

        cfg = self.config
        self.detectors = RayDetectors(
            self.symbols, cfg.n_shards, cfg.detector, source=cfg.source,
            max_restarts=cfg.shard_max_restarts, probability_symbols=cfg.probability_symbols,
            checkpoint_every_batches=cfg.checkpoint_every_batches,
            checkpoint_every_s=cfg.checkpoint_every_s, on_error=self._shard_failed,
            on_restart=self._restarted, on_trips=self._keep, counts=self._c)
        if cfg.store_url is not None:
            from actors.sink import TickSink

            self.sink = ray.remote(TickSink).options(num_cpus=0).remote(
                cfg.store_url, self.symbols, flush_rows=cfg.sink_flush_rows,
                flush_ms=cfg.sink_flush_ms)
            self._sink_port = _SinkPort(self.sink, cfg.source)
        sync = cfg.sync_decisions and self.on_clean is not None
        venue = _VenuePort(self.on_clean, self._market_time) if self.on_clean else None
        self._hand_over = _HandOver(self, wait=sync)
        self.engine = Engine(self.market, self.detectors, self._hand_over, venue,
                             self._sink_port,
                             outcomes=outcome_recorder(self.store, cfg.memory, self.symbols))
        self.detectors.wait_ready()  # construction errors surface here
        if self.sink is not None:
            ray.get(self.sink.stats.remote())
        return self

    async def close(self) -> dict[str, Any]:
        """Flush and close the tick store (nothing buffered is lost), end the actors."""
        from actors.runtime import kill_and_wait

        out: dict[str, Any] = {}
        async with self._lock:  # an ingest in flight finishes first
            if self.sink is not None:
                out = await self.sink.close.remote()
                await asyncio.to_thread(kill_and_wait, self.sink)
            if self.detectors is not None:
                self.detectors.close()
            self.sink, self._sink_port = None, None
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
        if self.engine is None:
            raise RuntimeError("the data plane is not started")
        with telemetry.span("dataplane.ingest", ticks=len(batch)):
            self._trace = telemetry.inject()  # one trace from this batch to the orders
            checked = self.validator.validate(self._number(batch), raw)
            clean = checked.ticks
            self._c["batches"] += 1
            self._c["ticks_in"] += len(batch)
            self._c["accepted"] += len(clean)
            await self._dead_letters(checked.dead)
            counts = self.engine.counts
            trips, outcomes = counts["anomalies"], counts["outcomes"]
            try:  # the engine's one step: sink, detectors, incidents, decisions, venue
                incidents = await self.engine.step(clean)
            finally:  # the batch's tick-store write is awaited whatever happened
                if self._sink_port is not None:
                    await self._sink_port.settle()
            trips = counts["anomalies"] - trips
        self._c["trips"] += trips
        self._c["incidents"] += len(incidents)
        self._c["outcomes"] += counts["outcomes"] - outcomes
        try:
            await self.store.heartbeat(f"feed:{self.config.source}", now_ns,
                                       f"{len(batch)} ticks")
        except Exception:  # the database is down: the batch is applied all the same (the
            pass  # watchdog sees the heartbeat go stale, as with the shard heartbeats)
        failed = self._hand_over.take_failure()
        if failed is not None:  # the batch is applied; its incidents did not all get out
            raise failed
        if self.ray_metrics is not None:
            self.ray_metrics.ticks(len(clean))
            self.ray_metrics.trips(trips)
            for _ in incidents:
                self.ray_metrics.incident()
        return IngestResult(len(clean), len(checked.dead), trips,
                            tuple(i.id for i in incidents))

    def _number(self, batch: TickBatch) -> TickBatch:
        """Ticks sent without a trade id (0, the HTTP body's default) get the tick store's
        deterministic id (:mod:`tripwire.store.trade_ids`: negative, so the validator checks
        them on time only), which makes a re-sent tick the same trade in the store; ticks
        with ids are judged as sent."""
        return self._trade_ids.assign(batch, self.symbols)

    async def _shard_failed(self, s: int, part: TickBatch, exc: BaseException) -> None:
        """A shard's part of a batch failed (the detectors port counted it): its ticks are
        stored, not scored. Recorded, never silent."""
        await self.store.dead_letter(
            time.time_ns(), self.config.source, "shard_unavailable", None,
            f"shard {s} failed: {type(exc).__name__}: {exc}"[:500],
            f"{len(part)} ticks not scored")

    async def recover_shard(self, s: int) -> bool:
        """Hand shard ``s`` its last checkpoint if it is a restarted incarnation waiting for
        one (the restart is recorded). True when this call restored it."""
        assert self.detectors is not None
        return await self.detectors.recover(s)

    async def _restarted(self, r: Restart) -> None:
        """A shard restart as a ``shard_unavailable`` dead letter and a bus message."""
        what = (f"restored the checkpoint after batch {r.checkpoint_seq}"
                if r.checkpoint_seq >= 0 else "no checkpoint yet: started empty")
        detail = (f"shard {r.shard} was restarted (restart {r.restarts} of at most "
                  f"{self.config.shard_max_restarts}); {what}; {r.ticks_lost} tick(s) "
                  f"scored after it are missing from its windows (stored, not re-scored)")
        now = time.time_ns()
        with contextlib.suppress(Exception):  # the database may be the reason: keep going
            await self.store.dead_letter(now, self.config.source, "shard_unavailable",
                                         None, detail, f"{r.ticks_lost} ticks")
        with contextlib.suppress(Exception):
            await self.store.append_message(None, f"shard:{r.shard}", "watchdog",
                                            "shard_restarted",
                                            {"shard": r.shard, "restarts": r.restarts,
                                             "checkpoint_seq": r.checkpoint_seq,
                                             "ticks_lost": r.ticks_lost}, now)

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
                restarts = self.detectors.state[i].restarts if self.detectors else 0
                await self.store.heartbeat(f"shard:{i}", now_ns,
                                           f"ping ok restarts={restarts}")
            except Exception:  # dead or stuck: no heartbeat, so it goes stale
                alive[f"shard:{i}"] = False
        return alive

    async def flush(self) -> None:
        if self.sink is not None:
            await self.sink.flush.remote()

    def shard_states(self) -> list[dict[str, Any]]:
        """Per shard: restarts, the checkpoint's batch and size, what came after it."""
        return self.detectors.states() if self.detectors is not None else []

    async def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self._c, **self.market.stats(),
                               "validator": self.validator.counters(),
                               "time_window": self.validator.time_stats()}
        if self.sink is not None:
            out["sink"] = await self.sink.stats.remote()
        return out


class _HandOver:
    """The engine's decisions port: hand a trip's incidents to ``on_incidents`` (the
    sign-off deployment: queued) with the batch's trace; ``wait`` (market time): then wait
    until they are decided (bounded by SETTLE_TIMEOUT_S).

    On the wall clock a hand-over that fails does not stop the batch half-way (the market
    state, the venue and the store still take all of it, and the later trips are still
    handed over): the first failure is kept in :attr:`failed` and the plane raises it once
    the batch is through. On market time it raises at once (the replay stops there)."""

    def __init__(self, plane: DataPlane, *, wait: bool) -> None:
        self.plane, self.wait = plane, wait
        self.failed: Exception | None = None

    async def on_incidents(self, incidents: Sequence[Incident]) -> None:
        try:
            await self.plane.on_incidents(list(incidents), self.plane._trace or None)
        except Exception as exc:
            if self.wait:
                raise
            self.failed = self.failed or exc
            return
        if self.wait:
            await self.plane._settle()

    def take_failure(self) -> Exception | None:
        failed, self.failed = self.failed, None
        return failed


class _SinkPort:
    """The engine's TickSink port on the tick-store sink actor: ``write`` sends the batch
    and returns (scoring does not wait for the store); :meth:`settle` awaits what was sent
    -- the plane calls it at the batch's end, so the next batch waits for the store."""

    def __init__(self, actor: Any, source: str) -> None:
        self.actor, self.source = actor, source
        self.pending: list[Any] = []

    async def write(self, batch: TickBatch) -> None:
        self.pending.append(self.actor.write_ticks.remote(batch, self.source))

    async def settle(self) -> None:
        pending, self.pending = self.pending, []
        await asyncio.gather(*pending)


class _VenuePort:
    """The engine's venue step on ``on_clean`` (the orchestrator's ``on_ticks``, whose
    :class:`tripwire.engine.Venue` moves the paper venue, the prices and, on market time,
    the clock -- to ``until_ns``, the segment's end over every symbol). An empty part is
    sent only on market time, where it still moves the clock."""

    def __init__(self, on_clean: OnClean, market_time: bool) -> None:
        self.on_clean, self.market_time = on_clean, market_time

    def step(self, part: TickBatch, until_ns: int | None = None) -> Awaitable[Any] | None:
        if not len(part) and (until_ns is None or not self.market_time):
            return None
        return self.on_clean(part, until_ns)
