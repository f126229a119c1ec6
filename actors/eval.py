"""``tripwire eval``: N seeds x policies through the backtest, fanned out as Ray tasks.

Each task is one (policy, seed): the seed's market (:mod:`tripwire.lab.markets`, or one
day of a tick-store period) replayed by :func:`actors.backtest.run_shard` with the
policy's settings (:mod:`tripwire.lab.policies`), then scored where it ran -- triage
against the expert table (:mod:`tripwire.lab.triage`), PnL and cost
(:mod:`tripwire.lab.metrics`) -- so only a compact dict comes back. The driver pools the
seeds (:mod:`tripwire.lab.summary`), prints the decision-log hash and writes the reports
(:mod:`tripwire.lab.report`).

Every policy runs the same backtest settings: the ``[risk]``/``[signoff]`` of the config
in DIRECT mode (``--mode``), with the market's symbols allowed (a synthetic market's small
caps are not in the default allow list, and a refusal there would measure the list, not the
analyst). All symbols are one shard (one account), so account-wide limits act as live.

The local model (``local``) needs its server: the driver starts it (llama.cpp, one
process, 127.0.0.1) and its tasks run one at a time -- the server answers one request at
a time, so parallel tasks would only queue there. ``--local-seeds`` bounds how many seeds
it runs (it is ~100x slower than the rules); its paired test uses the seeds it ran.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.backtest import ShardConfig, ShardData, ShardSpec, run_shard
from tripwire.lab import markets as lab_markets
from tripwire.lab.leakage import status as leakage_status
from tripwire.lab.leakage import trained_cutoffs
from tripwire.lab.metrics import run_metrics
from tripwire.lab.policies import (
    DECISIONS_UPDATE,
    EvalContext,
    Policy,
    Unavailable,
    local_available,
)
from tripwire.lab.triage import score_seed
from tripwire.model import NS_PER_SECOND

MAX_TASKS = 2_000
NS_PER_DAY = 86_400 * NS_PER_SECOND


@dataclass(frozen=True, slots=True)
class StorePeriod:
    url: str
    start_ns: int
    end_ns: int
    symbols: tuple[str, ...]
    warmup_s: float = 3_600.0


@dataclass(frozen=True, slots=True)
class EvalTask:
    """One (policy, seed) run. ``seed`` is the market's seed, or the day's index of a
    store period (the unit the statistics resample)."""

    policy: str
    analyst: bool
    overrides: dict[str, Any]
    seed: int
    market: lab_markets.MarketSpec | None = None
    store: StorePeriod | None = None


def _on_top(configured: Any, flip: Any) -> Any:
    """An arm's flip of a settings section that only switches it on (``MemorySettings(
    enabled=True)``) keeps the configured rest (``[memory] horizon_s``, ``max_items``...);
    any other flip replaces the section."""
    if (dataclasses.is_dataclass(flip) and type(flip) is type(configured)
            and hasattr(flip, "enabled") and flip == type(flip)(enabled=flip.enabled)):
        return dataclasses.replace(configured, enabled=flip.enabled)
    return flip


def run_eval_task(task: EvalTask, base: ShardConfig) -> dict[str, Any]:
    """Replay one (policy, seed) and score it (runs in a Ray worker or in process)."""
    t0, c0 = time.perf_counter(), time.process_time()
    over = dict(task.overrides)
    # An arm may flip decision settings ([memory], [panel]) on the shared base's rest.
    flips = over.pop(DECISIONS_UPDATE, None)
    config = dataclasses.replace(base, **over)
    if flips:
        flips = {k: _on_top(getattr(config.decisions, k), v) for k, v in flips.items()}
        config = dataclasses.replace(config,
                                     decisions=dataclasses.replace(config.decisions, **flips))
    if task.market is not None:
        m = lab_markets.build(task.market, task.seed)
        spec = ShardSpec(label=f"{task.policy}/seed{task.seed}", symbols=m.symbols.names,
                         start_ns=m.start_ns, end_ns=m.end_ns, warmup_s=m.warmup_s,
                         seed=task.seed)
        config = _allow(config, m.symbols.names)
        result = run_shard(spec, config, ShardData(m.symbols, m.chunks(), m.news))
        days = (m.end_ns - m.start_ns) / NS_PER_DAY
        events, describe = m.events, m.describe
        news = m.news
    else:
        st = task.store
        assert st is not None
        lo = st.start_ns + task.seed * NS_PER_DAY
        spec = ShardSpec(label=f"{task.policy}/day{task.seed}", symbols=st.symbols,
                         start_ns=lo, end_ns=min(lo + NS_PER_DAY, st.end_ns),
                         store_url=st.url, warmup_s=st.warmup_s, seed=0)
        config = _allow(config, st.symbols)
        result = run_shard(spec, config)
        days = (spec.end_ns - spec.start_ns) / NS_PER_DAY
        events, describe = [], {"scenario": "store", "url": st.url}
        news = []  # a stored period's headlines are real: no injections were planted
    rows = [{**r, "policy": task.policy, "seed": task.seed} for r in result["decisions"]]
    metrics = run_metrics(result, days=days)
    return {
        "policy": task.policy,
        "seed": task.seed,
        "days": days,
        "start_ns": spec.start_ns,
        "initial_cash": float(result.get("initial_cash") or 0.0),
        "metrics": metrics,
        "triage": score_seed(rows, events) if task.analyst and task.market else None,
        "rows": rows,
        "llm": result.get("llm"),
        "engine": config.engine.model_dump(mode="json"),  # the [engine] the replay ran
        "injections": lab_markets.injection_outcome(rows, news,
                                                    config.engine.news_window_s),
        "describe": describe,
        "elapsed_s": time.perf_counter() - t0,
        # CPU seconds of this task's process: what the run costs on an idle machine (wall
        # time on a shared one measures the neighbours too)
        "cpu_s": time.process_time() - c0,
    }


def _allow(config: ShardConfig, symbols: Iterable[str]) -> ShardConfig:
    d = config.decisions
    limits = dataclasses.replace(d.limits, allowed_symbols=frozenset(symbols))
    return dataclasses.replace(config, decisions=dataclasses.replace(d, limits=limits))


# ----------------------------------------------------------------------------- planning


@dataclass(slots=True)
class Plan:
    tasks: list[EvalTask]
    base: ShardConfig
    policies: list[Policy]
    skipped: dict[str, str]  # policy -> why it did not run
    leakage: dict[str, dict[str, Any]]
    source: dict[str, Any]
    needs_local: bool


def make_plan(policies: list[Policy], ctx: EvalContext, base: ShardConfig, *,
              seeds: list[int], market: lab_markets.MarketSpec | None = None,
              store: StorePeriod | None = None, local_seeds: int = 2) -> Plan:
    """The tasks of an eval; arms that cannot run here are skipped with the reason."""
    if (market is None) == (store is None):
        raise ValueError("an eval needs exactly one of a market and a store period")
    units = seeds
    if store is not None:
        n_days = max(1, -(-(store.end_ns - store.start_ns) // NS_PER_DAY))
        units = list(range(n_days))
    tasks, skipped, leak, ran = [], {}, {}, []
    needs_local = False
    for p in policies:
        if p.needs_local:
            why = local_available()
            if why is not None:
                skipped[p.name] = why
                continue
            needs_local = True
        try:
            over = p.configure(ctx) if not p.needs_local else {}
        except Unavailable as exc:
            skipped[p.name] = str(exc)
            continue
        if store is not None:
            leak[p.name] = leakage_status(store.start_ns, trained_cutoffs(over.get("llm")))
        else:
            leak[p.name] = {"out_of_sample": True,
                            "why": "synthetic market: no model has seen it"}
        use = units[:local_seeds] if p.needs_local else units
        tasks += [EvalTask(p.name, p.analyst, over, s, market, store) for s in use]
        ran.append(p)
    if len(tasks) > MAX_TASKS:
        raise ValueError(f"--seeds/--policies: {len(tasks)} tasks, more than {MAX_TASKS}")
    source = ({"kind": "market", **dataclasses.asdict(market), "seeds": list(seeds)}
              if market else {"kind": "store", "url": store.url, "start_ns": store.start_ns,
                              "end_ns": store.end_ns, "days": len(units)})
    return Plan(tasks, base, ran, skipped, leak, source, needs_local)


# ----------------------------------------------------------------------------- running

Progress = Callable[[dict[str, Any]], None]


def run_plan(plan: Plan, ctx: EvalContext, *, in_process: bool = False,
             num_cpus: float = 1.0, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Every task's result (in task order). The local server, when needed, is started
    here and stopped on return."""
    server = None
    try:
        if plan.needs_local:
            server = _start_local(ctx)
            local = {p.name: p.configure(ctx) for p in plan.policies if p.needs_local}
            plan.tasks = [dataclasses.replace(t, overrides=local[t.policy])
                          if t.policy in local else t for t in plan.tasks]
        if in_process:
            out = []
            for t in plan.tasks:
                try:
                    out.append(run_eval_task(t, plan.base))
                except Exception as exc:  # one arm's failure is reported, not fatal
                    out.append(failed(t, exc))
                if progress:
                    progress(out[-1])
            return out
        return _fan_out(plan, num_cpus, progress)
    finally:
        if server is not None:
            server.stop()


