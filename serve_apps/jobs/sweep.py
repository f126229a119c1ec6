"""Parameter-sweep job: detector configs x symbol groups x days, fanned out as Ray tasks.

Submit it to a Ray cluster, or through SLURM (``slurm/ray-cluster.sbatch`` starts the
cluster and runs the command), or run it locally with ``python -m serve_apps.jobs.sweep``::

    ray job submit --working-dir . -- python -m serve_apps.jobs.sweep \\
        --scenario-seed 7 --groups 4 --returns-threshold 8,10,12 --returns-window 300,1000 \\
        --out /shared/sweeps/returns --pg

    tripwire slurm submit --nodes 2 --time 00:30:00 -- python -m serve_apps.jobs.sweep \\
        --scenario-seed 7 --groups 4 --returns-threshold 8,10,12 --returns-window 300,1000 \\
        --out /shared/sweeps/returns --json

The grid. Each ``--param KEY=V1,V2,...`` (KEY: ``returns|volume|price`` ``.window``,
``.threshold`` or ``.min_periods``, or ``cooldown_s`` / ``volume_bucket_s``) adds an axis;
``--returns-threshold 5,6,7`` is short for ``--param returns.threshold=5,6,7``, likewise
``--returns-window`` (alias ``--window``), ``--volume-window``, ``--volume-threshold``,
``--price-window`` and ``--price-threshold``. The configs are every combination over the
base ``[detector]`` table of ``--config`` (at most :data:`MAX_CONFIGS`). The data is split
exactly as the backtest job splits it (``--scenario-seed``/``--scenario-config``/``--store``,
``--symbols``, ``--groups``, ``--start``/``--end``/``--warmup-s``): each task is one
(config, symbol group, day), run by :func:`actors.sweep.run_sweep`.

Scoring. On the labelled scenario every task is scored against the labels
(:func:`tripwire.detect.evaluate.evaluate`); per config the counts are summed over groups
and days and precision (true alarms / alarms), recall (detected / events, per kind and
over every detectable kind) and F1 are recomputed from the sums. A tick store has no
labels: alarms and ticks only, no F1.

Output: ``<out>/sweep.json`` and ``<out>/sweep.md`` (one row per config, the best by F1),
and with ``--pg [DSN]`` (or whenever ``TRIPWIRE_PG_DSN`` is set) one row per task in the
PostgreSQL table ``sweep_results`` (migration 0008; ``--pg`` alone: ``TRIPWIRE_PG_DSN``,
else the private cluster under the data directory). ``workers`` (alive Ray nodes),
``tasks``, ``wall_s`` and ``tasks_per_s`` measure the scaling between cluster sizes; they,
``run_id`` and the per-task ``seconds`` are the only fields that differ between two runs of
the same inputs. Exit codes: 0 done, 1 a task or the database write failed, 2 bad
arguments (the message names the argument).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import math
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from actors.backtest import ShardSpec, store_data, warm_start
from actors.sweep import SLOW_TREND, run_sweep_task
from serve_apps.commands import PG_ENV
from serve_apps.commands import SWEEP_SHORTCUTS as SHORTCUTS
from serve_apps.jobs.backtest import scenario_specs, store_specs
from tripwire.commands.common import UsageError
from tripwire.config import load_settings
from tripwire.detect import DetectorConfig
from tripwire.model import NS_PER_SECOND

MAX_CONFIGS = 1_000
MAX_TASKS = 20_000  # configs x groups x days; beyond this the plan is refused
MAX_VALUES = 100  # values per axis
METRICS = ("returns", "volume", "price")
METRIC_FIELDS = {"window": int, "threshold": float, "min_periods": int}
TOP_FIELDS = {"cooldown_s": float, "volume_bucket_s": float}


# ----------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    from serve_apps.commands import add_sweep_arguments, job_parser

    return job_parser("sweep", __doc__.splitlines()[0], add_sweep_arguments)


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    grid: dict[str, list[float | int]]
    params: list[dict[str, float | int]]  # one per config, in config order
    detectors: list[DetectorConfig]
    specs: list[ShardSpec]  # the (group, day) splits
    source: dict[str, Any]
    out: Path
    data_dir: str
    chdb: bool
    num_cpus: float = 1.0
    max_inflight: int = 16
    ray_address: str | None = None  # [ray] address: a cluster to run on

    @property
    def n_tasks(self) -> int:
        return len(self.specs) * len(self.detectors)


def make_plan(args: argparse.Namespace) -> Plan:
    """Validate the arguments, build the grid and the splits; UsageError names the culprit."""
    try:
        settings = load_settings(args.config)
    except ValueError as exc:
        raise UsageError(f"--config: {exc}") from None
    grid = parse_grid(args)
    params = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    if len(params) > MAX_CONFIGS:
        raise UsageError(f"--param: {len(params)} configs, more than {MAX_CONFIGS}")
    detectors = [detector_for(settings.detector, p) for p in params]
    specs, source = store_specs(args) if args.store else scenario_specs(args)
    if len(specs) * len(detectors) > MAX_TASKS:
        raise UsageError(f"--param/--groups/--start/--end: {len(specs) * len(detectors)} "
                          f"tasks, more than {MAX_TASKS}")
    chdb = bool(args.store and args.store.startswith("chdb"))
    out = Path(args.out) if args.out else Path(settings.data_dir) / "sweep"
    return Plan(grid, params, detectors, specs, source, out, str(settings.data_dir), chdb,
                args.num_cpus, args.max_inflight, settings.ray_address)


def parse_grid(args: argparse.Namespace) -> dict[str, list[float | int]]:
    """The axes in sorted key order (the config order does not depend on the flag order)."""
    items = [(f"--param {t}", t) for t in args.param]
    for dest, key in SHORTCUTS.items():
        if getattr(args, dest) is not None:
            items.append((f"--{dest.replace('_', '-')}", f"{key}={getattr(args, dest)}"))
    grid: dict[str, list[float | int]] = {}
    for flag, text in items:
        key, values = _axis(flag, text)
        if key in grid:
            raise UsageError(f"{flag}: {key} is given twice")
        grid[key] = values
    return dict(sorted(grid.items())) if grid else {}


def _axis(flag: str, text: str) -> tuple[str, list[float | int]]:
    key, sep, raw = text.partition("=")
    key = key.strip()
    kind = _kind_of(key)
    if not sep or kind is None:
        known = [f"{m}.{f}" for m in METRICS for f in METRIC_FIELDS] + list(TOP_FIELDS)
        raise UsageError(f"{flag}: expected KEY=V1,V2,... with KEY one of {', '.join(known)}; "
                          f"got {text!r}")
    parts = [v.strip() for v in raw.split(",") if v.strip()]
    if not parts or len(parts) > MAX_VALUES:
        raise UsageError(f"{flag}: {key} needs 1 to {MAX_VALUES} values, got {len(parts)}")
    try:
        values = [kind(v) for v in parts]
    except ValueError:
        raise UsageError(f"{flag}: {key} values must be {kind.__name__}s, got {raw!r}") from None
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise UsageError(f"{flag}: {key} values must be finite, got {raw!r}")
    if len(set(values)) != len(values):
        raise UsageError(f"{flag}: {key} repeats a value: {raw!r}")
    return key, values


def _kind_of(key: str) -> type | None:
    if key in TOP_FIELDS:
        return TOP_FIELDS[key]
    metric, _, name = key.partition(".")
    return METRIC_FIELDS.get(name) if metric in METRICS else None


def detector_for(base: DetectorConfig, params: dict[str, float | int]) -> DetectorConfig:
    """``base`` with ``params`` applied; a value the detector refuses is a UsageError."""
    d = base.to_dict()
    for key, value in params.items():
        if key in TOP_FIELDS:
            d[key.replace("_s", "_ns")] = round(value * NS_PER_SECOND)
        else:
            metric, _, name = key.partition(".")
            d[metric][name] = value
    try:
        return DetectorConfig.from_dict(d)
    except (ValueError, TypeError) as exc:
        named = [k for k in params if k.replace("_s", "_ns") in str(exc)]
        flag = f"--param {named[0] if named else ', '.join(params)}"
        raise UsageError(f"{flag}: {exc}") from None


# ----------------------------------------------------------------------------- running


def run_plan(plan: Plan, err: Console) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every task's result in plan order (config-major) and the cluster's size."""
    import ray

    from actors.runtime import ensure_command_ray

    ensure_command_ray(plan.data_dir, plan.ray_address)
    cluster = {"workers": sum(1 for n in ray.nodes() if n.get("Alive")),
               "cluster_cpus": float(ray.cluster_resources().get("CPU", 0.0))}
    task = run_sweep_task.options(num_cpus=plan.num_cpus)
    return _fan_out(ray, task, plan, err), cluster


