"""One backtest shard: a slice of symbols and time replayed through the whole decision path.

:func:`run_shard` is the per-task work of ``serve_apps.jobs.backtest`` as a plain function
(tested without Ray); :data:`run_shard_task` is its Ray remote wrapper. Given a
:class:`ShardSpec` (a scenario config or tick-store URL, the shard's symbols and its window
``[start_ns, end_ns)``) it

1. replays the source's ticks in 5-second sub-batches (:func:`tripwire.engine.step.sub_batches`)
   through the engine (:class:`tripwire.engine.Engine`, the step every mode runs): every
   symbol's ticks feed the market state, only the shard's symbols the detectors (an
   in-process :class:`DetectorShard`), the backtest broker's venue and the prices;
2. before ``start_ns`` only warms the detectors and the market state up (no incidents, no
   orders);
3. cuts each sub-batch at its trip times: the market and the venue move up to the trip,
   the trips of one tick become one incident (:meth:`MarketState.incidents`);
4. submits them to a :class:`graphs.runner.DecisionRunner` (intake cool-down, triage and
   sign-off) and drains it before the next tick, on a :class:`MemoryDecisionStore`,
   LangGraph's ``InMemorySaver``, the rules analyst (or a cassette in replay/strict mode)
   and the :class:`BacktestBroker`, whose :class:`~tripwire.model.SimClock` follows the
   data: an order placed at a trip fills against the ticks after it;
5. returns a plain, JSON-ready dict (incidents, verdicts by class, outcomes, orders, fills,
   PnL in total and per symbol, LLM calls and cost).

Determinism: nothing reads the wall clock or an unseeded random source on the decision
path. Incident and decision ids are UUIDv7s drawn from a per-symbol generator seeded with
``(seed, symbol, start_ns)``, so a symbol's ids do not depend on which other symbols share
its shard. Detectors, incidents and the market context do not depend on the grouping
either (detectors are per symbol; the context reads every symbol's ticks). The account is
per shard: risk limits that look at the whole account (exposure, daily loss breaker) see
only the shard's own positions, so decisions can differ between groupings unless each
symbol is its own group (``--groups`` >= the number of symbols).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import hashlib
import os
import random
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray

from actors.shard import DetectorShard
from actors.triage import SKILLS_DIR
from graphs.deps import DecisionDeps, build_deps
from graphs.runner import DecisionResult, DecisionRunner
from tripwire.decisions.config import DecisionConfig
from tripwire.decisions.outcome import AWAITING_APPROVAL
from tripwire.decisions.prices import LatestPrices
from tripwire.detect import DetectorConfig
from tripwire.engine import Engine, EngineSettings, LocalDetectors, MarketState, Venue
from tripwire.engine.outcomes import outcome_recorder
from tripwire.engine.step import sub_batches
from tripwire.execution.factory import build_broker
from tripwire.feeds.scenario import Scenario, ScenarioConfig
from tripwire.incident import Incident
from tripwire.llm.config import LLMConfig, load_llm_config
from tripwire.llm.factory import build_llm
from tripwire.llm.ledger import InMemoryLedger
from tripwire.llm.skills import SkillLoader
from tripwire.model import NS_PER_SECOND, NewsItem, SimClock, SymbolTable, TickBatch, new_id
from tripwire.store.decisions import MemoryDecisionStore

CASSETTE_MODES = ("replay", "strict")  # a backtest never records (that would spend money)
STORE_PAGE_ROWS = 200_000  # ticks per tick-store page
MAX_NEWS = 100_000  # news items per task window (a day of a busy feed is a few thousand)
APPROVER = "backtest"  # who approves TWO_PHASE decisions in a backtest (recorded as such)


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """One task: ``symbols`` over ``[start_ns, end_ns)`` from a scenario or a tick store.

    ``scenario`` is a ``ScenarioConfig.to_dict()`` (replayed from its start: the generator
    and the detectors carry state); ``store_url`` a tick-store URL (ticks are read from
    ``start_ns - warmup_s``). ``seed`` seeds the ids. The data may also be handed to
    :func:`run_shard` already read (chdb allows one process per directory, so the job
    reads it for the tasks).
    """

    label: str
    symbols: tuple[str, ...]
    start_ns: int
    end_ns: int
    scenario: dict[str, Any] | None = None
    store_url: str | None = None
    warmup_s: float = 0.0
    seed: int = 0


@dataclass(frozen=True, slots=True)
class ShardConfig:
    """What every task shares: decision and detector settings and the LLM to use."""

    decisions: DecisionConfig = field(default_factory=DecisionConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    llm: LLMConfig | None = None  # None: the offline rules analyst only
    cassette_text: str | None = None  # a cassette's JSONL, replayed from a private file
    cassette_mode: str = "replay"
    skills_dir: str | None = None  # None: this checkout's skills/ (resolved in the worker)
    engine: EngineSettings = field(default_factory=EngineSettings)  # market reference, bounds
    # Also return every record (incidents, decisions, proposals, signatures, orders, fills,
    # positions, PnL) under "records", for tripwire parity (tripwire.engine.parity).
    records: bool = False


@dataclass(slots=True)
class ShardData:
    """Ticks (in replay order, ids in ``symbols``) and news, read ahead by the caller."""

    symbols: SymbolTable
    chunks: Iterable[TickBatch]
    news: list[NewsItem]


# ----------------------------------------------------------------------------- sources


def scenario_data(spec: ShardSpec) -> ShardData:
    sc = Scenario(ScenarioConfig.from_dict(spec.scenario or {}))
    return ShardData(sc.symbols, (c.ticks for c in sc.blocks()), list(sc.news))


def store_data(url: str, start_ns: int, end_ns: int) -> ShardData:
    """Every stored symbol's ticks over ``[start_ns, end_ns)`` (the market context needs
    them all) and the news of that time, read eagerly: the store is closed on return."""
    from tripwire.store.ticks import TickStore

    with TickStore(url) as store:
        symbols = SymbolTable(store.symbols())
        chunks = list(store.replay(symbols, start_ns=start_ns, end_ns=end_ns,
                                   chunk_rows=STORE_PAGE_ROWS))
        news = store.news(start_ns=start_ns, end_ns=end_ns, limit=MAX_NEWS + 1)
    if len(news) > MAX_NEWS:  # refuse rather than replay with news silently missing
        raise ValueError(f"more than {MAX_NEWS} news items in the window: shorten the period")
    return ShardData(symbols, chunks, news)


def data_for(spec: ShardSpec) -> ShardData:
    if spec.scenario is not None:
        return scenario_data(spec)
    if spec.store_url is not None:
        return store_data(spec.store_url, warm_start(spec), spec.end_ns)
    raise ValueError(f"shard {spec.label}: neither a scenario nor a store URL")


def warm_start(spec: ShardSpec) -> int:
    return spec.start_ns - int(spec.warmup_s * NS_PER_SECOND)


# ----------------------------------------------------------------------------- the run


def run_shard(spec: ShardSpec, config: ShardConfig | None = None,
              data: ShardData | None = None) -> dict[str, Any]:
    """Replay one shard through detection, triage, sign-off and the backtest broker."""
    if not spec.symbols:
        raise ValueError(f"shard {spec.label}: no symbols")
    if spec.end_ns <= spec.start_ns:
        raise ValueError(f"shard {spec.label}: end_ns must be after start_ns")
    config = config or ShardConfig()
    data = data if data is not None else data_for(spec)
    missing = [s for s in spec.symbols if s not in data.symbols]
    if missing:
        raise ValueError(f"shard {spec.label}: symbols not in the data: {', '.join(missing)}")
    llm = _llm_config(config)
    return asyncio.run(_Replay(spec, config, data, llm).run())


def _llm_config(config: ShardConfig) -> LLMConfig:
    if config.cassette_text is None:
        return config.llm or load_llm_config({})
    if config.cassette_mode not in CASSETTE_MODES:
        raise ValueError(f"cassette mode must be one of {', '.join(CASSETTE_MODES)}, "
                         f"got {config.cassette_mode!r}")
    path = _cassette_file(config.cassette_text)
    # strict: a miss fails the triage (fail closed); replay: a miss falls back to the rules.
    return load_llm_config({
        "routes": [{"name": "cassette", "provider": "cassette",
                    "options": {"path": str(path), "mode": config.cassette_mode}}],
        "rules_fallback": config.cassette_mode == "replay"})


class _SeededRunner(DecisionRunner):
    """A DecisionRunner whose decision ids come from ``ids`` (reproducible backtests)."""

    def __init__(self, deps: DecisionDeps, ids: Callable[[str], str]) -> None:
        super().__init__(deps)
        self._ids = ids

    async def decide(self, incident: Incident, triaged: dict[str, Any],
                     decision_id: str | None = None) -> DecisionResult:
        return await super().decide(incident, triaged, decision_id or self._ids(incident.symbol))


class _Replay:
    """One shard's replay: the engine's ports (an in-process detector shard, the decision
    runner, the backtest broker's venue) plugged in, and the results collected."""

    def __init__(self, spec: ShardSpec, config: ShardConfig, data: ShardData,
                 llm: LLMConfig) -> None:
        self.spec, self.data, self.config = spec, data, config
        syms = data.symbols
        mine = np.zeros(max(len(syms), 1), dtype=bool)
        mine[[syms.id(s) for s in spec.symbols]] = True
        # The one broker factory every driver uses; a replay is always a backtest broker
        # (its own SimClock starts at the warm-up, the ticks move it), so only the shard's
        # decisions settings are read.
        start = warm_start(spec)
        built = build_broker(config, syms, SimClock(start), kind="backtest", start_ns=start)
        self.broker = built.broker
        self.prices = LatestPrices(syms)
        market = MarketState(syms, config.engine)
        market.on_news(data.news)  # an incident reads only headlines at or before its trip
        self.rngs = {s: random.Random(_seed_of(spec.seed, s, spec.start_ns))
                     for s in spec.symbols}
        self.ledger = InMemoryLedger()
        self.stack = build_llm(llm, ledger=self.ledger, rng=random.Random(spec.seed))
        deps = build_deps(
            built.broker, built.backend, blocking_broker=built.blocking,
            store=MemoryDecisionStore(), router=self.stack.router,
            skills=SkillLoader(config.skills_dir or SKILLS_DIR), config=config.decisions,
            prices=self.prices, clock=self.broker.clock, seeded_ids=True)
        self.store = deps.store
        self.runner = _SeededRunner(deps, self._id_for)
        self.results: list[tuple[Incident, DecisionResult]] = []
        self.queued: dict[str, Incident] = {}  # submitted, waiting for the drain
        shard = DetectorShard(0, 1, syms, config.detector, id_seed=spec.seed)
        self.engine = Engine(market, LocalDetectors(shard), self,
                             Venue(self.broker, self.prices, self.broker.clock),
                             own=mine, ids=self._id_for,
                             outcomes=outcome_recorder(self.store, config.decisions.memory,
                                                       syms))

    def _id_for(self, symbol: str) -> str:
        return new_id(self.broker.clock, self.rngs[symbol])

    async def run(self) -> dict[str, Any]:
        try:
            for chunk in self.data.chunks:
                for part, live in _split(chunk, self.spec.start_ns, self.spec.end_ns):
                    for batch in sub_batches(part):
                        await self.engine.step(batch, live=live)
            records = await self._records() if self.config.records else None
        finally:
            await self.stack.aclose()
        report = self._report()
        if records is not None:
            report["records"] = records
        return report

    async def _records(self) -> dict[str, list[dict[str, Any]]]:
        return await run_records(self.spec.label, self.store, self.broker, self.results)

    async def on_incidents(self, incidents: Sequence[Incident]) -> None:
        """The engine's decisions port: submit, then drain (decided before the next tick)."""
        await self._decide(list(incidents))

    async def _decide(self, incidents: list[Incident]) -> None:
        for inc in incidents:
            skipped = await self.runner.submit(inc)
            if skipped is not None:
                self.results.append((inc, skipped))
            else:
                self.queued[inc.id] = inc
        for r in await self.runner.drain():
            if r.outcome == AWAITING_APPROVAL and r.decision_id is not None:
                r = await self.runner.approve(r.decision_id, APPROVER, "backtest auto-approval")
            self.results.append((self.queued.pop(r.incident_id), r))

    # -- report ---------------------------------------------------------------------------

    def _report(self) -> dict[str, Any]:
        account = self.broker.account()
        fills, orders = self.broker.fills(), self.broker.orders()
        return {
            "label": self.spec.label,
            "symbols": list(self.spec.symbols),
            "start_ns": self.spec.start_ns,
            "end_ns": self.spec.end_ns,
            **{k: int(self.engine.counts[k]) for k in ("ticks", "warmup_ticks", "anomalies",
                                                       "incidents")},
            "intake": dict(sorted(self.runner.intake.counts.items())),
            "verdicts": _counted(r.verdict for _, r in self.results if r.verdict),
            "outcomes": _counted(_outcome_key(r) for _, r in self.results),
            # [memory]: realised outcomes the engine recorded (added, recorded, dropped, refused)
            "memory_outcomes": (dict(sorted(self.engine.outcomes.counts.items()))
                                if self.engine.outcomes is not None else None),
            "orders": len(orders),
            "fills": len(fills),
            "realised_pnl": account.realised_pnl,
            "unrealised_pnl": account.unrealised_pnl,
            "fees": account.fees,
            "initial_cash": account.initial_cash,
            "per_symbol": self._per_symbol(fills, orders),
            "llm": self._llm(),
            "decisions": [_decision_row(inc, r) for inc, r in self.results],
        }

    def _per_symbol(self, fills, orders) -> dict[str, dict[str, Any]]:
        positions = self.broker.positions()
        out = {}
        for s in sorted(self.spec.symbols):
            pos = positions.get(s)
            out[s] = {
                "orders": sum(o.request.symbol == s for o in orders),
                "fills": sum(f.symbol == s for f in fills),
                "realised_pnl": float(pos.realised_pnl) if pos else 0.0,
                "unrealised_pnl": float(pos.unrealised_pnl) if pos else 0.0,
                "fees": float(sum(f.fee for f in fills if f.symbol == s)),
                "position_qty": float(pos.qty) if pos else 0.0,
            }
        return out

    def _llm(self) -> dict[str, Any]:
        rows, stats = self.ledger.totals(by=("route", "model")), self.stack.router.stats
        return {
            "calls": int(stats["calls"]),
            "answered": int(stats["answered"]),
            # Calls without an answer (the router raises some errors without counting them).
            "failed": int(stats["calls"] - stats["answered"]),
            "input_tokens": sum(r.input_tokens for r in rows),
            "output_tokens": sum(r.output_tokens for r in rows),
            "cost_usd": sum(r.cost_usd for r in rows),
            "by_route": {f"{r.route}/{r.model}": {"calls": r.calls, "ok": r.ok,
                                                  "cost_usd": r.cost_usd} for r in rows},
        }


def _cassette_file(text: str) -> Path:
    """The cassette as a local file named by its content's hash: the same path in every
    run and worker, so error messages that name it stay reproducible. Written atomically
    (tasks on one node may write it at once); never modified (replay does not record)."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    path = Path(tempfile.gettempdir()) / f"tw-backtest-cassette-{digest}.jsonl"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tw-cassette-")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return path


def _split(chunk: TickBatch, start_ns: int, end_ns: int) -> Iterator[tuple[TickBatch, bool]]:
    """``chunk`` cut into its warm-up part (before ``start_ns``) and its live part."""
    lo, hi = np.searchsorted(chunk.ts_ns, [start_ns, end_ns]).tolist()
    if lo > 0:
        yield chunk.take(slice(0, lo)), False
    if hi > lo:
        yield chunk.take(slice(lo, hi)), True


def _seed_of(seed: int, symbol: str, start_ns: int) -> int:
    digest = hashlib.sha256(f"{seed}|{symbol}|{start_ns}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _counted(keys: Iterable[str]) -> dict[str, int]:
    return dict(sorted(collections.Counter(keys).items()))


def _outcome_key(r: DecisionResult) -> str:
    # SKIPPED carries its cause in the reason ("coalesced into <id>", "skipped: overload").
    if r.outcome == "SKIPPED":
        return "COALESCED" if r.reason.startswith("coalesced") else "SKIPPED"
    return r.outcome


def _plain(x: Any) -> Any:
    """Dataclasses, enums and containers as JSON-ready values (for the records)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, enum.Enum):
        return x.value
    return x


