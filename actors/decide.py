"""`tripwire decide --demo`: scenario incidents through triage and sign-off, in paper mode.

The embedded default end to end: the default scenario's ticks feed a paper venue and the
latest prices; the first news shock, liquidation cascade and fat-finger print become
incidents; each goes through the triage graph and the sign-off graph (the offline rules
analyst unless LLM routes are configured) with PostgreSQL as the decision store and the
LangGraph checkpointer (``TRIPWIRE_PG_DSN``, else the private cluster under the data
directory). After each decision the following minutes of ticks run through the paper venue,
so orders fill and stops or targets trigger; fills and positions go to the store and the
journal file is rewritten. Explain any decision afterwards with ``tripwire explain <id>``.

``--mode`` overrides ``[risk] mode``; TWO_PHASE decisions wait for approval, given here by
``--approve-as NAME`` (the Serve app's approval route does it for a running service).
Exit codes: 0 done, 1 a failure (database, graph), 2 bad input or PostgreSQL missing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from actors.triage import SKILLS_DIR, demo_incidents
from graphs.deps import build_deps
from graphs.runner import DecisionResult, DecisionRunner, postgres_checkpointer
from graphs.signoff import sync_order, write_journal
from tripwire.config import Settings, load_settings
from tripwire.decisions.outcome import AWAITING_APPROVAL
from tripwire.decisions.prices import LatestPrices
from tripwire.engine import Venue
from tripwire.execution.factory import build_broker
from tripwire.feeds.scenario import Scenario, default_scenario_config
from tripwire.llm.factory import build_llm
from tripwire.llm.ledger import JsonlLedger
from tripwire.llm.skills import SkillLoader
from tripwire.metrics import DecisionMetrics
from tripwire.model import NS_PER_SECOND, SimClock, TickBatch
from tripwire.risk.modes import parse_safety_mode
from tripwire.store.journal import journal_root
from tripwire.store.migrate import migrate
from tripwire.store.pg import PgError, PgNotInstalledError, database
from tripwire.store.pg_decisions import PgDecisionStore

VERDICT_DELAY_NS = NS_PER_SECOND  # the triage answers a second after the trip (sim time)
AFTER_S = 1_800  # ticks run through the paper venue after each decision, for fills


def cmd_decide(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    try:
        settings = load_settings(args.config)
        mode = parse_safety_mode(args.mode or settings.decisions.mode, "--mode")
        settings = dataclasses.replace(
            settings, decisions=dataclasses.replace(settings.decisions, mode=mode))
    except ValueError as exc:
        err.print(f"[red]tripwire decide: {exc}[/red]")
        return 2
    try:
        with database(settings.data_dir) as dsn:
            report = asyncio.run(_run(settings, dsn, args, err))
    except PgNotInstalledError as exc:
        err.print(f"[red]tripwire decide: {exc}[/red]")
        return 2
    except (PgError, OSError) as exc:
        err.print(f"[red]tripwire decide: {exc}[/red]")
        return 1
    _print(report, args.json)
    return 0


async def _run(settings: Settings, dsn: str, args: argparse.Namespace, err: Console) -> dict:
    with err.status("finding scenario incidents", spinner="dots"):
        items = demo_incidents(args.seed)
    await migrate(dsn)
    scenario = Scenario(default_scenario_config(args.seed))
    clock = SimClock(0)
    store = await PgDecisionStore.connect(dsn)
    try:
        async with postgres_checkpointer(dsn) as saver:
            demo = _Demo(settings, scenario, clock, store)
            runner = DecisionRunner(demo.deps, saver)
            return await demo.run(runner, items, args, err)
    finally:
        await store.close()
        await demo.deps.router.aclose()


class _Demo:
    """The scenario's clock, prices and paper venue, stepped forward incident by incident."""

    def __init__(self, settings: Settings, scenario: Scenario, clock: SimClock,
                 store: PgDecisionStore) -> None:
        cfg = settings.decisions
        self.prices = LatestPrices(scenario.symbols)
        # On market time the decision demo can only trade the paper venue.
        built = build_broker(settings, scenario.symbols, clock, kind="paper")
        self.paper = built.broker
        self.metrics, self.reader = DecisionMetrics.in_memory()
        ledger = JsonlLedger(Path(settings.data_dir) / "llm_calls.jsonl")
        self.deps = build_deps(
            built.broker, built.backend, store=store, blocking_broker=built.blocking,
            # The router keeps real time: its rate limits and ledger are about real calls.
            router=build_llm(settings.llm, ledger=ledger).router,
            skills=SkillLoader(SKILLS_DIR), config=cfg, prices=self.prices, clock=clock,
            metrics=self.metrics, journal_root=journal_root(Path(settings.data_dir)))
        self.clock = clock
        self.venue = Venue(self.paper, self.prices, clock)  # the engine's venue step
        self._blocks = scenario.blocks()
        self._pending: TickBatch | None = None

    def advance(self, until_ns: int) -> None:
        """Feed every tick up to ``until_ns`` to the venue and the prices."""
        while True:
            batch = self._pending
            if batch is None:
                chunk = next(self._blocks, None)
                if chunk is None:
                    return
                batch = chunk.ticks
            cut = int((batch.ts_ns <= until_ns).sum())
            self._pending = batch.take(slice(cut, len(batch))) if cut < len(batch) else None
            # Market time stands at until_ns once the stream is past it, else at the last tick.
            self.venue.step(batch.take(slice(0, cut)),
                            until_ns if self._pending is not None else None)
            if self._pending is not None:
                return

    async def run(self, runner: DecisionRunner, items, args, err: Console) -> dict:
        rows = []
        for label, incident in sorted(items, key=lambda it: it[1].ts_ns):
            self.advance(incident.ts_ns + VERDICT_DELAY_NS)
            with err.status(f"deciding {incident.symbol} ({label.kind.value})", spinner="dots"):
                result = await runner.handle(incident)
                if result.outcome == AWAITING_APPROVAL and args.approve_as:
                    result = await runner.approve(result.decision_id, args.approve_as,
                                                  "approved from tripwire decide --demo")
                self.advance(incident.ts_ns + AFTER_S * NS_PER_SECOND)
                await self._settle(result)
            rows.append((label.kind.value, result))
        return self._report(rows)

    async def _settle(self, result: DecisionResult) -> None:
        """Fills that arrived after the decision: into the store and the journal."""
        if result.decision_id is None:
            return
        if result.order_id is not None:
            await sync_order(self.deps, result.order_id)
        await write_journal(self.deps, result.decision_id)

    def _report(self, rows: list[tuple[str, DecisionResult]]) -> dict[str, Any]:
        account = self.paper.account()
        fills = self.paper.fills()
        return {
            "decisions": [{"event": kind, **dataclasses.asdict(r)} for kind, r in rows],
            "outcomes": dict(collections.Counter(r.outcome for _, r in rows)),
            "orders": len(self.paper.orders()), "fills": len(fills),
            "equity": account.equity, "realised_pnl": account.realised_pnl,
            "fees": account.fees, "mode": self.deps.config.mode.value,
        }


def _print(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    out = Console()
    table = Table(title=f"Decisions ({report['mode']}, paper venue)")
    for col in ("event", "symbol", "verdict", "outcome", "decision", "reason"):
        table.add_column(col, overflow="fold")
    for d in report["decisions"]:
        table.add_row(d["event"], d["symbol"], d["verdict"] or "-", d["outcome"],
                      d["decision_id"] or "-", (d["reason"] or "")[:90])
    out.print(table)
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report["outcomes"].items()))
    out.print(f"{len(report['decisions'])} decision(s): {outcomes}; {report['orders']} order(s), "
              f"{report['fills']} fill(s); equity {report['equity']:,.2f} (realised "
              f"{report['realised_pnl']:+,.2f}, fees {report['fees']:,.2f})")
    journals = [d["journal"] for d in report["decisions"] if d.get("journal")]
    if journals:
        out.print(f"journal: {Path(journals[0]).parent}")
    first = next((d["decision_id"] for d in report["decisions"] if d["decision_id"]), None)
    if first:
        out.print(f"explain one: tripwire explain {first}")