def _fan_out(ray, task, plan: Plan, err: Console) -> list[dict[str, Any]]:
    n_cfg = len(plan.detectors)
    # Split-major order: a split's data (read by the job for chdb) is needed only while
    # its configs run, so at most max_inflight splits' data sit in the object store.
    pending = [(s, c) for s in range(len(plan.specs)) for c in range(n_cfg)]
    pending.reverse()
    det_refs = [ray.put(d) for d in plan.detectors]
    data_refs: dict[int, Any] = {}
    uses = Counter(s for s, _ in pending)
    running: dict[Any, tuple[int, int]] = {}
    results: dict[tuple[int, int], dict[str, Any]] = {}
    columns = (TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, console=err, transient=False) as bar:
        ticker = bar.add_task("", total=len(pending))
        while pending or running:
            while pending and len(running) < plan.max_inflight:
                s, c = pending.pop()
                ref = task.remote(plan.specs[s], det_refs[c], _data_ref(ray, plan, s, data_refs))
                running[ref] = (s, c)
            done, _ = ray.wait(list(running), num_returns=1)
            s, c = running.pop(done[0])
            results[(s, c)] = {"config": c, **ray.get(done[0])}
            uses[s] -= 1
            if uses[s] == 0:
                data_refs.pop(s, None)  # drop the object-store copy
            bar.update(ticker, advance=1, description=f"config {c} {plan.specs[s].label}")
    return [results[(s, c)] for c in range(n_cfg) for s in range(len(plan.specs))]


