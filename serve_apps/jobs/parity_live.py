"""Parity leg (c): the live driver on market time, one backtest task at a time.

The live Serve app's parts, plugged into the one engine (:class:`tripwire.engine.Engine`)
the backtest runs, per task of the backtest plan (a fresh live engine per task, fed the
task's ticks and news in order, so positions and PnL compare):

- **detectors**: :class:`actors.ray_detectors.RayDetectors`, the data plane's own detectors
  port over the Ray shard actors (:class:`actors.shard.DetectorShard`, seeded ids, no
  restarts: a failing shard fails the leg);
- **decisions**: the :class:`serve_apps.orchestrator.Orchestrator` the SignOff deployment
  wraps (not the Serve deployment handle: starting the Serve app per task would cost more
  than the whole backtest; the class gets the deployment's ports: PostgreSQL store and
  checkpointer, the paper book, the LLM stack with its PostgreSQL ledger, its worker
  tasks). As the data plane's market-time replay does (``sync_decisions``), a trip's
  incidents are submitted and the ticks wait until they are decided; a TWO_PHASE decision
  waiting for approval is approved as the backtest approves it;
- **venue**: the orchestrator's paper venue (``on_ticks``) on a :class:`SimClock` the ticks
  move (market time).

Each task gets a database of its own (created here, dropped after), so nothing carries
over between tasks. Ids derive from the task's seed exactly as in the backtest
(``actors.backtest``'s per-symbol generators, ``DecisionDeps.seeded_ids``). The ticks
reach the engine in ``batch_s``-second batches (1 s by default, not the backtest's 5 s:
the engine cuts every batch at its trips, so the batching must not matter, and this leg
checks it). Records come back in :func:`actors.backtest.run_shard`'s shape.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import tempfile
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np

from actors.backtest import (
    APPROVER,
    ShardConfig,
    ShardSpec,
    _llm_config,
    _seed_of,
    _split,
    data_for,
    run_records,
    warm_start,
)
from actors.ray_detectors import RayDetectors
from graphs.runner import DecisionResult
from tripwire.config import Settings
from tripwire.decisions.outcome import AWAITING_APPROVAL
from tripwire.engine import Engine, MarketState
from tripwire.engine.step import sub_batches
from tripwire.incident import Incident
from tripwire.model import SimClock, TickBatch, new_id

SETTLE_TIMEOUT_S = 120.0  # the longest one trip's decisions may take before the leg fails
LIVE_BATCH_S = 1.0


class _OrchestratorVenue:
    """The engine's venue step on the orchestrator's paper venue (prices, market clock)."""

    def __init__(self, orch: Any) -> None:
        self.orch = orch

    def step(self, batch: TickBatch, until_ns: int | None = None) -> Any:
        return self.orch.on_ticks(batch, until_ns)


class _LiveDecisions:
    """The engine's decisions port: submit a trip's incidents to the orchestrator and wait
    until they are decided (market time waits for the agents); collect the results."""

    def __init__(self, orch: Any) -> None:
        self.orch = orch
        self.incidents: list[Incident] = []
        self.skipped: dict[str, DecisionResult] = {}

    async def on_incidents(self, incidents: Sequence[Incident]) -> None:
        answers = await self.orch.submit([i.model_dump(mode="json") for i in incidents])
        for inc, ans in zip(incidents, answers, strict=True):
            self.incidents.append(inc)
            if ans["status"] != "queued":
                self.skipped[inc.id] = DecisionResult(ans["id"], inc.symbol, "SKIPPED",
                                                      ans["status"])
        await self.settle()

    async def settle(self) -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            while not await self.orch.idle():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"live leg: decisions not made in {SETTLE_TIMEOUT_S}s")
                await asyncio.sleep(0.002)
            waiting = [r for r in self.orch.results
                       if r.outcome == AWAITING_APPROVAL and r.decision_id is not None
                       and not self._answered(r.decision_id)]
            if not waiting:
                return
            for r in waiting:
                await self.orch.approve(r.decision_id, APPROVER, "backtest auto-approval")

    def _answered(self, decision_id: str) -> bool:
        return any(r.decision_id == decision_id and r.outcome != AWAITING_APPROVAL
                   for r in self.orch.results)

    def results(self) -> list[tuple[Incident, DecisionResult]]:
        """Each incident with where it ended (the last result of its decision)."""
        final: dict[str, DecisionResult] = {}
        for r in self.orch.results:
            final[r.incident_id] = r
        out = []
        for inc in self.incidents:
            r = self.skipped.get(inc.id) or final.get(inc.id)
            if r is None:
                raise RuntimeError(f"live leg: incident {inc.id} was queued and never decided")
            out.append((inc, r))
        return out


@asynccontextmanager
async def task_database(admin_dsn: str, label: str):
    """A database of its own for one task, dropped after."""
    import asyncpg

    name = f"twparity_{label.replace('-', '_').lower()}_{random.getrandbits(32):08x}"
    name = "".join(c for c in name if c.isalnum() or c == "_")[:63]
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield admin_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def live_settings(settings: Settings, config: ShardConfig, data_dir: str) -> Settings:
    """The live service's settings for a parity task: the plan's decisions, detector and
    engine settings, the backtest's LLM stack (never a paid route), the paper venue."""
    return dataclasses.replace(
        settings, data_dir=data_dir, decisions=config.decisions, detector=config.detector,
        engine=config.engine, llm=_llm_config(config),
        execution=settings.execution.model_copy(update={"broker": "paper"}))


