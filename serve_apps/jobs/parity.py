"""``tripwire parity``: one recorded stream through three drivers, compared record by record.

The default scenario (``--scenario SEED``, or ``--scenario-config FILE``), with its news,
split into the backtest job's tasks (``--groups`` symbol groups by UTC day), runs through

(a) the in-process backtest: every task's :func:`actors.backtest.run_shard` in this process;
(b) the Ray-task fan-out: the same tasks as ``tripwire backtest`` submits them;
(c) the live driver on market time (:mod:`serve_apps.jobs.parity_live`): per task, a fresh
    live engine -- the data plane's Ray shard actors, the sign-off Orchestrator's decision
    path (PostgreSQL store, checkpointer and paper book; a database per task) and its
    paper venue on a clock the ticks move -- fed the task's ticks (in ``--live-batch-s``
    batches, 1 s by default, not the backtest's 5 s: batching must not matter) and news
    in order.

Every leg returns its records (incidents, verdicts and outcomes, proposals, signatures,
orders, fills, positions, PnL: ``ShardConfig(records=True)``), and
:func:`tripwire.engine.parity.compare` pairs them by id (ids derive from the same seed, so
they compare too): (a) against (b) and (a) against (c). Prints the number of differences
of each pair (``--json``: one object, ``pairs`` with the first differences listed) and
exits 1 on any, 2 on a bad argument. PostgreSQL: ``TRIPWIRE_PG_DSN``, else the private
cluster under the data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from tripwire.commands.common import UsageError
from tripwire.engine.parity import ParityResult, compare

DRIVERS = ("in-process", "ray-tasks", "live")
PAIRS = ((0, 1), (0, 2))  # every leg against the in-process backtest


def backtest_args(args: argparse.Namespace) -> argparse.Namespace:
    """The backtest job's arguments for this run (its validation names the culprit)."""
    return argparse.Namespace(
        scenario_seed=args.scenario, scenario_config=args.scenario_config, store=None,
        start=None, end=None, warmup_s=0.0, symbols=args.symbols, groups=args.groups,
        num_cpus=args.num_cpus, max_inflight=16, mode=args.mode, cassette=None,
        cassette_mode="replay", config=args.config, out=tempfile.gettempdir(), json=True)


def run_legs(args: argparse.Namespace, err: Console
             ) -> tuple[list[list[dict[str, Any]]], dict[str, Any]]:
    """The three legs' shard reports (in DRIVERS order) and their wall times."""
    from actors.backtest import run_shard
    from serve_apps.config import ServeConfig
    from serve_apps.jobs.backtest import make_plan, run_plan
    from serve_apps.jobs.parity_live import run_live
    from tripwire.config import load_settings
    from tripwire.store.pg import database

    plan = make_plan(backtest_args(args))
    plan = dataclasses.replace(plan, config=dataclasses.replace(plan.config, records=True))
    settings = load_settings(args.config)  # make_plan validated it
    t0 = time.perf_counter()
    with err.status(f"(a) in process: {len(plan.specs)} task(s)", spinner="dots"):
        local = [run_shard(spec, plan.config) for spec in plan.specs]
    t1 = time.perf_counter()
    fanned = run_plan(plan, err)  # (b): Ray tasks, as the backtest job submits them
    t2 = time.perf_counter()
    with database(settings.data_dir) as dsn, \
            err.status(f"(c) live on market time: {len(plan.specs)} task(s)", spinner="dots"):
        live = asyncio.run(run_live(
            plan.specs, plan.config, settings, dsn, n_shards=settings.pipeline.shards,
            workers=ServeConfig.from_settings(settings).signoff_workers,
            batch_s=getattr(args, "live_batch_s", 1.0)))
    t3 = time.perf_counter()
    timing = {"tasks": len(plan.specs), "in_process_s": round(t1 - t0, 2),
              "ray_tasks_s": round(t2 - t1, 2), "live_s": round(t3 - t2, 2)}
    return [local, fanned, live], timing


def compare_legs(legs: Sequence[Sequence[dict[str, Any]]]) -> list[ParityResult]:
    """Each pair of :data:`PAIRS` compared (every record, every field)."""
    return [compare(legs[i], legs[j], (DRIVERS[i], DRIVERS[j])) for i, j in PAIRS]


def summary(results: Sequence[ParityResult], timing: dict[str, Any]) -> dict[str, Any]:
    """One JSON object: the total, each pair's counts per kind, the first listed."""
    pairs = {" vs ".join(r.names): r.to_dict() for r in results}
    return {"differences": sum(r.count for r in results), "drivers": list(DRIVERS),
            "records": dict(results[0].records), "pairs": pairs, **timing}


def run(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    try:
        legs, timing = run_legs(args, err)
    except UsageError as exc:
        err.print(f"[red]parity: {exc}[/red]", highlight=False)
        return 2
    results = compare_legs(legs)
    out = summary(results, timing)
    if args.json:
        print(json.dumps(out, sort_keys=True, default=str))
    else:
        for r in results:
            counted = ", ".join(f"{k} {v}" for k, v in r.records.items())
            kinds = ", ".join(f"{k} {v}" for k, v in r.counted_by_kind().items() if v) or "none"
            print(f"parity {' vs '.join(r.names)}: {r.count} difference(s) over "
                  f"{timing['tasks']} task(s) ({counted}); differing: {kinds}")
            for d in r.differences[:20]:
                print(f"  {d.kind} {d.key} {d.field or '(missing)'}: {d.a!r} != {d.b!r}")
    return 1 if out["differences"] else 0


def main(argv: list[str] | None = None) -> int:
    from serve_apps.commands import add_parity_arguments

    p = argparse.ArgumentParser(prog="python -m serve_apps.jobs.parity",
                                description=__doc__.splitlines()[0])
    add_parity_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
