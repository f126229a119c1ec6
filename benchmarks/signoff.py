"""What the decision graphs cost per decision, and how many decisions per second they carry.

Run from the project root::

    python -m benchmarks.signoff            # rich table + pass/fail summary
    python -m benchmarks.signoff --json     # one JSON object on stdout
    python -m benchmarks.signoff --quick    # 60 decisions instead of 300

A private PostgreSQL cluster (the system's initdb/pg_ctl, under a temporary directory,
fsync on as in production) holds the decision store and LangGraph's Postgres checkpoints
(durability "sync": a checkpoint per step before the next one starts). The LLM roles are
the offline rules analyst, the venue is the paper backend, the mode is DIRECT, and the
incident is the default scenario's first news shock, so every decision runs every node:
strategist, risk gate, fact-checker, double-checker, execute (an order is placed), finish.
Figures (JSON keys):

  signoff_overhead_ms_p50 / _p99  one decision through the sign-off graph (``decide``),
                        one at a time: the graph's own time, rules analyst, no LLM latency.
                        Target: p99 <= 50 ms.
  triage_ms_p50 / _p99  the triage graph for the same incident.
  decisions_per_s       triage + sign-off end to end with 4 graphs running concurrently,
                        sustained over ``concurrent_decisions`` decisions.
  orders                orders the paper venue received (one per decision: none doubled).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from actors.triage import SKILLS_DIR, demo_incidents
from graphs.deps import DecisionDeps
from graphs.runner import DecisionRunner, postgres_checkpointer
from tripwire.config import load_settings
from tripwire.decisions.config import load_decision_config
from tripwire.decisions.prices import LatestPrices
from tripwire.execution.factory import build_broker
from tripwire.incident import Incident
from tripwire.llm.config import load_llm_config
from tripwire.llm.factory import build_llm
from tripwire.llm.skills import SkillLoader
from tripwire.metrics import DecisionMetrics
from tripwire.model import NS_PER_SECOND, EventKind, SimClock, SymbolTable, new_id
from tripwire.store.migrate import migrate
from tripwire.store.pg import PrivateCluster
from tripwire.store.pg_decisions import PgDecisionStore

TARGETS = {"signoff_overhead_ms_p99": 50.0}
CONCURRENCY = 4
# Limits wide enough that hundreds of decisions on one symbol all execute.
WIDE_LIMITS = {"max_daily_orders": 1_000_000, "max_position_per_symbol": 1e9,
               "max_gross_exposure": 1e12, "max_order_notional": 1e6}

# The offline analyst without the default route's rate limit: the figures are the graphs'.
UNLIMITED_RULES = {"name": "rules", "provider": "rules", "rate_per_s": float("inf"),
                   "max_concurrency": 64}


def _incident() -> Incident:
    (_, incident), = demo_incidents(kinds=(EventKind.NEWS_SHOCK,))
    return incident


def _deps(store: PgDecisionStore, incident: Incident) -> DecisionDeps:
    clock = SimClock(incident.ts_ns + NS_PER_SECOND)
    symbols = SymbolTable([incident.symbol])
    prices = LatestPrices(symbols)
    prices.set(incident.symbol, incident.price, clock.now_ns())
    config = load_decision_config({"mode": "DIRECT", **WIDE_LIMITS,
                                   "allowed_symbols": [incident.symbol]}, {})
    metrics, _ = DecisionMetrics.in_memory()
    # The one broker factory every driver uses (the paper venue on the bench's clock).
    settings = dataclasses.replace(load_settings(env={}), decisions=config)
    venue = build_broker(settings, symbols, clock, kind="paper")
    return DecisionDeps(
        store=store, broker=venue.broker, backend=venue.backend,
        router=build_llm(load_llm_config({"routes": [UNLIMITED_RULES]})).router,
        skills=SkillLoader(SKILLS_DIR), config=config, prices=prices, clock=clock,
        metrics=metrics)


async def _sequential(runner: DecisionRunner, incident: Incident, n: int
                      ) -> tuple[list[float], list[float], list[str]]:
    triage_ms, signoff_ms, outcomes = [], [], []
    for _ in range(n):
        inc = incident.model_copy(update={"id": new_id()})
        t0 = time.perf_counter()
        triaged = await runner.triage(inc)
        t1 = time.perf_counter()
        result = await runner.decide(inc, triaged)
        t2 = time.perf_counter()
        triage_ms.append((t1 - t0) * 1e3)
        signoff_ms.append((t2 - t1) * 1e3)
        outcomes.append(result.outcome)
    return triage_ms, signoff_ms, outcomes


async def _concurrent(runner: DecisionRunner, incident: Incident, n: int) -> tuple[float, list]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    outcomes: list[str] = []

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            result = await runner.handle(incident.model_copy(update={"id": new_id()}))
            outcomes.append(result.outcome)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - t0, outcomes


async def _measure(dsn: str, n: int) -> dict[str, Any]:
    await migrate(dsn)
    incident = _incident()
    store = await PgDecisionStore.connect(dsn, max_size=CONCURRENCY * 2)
    try:
        async with postgres_checkpointer(dsn, max_size=CONCURRENCY * 2) as saver:
            deps = _deps(store, incident)
            runner = DecisionRunner(deps, saver)
            await _sequential(runner, incident, 10)  # warm-up: imports, plans, pools
            triage_ms, signoff_ms, outcomes = await _sequential(runner, incident, n)
            elapsed, conc = await _concurrent(runner, incident, n)
            orders = len(deps.broker.orders())
            await deps.router.aclose()
    finally:
        await store.close()
    executed = outcomes.count("EXECUTED") + conc.count("EXECUTED")
    pct = lambda xs, q: round(float(np.percentile(xs, q)), 3)  # noqa: E731
    return {
        "signoff_overhead_ms_p50": pct(signoff_ms, 50),
        "signoff_overhead_ms_p99": pct(signoff_ms, 99),
        "triage_ms_p50": pct(triage_ms, 50), "triage_ms_p99": pct(triage_ms, 99),
        "decisions_per_s": round(len(conc) / elapsed, 1),
        "sequential_decisions": n, "concurrent_decisions": len(conc),
        "concurrency": CONCURRENCY, "executed": executed, "orders": orders,
    }


def measure(quick: bool) -> dict[str, Any]:
    n = 60 if quick else 300
    root = Path(tempfile.mkdtemp(prefix="tripwire-bench-pg-"))
    root.chmod(0o711)  # as root the server runs as the postgres user, who must enter it
    try:
        with PrivateCluster(root / "pg") as dsn:
            res = asyncio.run(_measure(dsn, n))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    res["targets"] = TARGETS
    res["meets_targets"] = {k: res[k] <= v for k, v in TARGETS.items()}
    res["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                      "python": platform.python_version()}
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.signoff", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quick", action="store_true", help="60 decisions instead of 300")
    args = p.parse_args(argv)
    if args.json:
        print(json.dumps(measure(args.quick)))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    with console.status("running decisions against a private PostgreSQL", spinner="dots"):
        res = measure(args.quick)
    table = Table(title="Sign-off benchmark (rules analyst, paper venue, Postgres checkpoints)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in res.items():
        if k not in ("targets", "meets_targets", "machine"):
            table.add_row(k, f"{v:,.3f}" if isinstance(v, float) else str(v))
    console.print(table)
    console.print("[bold]summary[/bold]: " + ", ".join(
        f"{k} {'[green]met[/green]' if ok else '[red]missed[/red]'} (<= {res['targets'][k]})"
        for k, ok in res["meets_targets"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
