"""``tripwire detect-eval``: the detectors scored per liquidity tier on a labelled market.

For each ``--nu`` it runs the quiet pass (no event: false trips and LLM calls per
symbol-day per tier) and the event pass (recall per kind and size per tier, detection
delays), see :mod:`tripwire.detect.eval_run`, with the detector settings of ``--config``
(default: ``DetectorConfig()``). Prints the per-tier table, the recall-vs-size curve and a
summary, or with ``--json`` one object (several ``--nu``: ``{"runs": [...], ...}``).
``--plot FILE`` draws the curve to a PNG. Exit codes: 0 done (whatever the figures), 2 bad
usage or input, 1 the run failed.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tripwire.argtypes import int_in, positive_float

PIPED_WIDTH = 180  # columns of the tables when stdout is not a terminal


def _nu_list(text: str) -> list[float]:
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            v = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected numbers > 2 (e.g. 3,4,10), got {part!r}"
                                             ) from None
        if not (v > 2) or math.isnan(v):
            raise argparse.ArgumentTypeError(f"expected numbers > 2 (inf: Gaussian), got {part}")
        out.append(v)
    return out


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser(
        "detect-eval",
        help="score the detectors per liquidity tier on a labelled market",
        description="Score the detectors per liquidity tier on a labelled market: false trips "
        "and LLM calls per symbol-day on event-free days, recall per event kind and size, "
        "detection delays.",
    )
    ev.add_argument("--scenario", default="realistic", metavar="NAME|SEED",
                    help="realistic (default), default (the original scenario), or a seed "
                         "of the realistic market")
    ev.add_argument("--nu", type=_nu_list, metavar="NU[,NU...]",
                    help="Student-t degrees of freedom of the returns (default: 4); several "
                         "run one after the other, e.g. 3,4,10")
    ev.add_argument("--symbols", type=int_in(1, 10_000), help="symbols (default 24)")
    ev.add_argument("--days", type=positive_float, help="simulated days (default 1)")
    ev.add_argument("--no-events", action="store_true",
                    help="the quiet pass only (false trips and LLM calls, no recall)")
    ev.add_argument("--budget", type=positive_float, default=1.0,
                    help="false trips per symbol-day every tier must stay under (default 1)")
    ev.add_argument("--plot", metavar="FILE", help="draw the recall-vs-size curve to a PNG")
    ev.add_argument("--detectors", choices=("settings", "legacy"), default="settings",
                    help="settings: the [detector] of --config (default: DetectorConfig()); "
                         "legacy: the defaults before issue 16, for comparison")
    ev.add_argument("--config", help="TOML settings file (default: $TRIPWIRE_CONFIG)")
    ev.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ev.set_defaults(func=cmd_detect_eval)


def cmd_detect_eval(args: argparse.Namespace) -> int:
    from tripwire.config import load_settings
    from tripwire.detect.eval_run import MarketSpec, build_market, parse_scenario

    # Piped (CI logs, a closing note): rich would fold the tables into 80 columns and cut
    # every header to "fal…"; a file gets the tables' natural width instead.
    err, out = Console(stderr=True), Console()
    if not out.is_terminal:
        out = Console(width=PIPED_WIDTH)
    try:
        settings = load_settings(args.config)
        scenario, seed = parse_scenario(args.scenario)
        nus = args.nu or [None]
        specs = [MarketSpec(scenario, seed, nu, args.symbols, args.days) for nu in nus]
        if args.days is not None and args.days * 1440 < 1:
            raise ValueError(f"--days must cover at least one minute, got {args.days}")
        if args.plot and not args.plot.lower().endswith(".png"):
            raise ValueError(f"--plot writes a PNG; the file name must end in .png: {args.plot}")
        # Build every market up front: a bad combination fails before any work.
        markets = [(s, build_market(s, events=False),
                    None if args.no_events else build_market(s, events=True)) for s in specs]
    except ValueError as exc:
        err.print(f"[red]tripwire detect-eval: {exc}[/red]")
        return 2
    detector = settings.detector
    if args.detectors == "legacy":
        from tripwire.detect.config import DetectorConfig

        detector = DetectorConfig.legacy()
    try:
        runs = _run_all(markets, settings, detector, err, enabled=not args.json)
        for r in runs:
            r["detectors"] = args.detectors
    except Exception as exc:
        err.print(f"[red]tripwire detect-eval: the run failed: {exc}[/red]")
        return 1
    if args.plot:
        from tripwire.detect.plot import plot_curves

        plot_curves(runs, Path(args.plot))
    if args.json:
        if len(runs) == 1:
            print(json.dumps(runs[0]))
        else:
            print(json.dumps({"runs": runs, "budget": args.budget,
                              "budget_ok": all(r.get("budget_ok", True) for r in runs)}))
        return 0
    for r in runs:
        _print_run(out, r)
    if args.plot:
        out.print(f"curve plotted to {args.plot}")
    return 0


def _run_all(markets, settings, detector, err: Console, *, enabled: bool
             ) -> list[dict[str, Any]]:
    from tripwire.detect.eval_run import evaluation_json, run_pass

    total = sum(q.estimated_ticks + (e.estimated_ticks if e else 0) for _, q, e in markets)
    cooldown = settings.decisions.ns("incident_cooldown_s")
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("ticks"), TimeElapsedColumn(), console=err, transient=True,
                   disable=not enabled)
    runs = []
    with bar:
        task = bar.add_task("scoring", total=total)

        def advance(n: int) -> None:
            bar.update(task, advance=n)

        for spec, quiet_m, event_m in markets:
            nu = quiet_m.describe["nu"]
            bar.update(task, description=f"quiet pass, nu={nu:g}")
            quiet = run_pass(quiet_m, detector, incident_cooldown_ns=cooldown,
                             progress=advance)
            events = None
            if event_m is not None:
                bar.update(task, description=f"event pass, nu={nu:g}")
                events = run_pass(event_m, detector, incident_cooldown_ns=cooldown,
                                  progress=advance)
            runs.append(evaluation_json(spec, quiet, events, quiet_m.describe))
    return runs


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _print_run(out: Console, r: dict[str, Any]) -> None:
    d = r["scenario"]
    title = (f"{r.get('detectors', 'settings')} detectors on {d['scenario']} seed {d['seed']}, "
             f"nu={d['nu']:g}, {d['symbols']} symbols x "
             f"{d['days']:g} d" + (f", regimes {', '.join(d['regimes'])}" if 'regimes' in d
                                   else ""))
    table = Table(title=f"per liquidity tier — {title}")
    cols = ("tier", "symbols", "false trips/sym-day", "LLM calls/sym-day", "events",
            "recall", "by chance", "delay p50 s", "delay p95 s", "LLM calls/sym-day (events)")
    table.add_column(cols[0], no_wrap=True)
    for c in cols[1:]:
        table.add_column(c, justify="right")
    for t in r["tiers"]:
        delay = t.get("delay_s") or {}
        table.add_row(
            t["tier"], str(t["symbols"]), _fmt(t.get("false_trips_per_symbol_day"), 3),
            _fmt(t.get("llm_calls_per_symbol_day"), 3),
            f"{t['detected']}/{t['events']}" if "events" in t else "-",
            _fmt(t.get("recall")), _fmt(t.get("chance_recall")),
            _fmt(delay.get("p50"), 1), _fmt(delay.get("p95"), 1),
            _fmt(t.get("llm_calls_per_symbol_day_event_days"), 3),
        )
    out.print(table)
    if "recall_curve" in r:
        _print_curve(out, r)
        _print_kinds(out, r)
        _print_delays(out, r)
    _print_summary(out, r)


def _print_curve(out: Console, r: dict[str, Any]) -> None:
    table = Table(title="recall vs event size: recall detected/events")
    table.add_column("tier", no_wrap=True)
    for b in r["size_buckets"]:
        table.add_column(b, justify="right")
    for tier, row in r["recall_curve"].items():
        cells = []
        for b in r["size_buckets"]:
            c = row.get(b, {"events": 0})
            cells.append("-" if not c["events"] else
                         f"{c['recall']:.2f} {c['detected']}/{c['events']}")
        table.add_row(tier, *cells)
    out.print(table)


def _print_kinds(out: Console, r: dict[str, Any]) -> None:
    tiers = list(r["recall_by_tier_kind"])
    kinds = list(r["recall"])
    table = Table(title="recall per event kind and tier: recall detected/events")
    table.add_column("kind", no_wrap=True)
    for t in tiers:
        table.add_column(t, justify="right")
    table.add_column("all", justify="right")
    for k in kinds:
        cells = []
        for t in tiers:
            c = r["recall_by_tier_kind"][t].get(k)
            cells.append("-" if not c else f"{c['recall']:.2f} {c['detected']}/{c['events']}")
        table.add_row(k, *cells, _fmt(r["recall"][k]))
    out.print(table)


def _print_delays(out: Console, r: dict[str, Any]) -> None:
    tiers = list(r["delay_s_by_tier_kind"])
    table = Table(title="detection delay p50 / p95 s per event kind and tier")
    table.add_column("kind", no_wrap=True)
    for t in tiers:
        table.add_column(t, justify="right")
    for k in r["recall"]:
        cells = []
        for t in tiers:
            d = r["delay_s_by_tier_kind"][t].get(k)
            cells.append("-" if not d or not d["n"] else f"{d['p50']:.1f} / {d['p95']:.1f}")
        table.add_row(k, *cells)
    out.print(table)


def _print_summary(out: Console, r: dict[str, Any]) -> None:
    parts = []
    if "false_trips_per_symbol_day" in r:
        verdict = "[green]within[/green]" if r["budget_ok"] else "[red]over[/red]"
        parts.append(
            f"quiet days: {r['false_trips_per_symbol_day']:.3f} false trips per symbol-day "
            f"(worst tier {r['false_trips_per_symbol_day_worst_tier']:.3f}, {verdict} the "
            f"budget of {r['budget']:g}), {r['llm_calls_per_symbol_day']:.3f} LLM calls per "
            f"symbol-day, {r['quiet_ticks']:,} ticks"
        )
    if "recall" in r:
        rec = [v for v in r["recall"].values() if v is not None]
        parts.append(
            f"event days: recall {min(rec):.2f}..{max(rec):.2f} over kinds, precision "
            f"{r['precision']:.3f}, {r['llm_calls_per_symbol_day_event_days']:.3f} LLM calls "
            f"per symbol-day, {r['event_ticks']:,} ticks" if rec else "event days: no events"
        )
    out.print("[bold]summary[/bold]: " + "; ".join(parts))