async def run_records(label: str, store: Any, broker: Any,
                      results: Sequence[tuple[Incident, Any]]) -> dict[str, list[Any]]:
    """Every record of a run, plain and JSON-ready, for a record-by-record parity: one shape
    for every driver (the backtest here, the live parity leg)."""
    proposals, signatures = [], []
    for d in [r.decision_id for _, r in results if r.decision_id]:
        p = await store.proposal(d)
        if p is not None:
            proposals.append({"decision_id": d, **_plain(p)})
        signatures += [{"decision_id": d, **_plain(s)} for s in await store.signatures(d)]
    account = broker.account()
    return {
        "incidents": [inc.model_dump(mode="json") for inc, _ in results],
        "decisions": [_decision_row(inc, r) for inc, r in results],
        "proposals": proposals,
        "signatures": signatures,
        "orders": [_plain(o) for o in broker.orders()],
        "fills": [_plain(f) for f in broker.fills()],
        "positions": [_plain(p) for p in broker.positions().values()],
        "pnl": [{"label": label, "realised_pnl": account.realised_pnl,
                 "unrealised_pnl": account.unrealised_pnl, "fees": account.fees,
                 "equity": account.equity}],
    }


def _decision_row(inc: Incident, r: DecisionResult) -> dict[str, Any]:
    return {"symbol": inc.symbol, "ts_ns": inc.ts_ns, "metric": inc.metric,
            **{k: v for k, v in dataclasses.asdict(r).items() if k not in ("symbol", "journal")},
            "outcome": _outcome_key(r)}


# Ray wrapper: half a CPU by default (the job overrides it with .options(num_cpus=...)).
run_shard_task = ray.remote(num_cpus=0.5, max_retries=1)(run_shard)
