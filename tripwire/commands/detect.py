"""The detectors' commands: ``tripwire detect-demo`` and ``tripwire detect-eval``.

``detect-demo`` runs the detectors alone, in process, over the labelled scenario market
(:mod:`tripwire.demo`) and prints which injected events they caught; ``detect-eval``
(parsed in :mod:`tripwire.detect.cli`) scores them against the labels.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tripwire.argtypes import int_in
from tripwire.commands.common import UsageError, add_json
from tripwire.detect.cli import register as register_detect_eval


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("detect-demo",
                       help="run the detectors alone over a generated, labelled market")
    d.add_argument("--symbols", type=int_in(1), default=50)
    d.add_argument("--ticks-per-symbol", type=int_in(1), default=20_000)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--batch-size", type=int_in(1), default=50_000)
    add_json(d)
    d.set_defaults(func=cmd_demo)
    register_detect_eval(sub)



def cmd_demo(args: argparse.Namespace) -> int:
    from tripwire import demo

    err = Console(stderr=True)
    out = Console()
    try:
        market = demo.generate(args.symbols, args.ticks_per_symbol, args.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    total = len(market.ticks)
    counts = {"trips": 0}
    with Progress(
        TextColumn("[bold]detecting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ticks · {task.fields[trips]} trips"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=args.json or not err.is_terminal,
    ) as bar:
        task = bar.add_task("ticks", total=total, trips=0)

        def advance(n: int, trips: int) -> None:
            counts["trips"] += trips
            bar.update(task, advance=n, trips=counts["trips"])

        bank, trips, seconds = demo.run(market, demo.demo_config(), args.batch_size, advance)
    found = demo.match(market.events, trips)
    c = bank.counters()
    summary = {
        "ticks": total,
        "symbols": len(market.symbols),
        "seconds_in_detectors": round(seconds, 3),
        "ticks_per_s": round(total / seconds) if seconds else None,
        "trips": c["trips"],
        "suppressed_by_cooldown": c["suppressed"],
        "rejected": c["rejected"],
        "unlabelled_trips": demo.unlabelled(market.events, trips),
        "events": found,
        "bytes_per_symbol": bank.bytes_per_symbol,
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    table = Table(title="Injected events")
    for col in ("event", "symbol", "detected", "metrics", "max |z|"):
        table.add_column(col)
    for f in found:
        table.add_row(
            f["event"],
            market.symbols[f["symbol_id"]],
            "[green]yes[/green]" if f["detected"] else "[yellow]no[/yellow]",
            ", ".join(f["metrics"]) or "-",
            f"{f['max_abs_z']:.1f}" if f["max_abs_z"] is not None else "-",
        )
    out.print(table)
    out.print(
        f"[bold]summary[/bold]: {total:,} ticks over {len(market.symbols)} symbols in "
        f"{seconds:.2f} s of detector time ({summary['ticks_per_s']:,} ticks/s); "
        f"{c['trips']} trips, {c['suppressed']} suppressed by cool-down, "
        f"{summary['unlabelled_trips']} trips outside labelled events, {c['rejected']} rejected."
    )
    return 0