def _data_ref(ray, plan: Plan, s: int, refs: dict[int, Any]) -> Any:
    if not plan.chdb:
        return None
    if s not in refs:
        spec = plan.specs[s]
        refs[s] = ray.put(store_data(spec.store_url, warm_start(spec), spec.end_ns))
    return refs[s]


# ----------------------------------------------------------------------------- report


def aggregate(plan: Plan, results: list[dict[str, Any]], cluster: dict[str, Any],
              wall_s: float) -> dict[str, Any]:
    """Per config: counts summed over splits, scores recomputed from the sums."""
    configs = [_config_row(i, plan, [r for r in results if r["config"] == i])
               for i in range(len(plan.detectors))]
    best = sorted((c for c in configs if c["f1"] is not None),
                  key=lambda c: (-c["f1"], c["false_alarms"], c["id"]))
    return {
        "run_id": uuid.uuid4().hex,
        "source": plan.source,
        "grid": plan.grid,
        "configs": configs,
        "best": [c["id"] for c in best],
        "per_task": results,
        **cluster,
        "tasks": len(results),
        "wall_s": wall_s,
        "tasks_per_s": len(results) / wall_s if wall_s > 0 else None,
    }


def _config_row(i: int, plan: Plan, rows: list[dict[str, Any]]) -> dict[str, Any]:
    labelled = all(r["labelled"] for r in rows)
    events, detected = Counter(), Counter()
    for r in rows:
        events.update(r["events"])
        detected.update(r["detected"])
    out: dict[str, Any] = {"id": i, "params": plan.params[i],
                           "detector": plan.detectors[i].to_dict(), "labelled": labelled,
                           "ticks": sum(r["ticks"] for r in rows),
                           "alarms": sum(r["alarms"] for r in rows)}
    if not labelled:
        return {**out, "true_alarms": None, "false_alarms": None, "events": {},
                "detected": {}, "recall": {}, "recall_all": None, "precision": None, "f1": None}
    true = sum(r["true_alarms"] for r in rows)
    kinds = [k for k in sorted(events) if k != SLOW_TREND]
    n_events = sum(events[k] for k in kinds)
    recall_all = sum(detected[k] for k in kinds) / n_events if n_events else None
    precision = true / out["alarms"] if out["alarms"] else 1.0  # evaluate()'s rule
    return {**out, "true_alarms": true, "false_alarms": out["alarms"] - true,
            "events": dict(sorted(events.items())), "detected": dict(sorted(detected.items())),
            "recall": {k: detected[k] / events[k] for k in kinds}, "recall_all": recall_all,
            "precision": precision, "f1": _f1(precision, recall_all)}


def _f1(precision: float, recall: float | None) -> float | None:
    if recall is None:
        return None  # no event to find: F1 says nothing
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "sweep.json", out / "sweep.md"
    js.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    md.write_text(markdown(report))
    return js, md


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "(base config)"


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Detector sweep", "", f"Source: `{json.dumps(report['source'], sort_keys=True)}`  ",
             f"Grid: `{json.dumps(report['grid'], sort_keys=True)}`; {len(report['configs'])} "
             f"config(s), {report['tasks']} task(s) on {report['workers']} worker node(s) in "
             f"{report['wall_s']:.1f} s", "",
             "| config | params | ticks | alarms | true | false | precision | recall | F1 | "
             "recall per kind |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in report["configs"]:
        kinds = ", ".join(f"{k} {v:.2f}" for k, v in c["recall"].items()) or "-"
        lines.append(f"| {c['id']} | {_params_text(c['params'])} | {c['ticks']} | "
                     f"{c['alarms']} | {_fmt(c['true_alarms'], 'd')} | "
                     f"{_fmt(c['false_alarms'], 'd')} | {_fmt(c['precision'])} | "
                     f"{_fmt(c['recall_all'])} | {_fmt(c['f1'])} | {kinds} |")
    lines += ["", "## Best by F1", ""]
    by_id = {c["id"]: c for c in report["configs"]}
    lines += [f"{n}. config {i} ({_params_text(by_id[i]['params'])}): F1 "
              f"{by_id[i]['f1']:.3f}" for n, i in enumerate(report["best"], 1)]
    if not report["best"]:
        lines.append("(no labels: nothing to rank)")
    return "\n".join(lines) + "\n"


