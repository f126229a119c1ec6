"""Backtest job: replay a period through the pipeline and graphs, fanned out as Ray tasks.

Submit it to a cluster (or run it locally with ``python -m serve_apps.jobs.backtest ...``)::

    ray job submit --working-dir . -- python -m serve_apps.jobs.backtest \\
        --scenario-seed 7 --groups 8 --out data/backtest

    ray job submit --working-dir . -- python -m serve_apps.jobs.backtest \\
        --store http://user:pass@clickhouse:8123/tripwire \\
        --start 2026-01-05 --end 2026-01-07 --symbols BTCUSDT,ETHUSDT --groups 2

Each task (:func:`actors.backtest.run_shard`) replays its symbols through an in-process
detector shard, builds incidents, and runs them through triage and sign-off with the
offline rules analyst (or ``--cassette PATH`` replayed; ``--cassette-mode strict`` fails a
triage on a miss instead of falling back to the rules; the configured ``[llm]`` routes are
never called, so a backtest spends nothing) against the backtest broker on simulated
time. Defaults: safety mode DIRECT (``--mode``; TWO_PHASE decisions are approved as
``backtest``), ``[signoff]``/``[risk]``/``[detector]`` from ``--config``. Under ``ray job
submit`` the driver (and so ``--out``) runs on the head node inside the uploaded working
directory: give ``--out`` an absolute path on storage you can read back.

Fan-out. A scenario is split into symbol groups (``shard_of(symbol, --groups)``, the
pipeline's stable hash) and, when it spans several UTC days, into days; a day's task
replays the scenario from its start to warm the detectors up and trades only in its day.
A tick store is split into (symbol group, UTC day) over ``[--start, --end)``; each task
reads ``--warmup-s`` of ticks before its day to warm the detectors up. The market context
of an incident reads every stored symbol's ticks, so it does not depend on the grouping.
With a ``chdb://`` store (one process per data directory) this job reads each task's ticks
and hands them over through the object store, at most ``--max-inflight`` at a time.

Aggregation. Every task trades its own backtest account, starting from ``initial_cash``
with nothing open. Totals are sums over tasks (in task order, so the same run gives the
same bits): realised PnL, fees, orders, fills; unrealised PnL is what is still open at each
task's end, marked at its last price (positions are not carried into the next day's task).
Detection and incidents do not depend on the grouping; decisions can, because the risk
limits see a task's account only (one symbol per group removes that: ``--groups`` >= the
number of symbols).

Output: ``<out>/backtest.json`` (config, totals, per symbol, per task, every decision) and
``<out>/backtest.md`` (tables per symbol and totals); a summary on stdout (``--json``: the
JSON object instead). Same seed, config and cassette give the same JSON, byte for byte.
Exit codes: 0 done, 1 a task failed, 2 bad arguments (the message names the argument).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from actors.backtest import (
    ShardConfig,
    ShardSpec,
    run_shard_task,
    store_data,
    warm_start,
)
from actors.shard import shard_of
from tripwire.commands.common import UsageError
from tripwire.config import load_settings
from tripwire.feeds.scenario import DAY_S, ScenarioConfig, default_scenario_config
from tripwire.model import NS_PER_SECOND
from tripwire.risk.modes import parse_safety_mode

DAY_NS = DAY_S * NS_PER_SECOND
MAX_TASKS = 10_000  # groups x days; beyond this the plan is refused, not silently truncated
SUM_KEYS = ("ticks", "warmup_ticks", "anomalies", "incidents", "orders", "fills",
            "realised_pnl", "unrealised_pnl", "fees")
SYMBOL_KEYS = ("orders", "fills", "realised_pnl", "unrealised_pnl", "fees")
LLM_KEYS = ("calls", "answered", "failed", "input_tokens", "output_tokens", "cost_usd")


# ----------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    from serve_apps.commands import add_backtest_arguments, job_parser

    return job_parser("backtest", __doc__.splitlines()[0], add_backtest_arguments)


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    specs: list[ShardSpec]
    config: ShardConfig
    source: dict[str, Any]
    out: Path
    chdb: bool  # the job reads ticks for the tasks
    num_cpus: float = 0.5
    max_inflight: int = 16
    data_dir: str = "data"  # where a local Ray keeps its session and token
    ray_address: str | None = None  # [ray] address: a cluster to run on


def make_plan(args: argparse.Namespace) -> Plan:
    """Validate the arguments and split the work into tasks; UsageError names the culprit."""
    try:
        settings = load_settings(args.config)
    except ValueError as exc:
        raise UsageError(f"--config: {exc}") from None
    config = ShardConfig(decisions=_decisions(settings.decisions, args.mode),
                         # never the configured paid routes: a backtest replays, it
                         # does not spend (the rules analyst, or the cassette)
                         detector=settings.detector, llm=None,
                         cassette_text=_cassette(args.cassette),
                         cassette_mode=args.cassette_mode, engine=settings.engine)
    out = Path(args.out) if args.out else Path(settings.data_dir) / "backtest"
    if args.store:
        specs, source = store_specs(args)
    else:
        specs, source = scenario_specs(args)
    if len(specs) > MAX_TASKS:
        raise UsageError(f"--groups/--start/--end: {len(specs)} tasks, more than {MAX_TASKS}")
    chdb = bool(args.store and args.store.startswith("chdb"))
    return Plan(specs, config, source, out, chdb, args.num_cpus, args.max_inflight,
                str(settings.data_dir), settings.ray_address)


def _decisions(cfg, mode_text: str):
    try:
        mode = parse_safety_mode(mode_text, "--mode")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return dataclasses.replace(cfg, mode=mode)


def _cassette(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"--cassette: cannot read {path}: {exc.strerror}") from None


def scenario_specs(args: argparse.Namespace) -> tuple[list[ShardSpec], dict[str, Any]]:
    if args.start is not None or args.end is not None:
        raise UsageError("--start/--end: only with --store (a scenario has its own period)")
    cfg = _scenario_config(args)
    names = _pick_symbols(args.symbols, _scenario_symbols(cfg))
    windows = _days(cfg.start_ns, cfg.end_ns)
    specs = [ShardSpec(f"g{g}/{_day(lo)}", grp, lo, hi, scenario=cfg.to_dict(), seed=cfg.seed)
             for g, grp in _groups(names, args.groups) for lo, hi in windows]
    return specs, {"kind": "scenario", "scenario": cfg.to_dict()}


def _scenario_config(args: argparse.Namespace) -> ScenarioConfig:
    if args.scenario_config is None:
        return default_scenario_config(args.scenario_seed)
    try:
        return ScenarioConfig.from_dict(json.loads(Path(args.scenario_config).read_text()))
    except OSError as exc:
        raise UsageError(f"--scenario-config: cannot read {args.scenario_config}: "
                          f"{exc.strerror}") from None
    except (ValueError, TypeError) as exc:  # JSON errors and ScenarioConfig's named keys
        raise UsageError(f"--scenario-config: {exc}") from None


def _scenario_symbols(cfg: ScenarioConfig) -> tuple[str, ...]:
    from tripwire.feeds.scenario import Scenario

    return Scenario(cfg).symbols.names  # cheap: events and profiles only, no ticks yet


def store_specs(args: argparse.Namespace) -> tuple[list[ShardSpec], dict[str, Any]]:
    from tripwire.store.tick_urls import parse_store_url, redact_url

    if args.start is None or args.end is None:
        raise UsageError("--start and --end are required with --store")
    if args.end <= args.start:
        raise UsageError("--end must be after --start")
    try:
        parse_store_url(args.store)
    except ValueError as exc:
        raise UsageError(f"--store: {exc}") from None
    stored = _stored_symbols(args.store)
    names = _pick_symbols(args.symbols, stored)
    specs = [ShardSpec(f"g{g}/{_day(lo)}", grp, lo, hi, store_url=args.store,
                       warmup_s=args.warmup_s)
             for g, grp in _groups(names, args.groups) for lo, hi in _days(args.start, args.end)]
    return specs, {"kind": "store", "store": redact_url(args.store), "start_ns": args.start,
                   "end_ns": args.end, "warmup_s": args.warmup_s}


def _stored_symbols(url: str) -> tuple[str, ...]:
    from tripwire.store.ticks import TickStore, TickStoreError

    try:
        with TickStore(url) as store:
            return tuple(store.symbols())
    except TickStoreError as exc:
        raise UsageError(f"--store: {exc}") from None


def _pick_symbols(text: str | None, known: Sequence[str]) -> tuple[str, ...]:
    if text is None:
        return tuple(known)
    wanted = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not wanted:
        raise UsageError("--symbols: no symbol given")
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise UsageError(f"--symbols: not in the data: {', '.join(unknown)}")
    return wanted


def _groups(names: Sequence[str], n: int) -> list[tuple[int, tuple[str, ...]]]:
    groups: dict[int, list[str]] = {}
    for s in names:
        groups.setdefault(shard_of(s, n), []).append(s)
    return [(g, tuple(groups[g])) for g in sorted(groups)]


def _days(start_ns: int, end_ns: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut at UTC midnights."""
    out, lo = [], start_ns
    while lo < end_ns:
        hi = min(end_ns, (lo // DAY_NS + 1) * DAY_NS)
        out.append((lo, hi))
        lo = hi
    return out


def _day(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // NS_PER_SECOND, UTC).strftime("%Y-%m-%d")


# ----------------------------------------------------------------------------- running


def run_plan(plan: Plan, err: Console) -> list[dict[str, Any]]:
    """Every task's result, in plan order; a failed task raises (the job exits 1)."""
    import ray

    from actors.runtime import ensure_command_ray

    ensure_command_ray(plan.data_dir, plan.ray_address)
    return _fan_out(ray, run_shard_task.options(num_cpus=plan.num_cpus), plan, err)


def _fan_out(ray, task, plan: Plan, err: Console) -> list[dict[str, Any]]:
    config_ref = ray.put(plan.config)
    pending = list(enumerate(plan.specs))
    running: dict[Any, int] = {}
    results: list[dict[str, Any] | None] = [None] * len(plan.specs)
    columns = (TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, console=err, transient=False) as bar:
        ticker = bar.add_task("", total=len(plan.specs))
        while pending or running:
            while pending and len(running) < plan.max_inflight:
                i, spec = pending.pop(0)
                data = (ray.put(store_data(spec.store_url, warm_start(spec), spec.end_ns))
                        if plan.chdb else None)
                running[task.remote(spec, config_ref, data)] = i
            done, _ = ray.wait(list(running), num_returns=1)
            i = running.pop(done[0])
            results[i] = ray.get(done[0])
            bar.update(ticker, advance=1, description=plan.specs[i].label)
    return [r for r in results if r is not None]


# ----------------------------------------------------------------------------- report


def aggregate(plan: Plan, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over tasks (summed in plan order: bit-identical for the same inputs)."""
    totals: dict[str, Any] = {k: 0 for k in SUM_KEYS}
    verdicts, outcomes, intake = Counter(), Counter(), Counter()
    per_symbol: dict[str, dict[str, Any]] = {}
    llm: dict[str, Any] = {k: 0 for k in LLM_KEYS}
    for r in results:
        for k in SUM_KEYS:
            totals[k] += r[k]
        verdicts.update(r["verdicts"])
        outcomes.update(r["outcomes"])
        intake.update(r["intake"])
        for k in LLM_KEYS:
            llm[k] += r["llm"][k]
        for s, row in r["per_symbol"].items():
            acc = per_symbol.setdefault(s, {k: 0 for k in SYMBOL_KEYS})
            for k in SYMBOL_KEYS:
                acc[k] += row[k]
    totals["net_pnl"] = totals["realised_pnl"] - totals["fees"]
    for row in per_symbol.values():
        row["net_pnl"] = row["realised_pnl"] - row["fees"]
    return {
        "source": plan.source,
        "mode": plan.config.decisions.mode.value,
        "llm_route": _llm_route(plan.config),
        "tasks": len(results),
        "initial_cash_per_task": plan.config.decisions.paper.initial_cash,
        "totals": totals,
        "intake": dict(sorted(intake.items())),
        "verdicts": dict(sorted(verdicts.items())),
        "outcomes": dict(sorted(outcomes.items())),
        "per_symbol": dict(sorted(per_symbol.items())),
        "llm": llm,
        "per_task": [{k: v for k, v in r.items() if k not in ("decisions", "per_symbol")}
                     for r in results],
        "decisions": [{"task": r["label"], **d} for r in results for d in r["decisions"]],
    }


def _llm_route(config: ShardConfig) -> str:
    if config.cassette_text is not None:
        return f"cassette ({config.cassette_mode})"
    return ", ".join(r.name for r in (config.llm.routes if config.llm else ())) or "rules"


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "backtest.json", out / "backtest.md"
    js.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    md.write_text(markdown(report))
    return js, md


def markdown(report: dict[str, Any]) -> str:
    t = report["totals"]
    lines = ["# Backtest", "", f"Source: `{json.dumps(report['source'], sort_keys=True)}`  ",
             f"Mode: {report['mode']}; LLM: {report['llm_route']}; tasks: {report['tasks']} "
             f"(each from {report['initial_cash_per_task']:,.2f} cash)", "",
             "## Per symbol", "",
             "| symbol | orders | fills | realised PnL | fees | net PnL | unrealised PnL |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for s, r in report["per_symbol"].items():
        lines.append(f"| {s} | {r['orders']} | {r['fills']} | {r['realised_pnl']:,.2f} | "
                     f"{r['fees']:,.2f} | {r['net_pnl']:,.2f} | {r['unrealised_pnl']:,.2f} |")
    lines.append(f"| **total** | {t['orders']} | {t['fills']} | {t['realised_pnl']:,.2f} | "
                 f"{t['fees']:,.2f} | {t['net_pnl']:,.2f} | {t['unrealised_pnl']:,.2f} |")
    lines += ["", "## Totals", "", "| what | count |", "|---|---:|"]
    for k in ("ticks", "anomalies", "incidents"):
        lines.append(f"| {k} | {t[k]} |")
    for title, key in (("verdict", "verdicts"), ("outcome", "outcomes")):
        for k, v in report[key].items():
            lines.append(f"| {title} {k} | {v} |")
    llm = report["llm"]
    lines.append(f"| LLM calls | {llm['calls']} ({llm['failed']} failed, "
                 f"{llm['cost_usd']:.5f} USD) |")
    return "\n".join(lines) + "\n"


def print_summary(report: dict[str, Any], paths: tuple[Path, Path]) -> None:
    out, t = Console(), report["totals"]
    table = Table(title=f"Backtest ({report['mode']}, {report['tasks']} task(s))")
    for col in ("symbol", "orders", "fills", "realised", "fees", "net", "unrealised"):
        table.add_column(col, justify="left" if col == "symbol" else "right")
    for s, r in report["per_symbol"].items():
        table.add_row(s, str(r["orders"]), str(r["fills"]), f"{r['realised_pnl']:,.2f}",
                      f"{r['fees']:,.2f}", f"{r['net_pnl']:,.2f}", f"{r['unrealised_pnl']:,.2f}")
    out.print(table)
    outcomes = ", ".join(f"{k} {v}" for k, v in report["outcomes"].items()) or "none"
    out.print(f"{t['incidents']} incident(s) from {t['anomalies']} trip(s) over {t['ticks']:,} "
              f"ticks; decisions: {outcomes}; {t['orders']} order(s), {t['fills']} fill(s); "
              f"net PnL {t['net_pnl']:+,.2f} (fees {t['fees']:,.2f}); LLM "
              f"{report['llm']['calls']} call(s), {report['llm']['cost_usd']:.5f} USD")
    out.print(f"report: {paths[0]} and {paths[1]}")


# ----------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the message naming the argument
        return int(exc.code or 0)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """``tripwire backtest``: the job on already parsed arguments."""
    err = Console(stderr=True)
    try:
        plan = make_plan(args)
    except UsageError as exc:
        err.print(f"[red]backtest: {exc}[/red]", highlight=False)
        return 2
    try:
        results = run_plan(plan, err)
    except Exception as exc:  # a task failed: no partial report that could pass for a full one
        err.print(f"[red]backtest: a task failed: {type(exc).__name__}: {exc}[/red]",
                  highlight=False)
        return 1
    report = aggregate(plan, results)
    paths = write_report(report, plan.out)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print_summary(report, paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
