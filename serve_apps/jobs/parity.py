"""``tripwire parity``: one recorded stream through several drivers, compared record by record.

The default scenario (``--scenario SEED``, or ``--scenario-config FILE``), with its news,
split into the backtest job's tasks (``--groups`` symbol groups by UTC day), runs through

(a) the in-process backtest: every task's :func:`actors.backtest.run_shard` in this process;
(b) the Ray-task fan-out: the same tasks as ``tripwire backtest`` submits them.

Both legs return their records (incidents, verdicts and outcomes, proposals, signatures,
orders, fills, positions, PnL: ``ShardConfig(records=True)``), and
:func:`tripwire.engine.parity.compare` pairs them by id (ids derive from the same seed, so
they compare too). Prints the number of differences (``--json``: one object with the first
differences listed) and exits 1 on any, 2 on a bad argument. The live Serve app on market
time is a third leg still to come.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from typing import Any

from rich.console import Console

from tripwire.commands.common import UsageError
from tripwire.engine.parity import ParityResult, compare

DRIVERS = ("in-process", "ray-tasks")


def backtest_args(args: argparse.Namespace) -> argparse.Namespace:
    """The backtest job's arguments for this run (its validation names the culprit)."""
    return argparse.Namespace(
        scenario_seed=args.scenario, scenario_config=args.scenario_config, store=None,
        start=None, end=None, warmup_s=0.0, symbols=args.symbols, groups=args.groups,
        num_cpus=args.num_cpus, max_inflight=16, mode=args.mode, cassette=None,
        cassette_mode="replay", config=args.config, out=tempfile.gettempdir(), json=True)


def run_legs(args: argparse.Namespace, err: Console) -> tuple[ParityResult, dict[str, Any]]:
    from actors.backtest import run_shard
    from serve_apps.jobs.backtest import make_plan, run_plan

    plan = make_plan(backtest_args(args))
    plan = dataclasses.replace(plan, config=dataclasses.replace(plan.config, records=True))
    t0 = time.perf_counter()
    with err.status(f"(a) in process: {len(plan.specs)} task(s)", spinner="dots"):
        local = [run_shard(spec, plan.config) for spec in plan.specs]
    t1 = time.perf_counter()
    fanned = run_plan(plan, err)  # (b): Ray tasks, as the backtest job submits them
    t2 = time.perf_counter()
    result = compare(local, fanned, DRIVERS)
    timing = {"tasks": len(plan.specs), "in_process_s": round(t1 - t0, 2),
              "ray_tasks_s": round(t2 - t1, 2)}
    return result, timing


def run(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    try:
        result, timing = run_legs(args, err)
    except UsageError as exc:
        err.print(f"[red]parity: {exc}[/red]", highlight=False)
        return 2
    if args.json:
        print(json.dumps({**result.to_dict(), **timing}, sort_keys=True, default=str))
    else:
        counted = ", ".join(f"{k} {v}" for k, v in result.records.items())
        print(f"parity {' vs '.join(DRIVERS)}: {result.count} difference(s) over "
              f"{timing['tasks']} task(s) ({counted})")
        for d in result.differences[:20]:
            print(f"  {d.kind} {d.key} {d.field or '(missing)'}: {d.a!r} != {d.b!r}")
    return 1 if result.count else 0


def main(argv: list[str] | None = None) -> int:
    from serve_apps.commands import add_parity_arguments

    p = argparse.ArgumentParser(prog="python -m serve_apps.jobs.parity",
                                description=__doc__.splitlines()[0])
    add_parity_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
