"""`tripwire calibrate`: per-symbol detector thresholds that meet a false-trip budget.

The arguments are parsed in :mod:`actors.commands`; this module runs the command.

Reads a quiet period of the user's own data (Binance trade dumps, or the tick store by
replay), runs the detectors once (tripwire.detect.calibrate), prints the expected trips per
day per symbol and what was given up, and writes a TOML file the live path reads with
``[detector] calibration = "<file>"``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from actors.ingest import binance_csv_files
from tripwire.commands.common import UsageError
from tripwire.config import load_settings


def _batches(args: argparse.Namespace, settings):
    """(iterable of TickBatch, SymbolTable, source text)."""
    if args.source == "binance-csv":
        from tripwire.adapters.binance.loader import BinanceCsvFeed

        feed = BinanceCsvFeed(binance_csv_files(args), symbol=args.symbol)
        return (c.ticks for c in feed.iter_chunks()), feed.symbols, feed.source
    if args.files:
        raise UsageError("files are only read by --source binance-csv")
    return _replay(args, settings)


def _replay(args: argparse.Namespace, settings):
    import ray

    from actors.ingest import _replay_factory
    from actors.runtime import ensure_command_ray, kill_and_wait
    from actors.sink import TickSink
    from tripwire.model import SymbolTable

    args.speed = None
    make, symbols = _replay_factory(args, settings)
    ensure_command_ray(settings.data_dir, settings.ray_address)
    sink = ray.remote(TickSink).options(num_cpus=0).remote(
        args.store or settings.store_url, SymbolTable())

    def batches():
        try:
            for chunk in make(sink).iter_chunks():
                yield chunk.ticks
        finally:
            kill_and_wait(sink)

    return batches(), symbols, "replay"


def cmd_calibrate(args: argparse.Namespace) -> int:
    from tripwire.detect.calibrate import calibrate, parse_budget, to_toml

    err, out = Console(stderr=True), Console()
    try:
        budget = parse_budget(args.budget)
        settings = load_settings(args.config)
        batches, symbols, source = _batches(args, settings)
        err.print(f"calibrate: reading {source} ...")
        results = calibrate(batches, symbols, budget, settings.detector)
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"[red]tripwire calibrate: {exc}[/red]")
        return 2
    if not results:
        err.print("[red]tripwire calibrate: no ticks were read; nothing written[/red]")
        return 2
    Path(args.out).write_text(to_toml(results, source=source, budget=budget))
    rows = [
        {
            "symbol": r.symbol, "ticks": r.ticks, "days": round(r.days, 3),
            "trips_per_day_base": round(r.base_trips_per_day, 3),
            "multiplier": r.multiplier, "trips_per_day": round(r.trips_per_day, 3),
            "budget_met": r.met, "thresholds": list(r.thresholds),
            "min_move_pct": None if r.min_move != r.min_move else round(r.min_move * 100, 3),
        }
        for r in results
    ]
    if args.json:
        print(json.dumps({"out": args.out, "budget_per_day": budget, "symbols": rows}))
    else:
        t = Table(title=f"calibration ({source}, budget {budget:g}/day) -> {args.out}")
        for col in ("symbol", "ticks", "days", "trips/day at base", "x threshold",
                    "expected trips/day", "min 10 s move reported"):
            t.add_column(col)
        for r in rows:
            move = "-" if r["min_move_pct"] is None else f"{r['min_move_pct']:.2f} %"
            t.add_row(r["symbol"], str(r["ticks"]), str(r["days"]),
                      f"{r['trips_per_day_base']:.2f}", f"{r['multiplier']:g}",
                      f"{r['trips_per_day']:.2f}" + ("" if r["budget_met"] else " (over)"), move)
        out.print(t)
        over = [r["symbol"] for r in rows if not r["budget_met"]]
        out.print(f"{len(rows)} symbols calibrated; "
                  + (f"budget not met for {', '.join(over)}." if over else "all within budget."))
    return 0