async def run_live_task(spec: ShardSpec, config: ShardConfig, settings: Settings,
                        admin_dsn: str, *, n_shards: int = 2, workers: int = 2,
                        batch_s: float = LIVE_BATCH_S) -> dict[str, Any]:
    """One backtest task through the live parts; its records (``run_shard``'s shape)."""
    from serve_apps.orchestrator import Orchestrator

    if not (isinstance(batch_s, int | float) and 0 < batch_s < float("inf")):
        raise ValueError(f"batch_s: seconds per live batch must be > 0, got {batch_s!r}")
    data = data_for(spec)
    syms = data.symbols
    mine = np.zeros(max(len(syms), 1), dtype=bool)
    mine[[syms.id(s) for s in spec.symbols]] = True
    clock = SimClock(warm_start(spec))
    rngs = {s: random.Random(_seed_of(spec.seed, s, spec.start_ns)) for s in spec.symbols}

    def id_for(symbol: str) -> str:
        return new_id(clock, rngs[symbol])

    with tempfile.TemporaryDirectory(prefix="tw-parity-live-") as data_dir:
        async with task_database(admin_dsn, spec.label) as dsn:
            orch = Orchestrator(live_settings(settings, config, data_dir), dsn, syms,
                                workers=workers, clock=clock,
                                decision_ids=lambda inc: id_for(inc.symbol))
            await orch.start()
            detectors = RayDetectors(syms, n_shards, config.detector, source="parity",
                                     id_seed=spec.seed)
            try:
                market = MarketState(syms, config.engine)
                market.on_news(data.news)  # incidents read only headlines at or before a trip
                decisions = _LiveDecisions(orch)
                engine = Engine(market, detectors, decisions, _OrchestratorVenue(orch),
                                own=mine, ids=id_for)
                for chunk in data.chunks:
                    for part, live in _split(chunk, spec.start_ns, spec.end_ns):
                        for batch in sub_batches(part, batch_s):
                            await engine.step(batch, live=live)
                records = await run_records(spec.label, orch.parts.store,
                                            orch.parts.venue.broker, decisions.results())
            finally:
                detectors.close()
                await orch.close()
    return {"label": spec.label, "records": records,
            **{k: int(engine.counts[k]) for k in ("ticks", "warmup_ticks", "anomalies",
                                                  "incidents")}}


async def run_live(specs: Sequence[ShardSpec], config: ShardConfig, settings: Settings,
                   admin_dsn: str, **kw: Any) -> list[dict[str, Any]]:
    """Every task through the live parts, one after another (each on its own database)."""
    return [await run_live_task(spec, config, settings, admin_dsn, **kw) for spec in specs]