def print_summary(report: dict[str, Any], paths: tuple[Path, Path], top: int) -> None:
    out = Console()
    table = Table(title=f"Sweep: best of {len(report['configs'])} config(s) by F1")
    for col in ("config", "params", "alarms", "false", "precision", "recall", "F1"):
        table.add_column(col, justify="left" if col == "params" else "right",
                         overflow="fold")
    by_id = {c["id"]: c for c in report["configs"]}
    for i in report["best"][:top]:
        c = by_id[i]
        table.add_row(str(i), _params_text(c["params"]), str(c["alarms"]),
                      str(c["false_alarms"]), _fmt(c["precision"]), _fmt(c["recall_all"]),
                      _fmt(c["f1"]))
    out.print(table)
    out.print(f"{report['tasks']} task(s) on {report['workers']} worker node(s) "
              f"({report['cluster_cpus']:g} CPUs) in {report['wall_s']:.1f} s "
              f"({_fmt(report['tasks_per_s'], '.2f')} tasks/s)")
    out.print(f"report: {paths[0]} and {paths[1]}")


# ----------------------------------------------------------------------------- PostgreSQL

INSERT = """INSERT INTO sweep_results (run_id, config_id, config, params, label, symbols, day,
    start_ns, end_ns, ticks, alarms, true_alarms, false_alarms, events, detected, recall,
    precision, seconds, created_ns)
VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb,
    $15::jsonb, $16::jsonb, $17, $18, $19)"""


def pg_rows(report: dict[str, Any], created_ns: int) -> list[tuple]:
    configs = report["configs"]
    return [(report["run_id"], r["config"], json.dumps(configs[r["config"]]["detector"]),
             json.dumps(configs[r["config"]]["params"]), r["label"], r["symbols"],
             _utc_day(r["start_ns"]), r["start_ns"], r["end_ns"], r["ticks"], r["alarms"],
             r["true_alarms"], r["false_alarms"], json.dumps(r["events"]),
             json.dumps(r["detected"]), json.dumps(r["recall"]), r["precision"], r["seconds"],
             created_ns) for r in report["per_task"]]


def _utc_day(ts_ns: int) -> date:
    return datetime.fromtimestamp(ts_ns // NS_PER_SECOND, UTC).date()


async def write_pg(dsn: str, report: dict[str, Any]) -> int:
    """Migrate (idempotent) and insert one row per task in one transaction."""
    import asyncpg

    from tripwire.store.migrate import migrate

    await migrate(dsn)
    rows = pg_rows(report, time.time_ns())
    conn = await asyncio.wait_for(asyncpg.connect(dsn), 30.0)
    try:
        async with conn.transaction():
            await conn.executemany(INSERT, rows)
    finally:
        await conn.close()
    return len(rows)


def _pg_target(args: argparse.Namespace) -> str | None:
    """``""``: the default database; a DSN; or None: no PostgreSQL."""
    if args.pg is not None:
        return args.pg
    return "" if os.environ.get(PG_ENV, "").strip() else None


def _store_pg(target: str, data_dir: str, report: dict[str, Any]) -> int:
    if target:
        return asyncio.run(write_pg(target, report))
    from tripwire.store.pg import database

    with database(data_dir) as dsn:
        return asyncio.run(write_pg(dsn, report))


# ----------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the message naming the argument
        return int(exc.code or 0)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """``tripwire sweep``: the job on already parsed arguments."""
    err = Console(stderr=True)
    try:
        plan = make_plan(args)
    except UsageError as exc:
        err.print(f"[red]sweep: {exc}[/red]", highlight=False)
        return 2
    began = time.perf_counter()
    try:
        results, cluster = run_plan(plan, err)
    except Exception as exc:  # a task failed: no partial report that could pass for a full one
        err.print(f"[red]sweep: a task failed: {type(exc).__name__}: {exc}[/red]",
                  highlight=False)
        return 1
    report = aggregate(plan, results, cluster, time.perf_counter() - began)
    paths = write_report(report, plan.out)
    target = _pg_target(args)
    if target is not None:
        try:
            n = _store_pg(target, plan.data_dir, report)
        except Exception as exc:  # the files are written; say why the DB is not
            err.print(f"[red]sweep: writing sweep_results failed: {type(exc).__name__}: "
                      f"{exc}[/red]", highlight=False)
            return 1
        err.print(f"sweep: {n} row(s) in sweep_results (run {report['run_id']})")
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print_summary(report, paths, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
