"""The detectors' commands: ``tripwire detect-demo`` and ``tripwire detect-eval``.

``detect-demo`` runs the detectors alone, in process, over the labelled scenario market
(:mod:`tripwire.demo`) and prints which injected events tripped; ``detect-eval`` (parsed in
:mod:`tripwire.detect.cli`) scores them per liquidity tier over many markets.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tripwire.argtypes import int_in, positive_float
from tripwire.commands.common import UsageError, add_config, add_json
from tripwire.detect.cli import register as register_detect_eval


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("detect-demo",
                       help="run the detectors alone over the labelled scenario market",
                       description="The default scenario's ticks through the configured "
                       "detectors in process, scored against its labelled events.")
    d.add_argument("--seed", type=int, help="scenario seed (default: the default scenario)")
    d.add_argument("--symbols", type=int_in(1), help="scenario symbols (default 24)")
    d.add_argument("--hours", type=positive_float, help="simulated hours (default 24)")
    add_config(d)
    add_json(d)
    d.set_defaults(func=cmd_demo)
    register_detect_eval(sub)


def cmd_demo(args: argparse.Namespace) -> int:
    from tripwire import demo
    from tripwire.config import load_settings

    err, out = Console(stderr=True), Console()
    try:
        settings = load_settings(args.config)
        market = demo.market(args.seed, args.symbols, args.hours)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with Progress(TextColumn("[bold]detecting"), BarColumn(), TextColumn("{task.completed:,} "
                  "ticks"), TimeElapsedColumn(), console=err, transient=True,
                  disable=args.json or not err.is_terminal) as bar:
        task = bar.add_task("ticks", total=market.estimated_ticks)
        run = demo.run(market, settings.detector, lambda n: bar.update(task, advance=n))
    s = demo.summary(run)
    if args.json:
        print(json.dumps(s))
        return 0
    table = Table(title="Injected events")
    for col in ("event", "symbol", "at (h)", "detected"):
        table.add_column(col)
    for e in s["events"]:
        shown = ("[dim]must not trip[/dim]" if e["detected"] is None else
                 "[green]yes[/green]" if e["detected"] else "[yellow]no[/yellow]")
        table.add_row(e["event"], e["symbol"], f"{e['at_h']:.2f}", shown)
    out.print(table)
    out.print(
        f"[bold]summary[/bold]: {s['ticks']:,} ticks over {s['symbols']} symbols in "
        f"{s['seconds']:.2f} s ({s['ticks_per_s']:,} ticks/s, generation included); "
        f"{s['trips']} trips, {s['alarms']} alarms of which {s['false_alarms']} outside "
        f"labelled events (precision {s['precision']:.2f}); slow-trend return trips: "
        f"{s['slow_trend_trips']}; {s['rejected']} ticks rejected."
    )
    return 0