def failed(task: EvalTask, exc: BaseException) -> dict[str, Any]:
    """A task that did not finish: named in the report, left out of every figure (its
    seed is then unpaired for the paired test), and the command exits 1."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return {"policy": task.policy, "seed": task.seed, "error": f"{type(exc).__name__}: "
            f"{first[:300]}"}


def _start_local(ctx: EvalContext):
    from tripwire.llm.local import LocalServer

    server = LocalServer(threads=2)
    server.start()
    server.wait_ready()
    ctx.local_base_url = server.base_url
    ctx.extras["local_model_id"] = server.model_id
    return server


def _fan_out(plan: Plan, num_cpus: float, progress: Progress | None) -> list[dict[str, Any]]:
    import ray

    from actors.runtime import ensure_ray

    ensure_ray()
    remote = ray.remote(max_retries=0)(run_eval_task)
    base = ray.put(plan.base)
    serial = {p.name for p in plan.policies if p.needs_local}
    local = [i for i, t in enumerate(plan.tasks) if t.policy in serial]
    others = [i for i, t in enumerate(plan.tasks) if t.policy not in serial]
    results: dict[int, dict[str, Any]] = {}
    pending: dict[Any, int] = {}
    opts = {"num_cpus": num_cpus}
    for i in others:
        pending[remote.options(**opts).remote(plan.tasks[i], base)] = i
    queue = list(local)  # one at a time: the server serves one request at a time

    def next_local() -> None:
        if queue:
            i = queue.pop(0)
            pending[remote.options(**opts).remote(plan.tasks[i], base)] = i

    next_local()
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            i = pending.pop(ref)
            try:
                results[i] = ray.get(ref)
            except ray.exceptions.RayError as exc:  # a task or its worker died
                results[i] = failed(plan.tasks[i], exc)
            if plan.tasks[i].policy in serial:
                next_local()
            if progress:
                progress(results[i])
    return [results[i] for i in range(len(plan.tasks))]


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str))


def eprint(*a: Any) -> None:
    print(*a, file=sys.stderr)


# ----------------------------------------------------------------------------- the command


def cmd_eval(args: Any) -> int:
    """``tripwire eval``: plan, run with a progress bar, summarise, write the reports."""
    import os
    import platform

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tripwire.commands.common import UsageError
    from tripwire.config import load_settings
    from tripwire.lab import report
    from tripwire.lab.policies import BASELINE, DEFAULT_POLICIES, select
    from tripwire.lab.summary import summarise
    from tripwire.risk.modes import parse_safety_mode

    try:
        settings = load_settings(args.config)
    except ValueError as exc:
        raise UsageError(str(exc), argument="--config") from None
    try:
        mode = parse_safety_mode(args.mode, "--mode")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    cassette = None
    if args.cassette:
        try:
            cassette = Path(args.cassette).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {args.cassette}: {exc.strerror}",
                             argument="--cassette") from None
    ctx = EvalContext(llm=settings.llm, cassette_text=cassette, cassette_name=args.cassette)
    names = [n.strip() for n in (args.policies or ",".join(DEFAULT_POLICIES)).split(",")
             if n.strip()]
    if cassette is not None and "cassette" not in names:
        names.append("cassette")
    try:
        policies = select(names, ctx)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # The engine's own settings ([engine]: the market reference symbol, the market state's
    # bounds) as every other driver reads them: the lab measures the configured system.
    base = ShardConfig(decisions=dataclasses.replace(settings.decisions, mode=mode),
                       detector=settings.detector, engine=settings.engine, llm=None)
    seeds = list(range(args.seed_base, args.seed_base + args.seeds))
    market = store = None
    try:
        if args.store:
            store = _store_period(args)
        else:
            market = lab_markets.MarketSpec(args.scenario, args.symbols, args.days,
                                            injections=getattr(args, "injections", None))
        plan = make_plan(policies, ctx, base, seeds=seeds, market=market, store=store,
                         local_seeds=args.local_seeds)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for r in settings.llm.routes:  # paid routes spend money: only when asked for by name
        if r.provider not in ("rules", "fixed") and f"route:{r.name}" not in names:
            plan.skipped[f"route:{r.name}"] = (f"configured but not run by default (it may "
                                               f"spend money): add --policies route:{r.name}")
    in_process = args.in_process or bool(store and store.url.startswith("chdb"))
    console = Console(stderr=True)
    for name, why in plan.skipped.items():
        console.print(f"[yellow]{name} skipped[/]: {why}")
    t0 = time.perf_counter()
    with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console,
                  disable=args.json and not console.is_terminal) as bar:
        job = bar.add_task("", total=len(plan.tasks))

        def tick(r: dict[str, Any]) -> None:
            what = (f"FAILED: {r['error']}" if "error" in r else
                    f"{r['metrics']['incidents']} incidents, PnL {r['metrics']['pnl']:+.2f}")
            bar.update(job, advance=1, description=f"{r['policy']} seed {r['seed']}: {what}")

        if not in_process:  # [ray] address, else a private local Ray (actors.runtime)
            from actors.runtime import ensure_command_ray

            ensure_command_ray(settings.data_dir, settings.ray_address)
        results = run_plan(plan, ctx, in_process=in_process, num_cpus=args.num_cpus,
                           progress=tick)
    wall = time.perf_counter() - t0
    errors = [r for r in results if "error" in r]
    results = [r for r in results if "error" not in r]
    s = summarise(results, baseline=BASELINE, order=[p.name for p in plan.policies])
    s["failed_tasks"] = [f"{r['policy']} seed {r['seed']}: {r['error']}" for r in errors]
    s["skipped"] = plan.skipped
    s["leakage"] = plan.leakage
    s["notes"] = _notes(results)
    s["run"] = {
        "source": plan.source,
        "source_text": _source_text(plan, results),
        "seeds_text": (f"{len(seeds)} ({seeds[0]}..{seeds[-1]})" if market else
                       f"{plan.source['days']} day(s) of the store"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), "
                   f"{'in process' if in_process else 'Ray tasks'}",
        "wall_s": wall, "tasks": len(plan.tasks), "mode": mode.value,
        "cpu_s": sum(r.get("cpu_s", 0.0) for r in results),
        "engine": results[0]["engine"] if results else settings.engine.model_dump(mode="json"),
        "injections": market.injections if market else None,  # None: the scenario's default
    }
    out = Path(args.out) if args.out else Path(settings.data_dir) / "eval"
    files = report.write(s, out)
    if args.json:
        slim = {k: v for k, v in s.items() if k != "equity"}
        print(json.dumps({**slim, "reports": {k: str(v) for k, v in files.items()}},
                         sort_keys=True, default=str))
    else:
        for line in summary_lines(s):
            print(line)
        print(f"Reports: {files['md']} and {files['html']}")
    return 1 if errors else 0


def _store_period(args: Any) -> StorePeriod:
    if args.start is None or args.end is None:
        raise ValueError("--store needs --start and --end (the period to replay)")
    if args.end <= args.start:
        raise ValueError("--end must be after --start")
    names = tuple(n.strip() for n in (args.names or "").split(",") if n.strip())
    if not names:
        from tripwire.store.ticks import TickStore

        with TickStore(args.store) as ts:
            names = tuple(ts.symbols())
    if not names:
        raise ValueError(f"--store: no symbols in {args.store}")
    return StorePeriod(args.store, args.start, args.end, names)


def _source_text(plan: Plan, results: list[dict[str, Any]]) -> str:
    src = plan.source
    if src["kind"] == "store":
        return f"tick store {src['url']} ({src['days']} day(s))"
    d = results[0]["describe"] if results else {}
    return (f"{src['scenario']} market, {d.get('symbols', '?')} symbols x "
            f"{d.get('days', 0):.3g} day(s) per seed")


def _notes(results: list[dict[str, Any]]) -> list[str]:
    notes = []
    if results and all(r["metrics"].get("max_drawdown") is None for r in results):
        notes.append("max drawdown, hit rate, turnover, exposure time and the equity curves "
                     "need the backtest's fill log (run_shard's 'fill_log'), which this "
                     "backtest does not return yet: n/a")
    if results and all(r["metrics"].get("latency_ms_per_call") is None for r in results):
        notes.append("latency per call needs the backtest's ledger latency "
                     "('llm.latency_ms_mean'): n/a")
    return notes


def summary_lines(s: dict[str, Any]) -> list[str]:
    """The short, true summary printed at the end."""
    out = [f"Eval: {s['run']['source_text']}, seeds {s['run']['seeds_text']}, "
           f"{s['run']['tasks']} tasks in {s['run']['wall_s']:.0f} s "
           f"({s['run'].get('cpu_s', 0):.0f} task CPU-s)."]
    for p in s["policies"]:
        d = s["decisions"][p]
        line = f"  {p}: net PnL {report_ci(d['pnl'])}"
        t = d.get("vs_baseline")
        if t is not None:
            line += (f"; vs {s['baseline']} {t['mean_diff']:+.4g} "
                     f"(p={t['p_value']:.3g}: {t['verdict']})")
        tri = s["triage"].get(p)
        if tri:
            line += f"; macro-F1 {report_ci(tri['macro_f1'], '{:.3f}')}"
        c = s["cost"][p]
        line += f"; USD/incident {c['usd_per_incident']['mean'] or 0:.4g}"
        out.append(line)
    inj = s.get("injections") or {}
    if inj:
        out.append("  injected headlines: " + ", ".join(
            f"{p} traded {v['traded']} of {v['incidents']} incidents that saw one"
            for p, v in inj.items()))
    for name, why in s.get("skipped", {}).items():
        out.append(f"  {name}: skipped ({why})")
    for what in s.get("failed_tasks", []):
        out.append(f"  FAILED {what}")
    out.append(f"Decision-log hash: {s['hashes']['all']}")
    return out


def report_ci(d: dict[str, Any] | None, fmt: str = "{:.4g}") -> str:
    from tripwire.lab.report import ci_text

    return ci_text(d, fmt)
