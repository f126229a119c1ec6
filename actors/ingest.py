"""``tripwire ingest``'s driver (its arguments are parsed in :mod:`actors.commands`).

It runs the real pipeline on Ray (a local one unless ``RAY_ADDRESS`` or ``[ray] address``
names a cluster), show a live progress line, and end with a summary (``--json``: one JSON
object on stdout). Exit codes: 0 done, 1 the run failed, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from actors.feed import FlowConfig
from actors.pipeline import Pipeline, PipelineConfig, PipelineResult
from tripwire.commands.common import UsageError
from tripwire.config import Settings, load_settings
from tripwire.model import SymbolTable


def binance_csv_files(args: argparse.Namespace) -> list[str]:
    """``--source binance-csv``'s files, each one there (else a UsageError naming it)."""
    if not args.files:
        raise UsageError("--source binance-csv needs one or more files")
    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        raise UsageError(f"no such file: {missing[0]}")
    return list(args.files)


# ----------------------------------------------------------------------------- feeds


def _scenario_config(args: argparse.Namespace, seed: int | None):
    from tripwire.feeds.scenario import default_scenario_config

    cfg = default_scenario_config(seed)
    over: dict[str, Any] = {}
    if getattr(args, "symbols", None):
        over["n_symbols"] = args.symbols
    if getattr(args, "days", None):
        over["duration_s"] = args.days * 86_400
    return replace(cfg, **over) if over else cfg


def feed_factory(args: argparse.Namespace, settings: Settings) -> tuple[Callable, SymbolTable]:
    """A picklable factory (the feed is built inside its actor) and the symbol table."""
    if args.source == "scenario":
        from tripwire.feeds.scenario import Scenario, ScenarioFeed

        cfg = _scenario_config(args, args.seed)
        symbols = Scenario(cfg).symbols
        speed = args.speed
        return (lambda: ScenarioFeed(cfg, speed=speed)), symbols
    if args.source == "binance":
        from tripwire.adapters.binance.config import DEFAULT_BASE_URL
        from tripwire.adapters.binance.websocket import BinanceWebSocketFeed

        if not args.streams:
            raise UsageError("--source binance needs --streams, e.g. btcusdt@trade")
        streams = [s.strip() for s in args.streams.split(",") if s.strip()]
        url = args.url or DEFAULT_BASE_URL
        symbols = BinanceWebSocketFeed(streams, base_url=url).symbols  # validates early
        return (lambda: BinanceWebSocketFeed(streams, base_url=url)), symbols
    if args.source == "binance-csv":
        from tripwire.adapters.binance.loader import BinanceCsvFeed

        files, symbol = binance_csv_files(args), args.symbol
        symbols = BinanceCsvFeed(files, symbol=symbol).symbols
        return (lambda: BinanceCsvFeed(files, symbol=symbol)), symbols
    return _replay_factory(args, settings)


def _replay_factory(args: argparse.Namespace, settings: Settings):
    from actors.sink import SinkReader
    from tripwire.feeds.replay import ReplayFeed

    names = [n.strip() for n in args.names.split(",") if n.strip()] if args.names else None
    stored = _store_symbols(args.store or settings.store_url)
    if not stored:
        raise UsageError("the tick store holds no ticks to replay")
    unknown = sorted(set(names or ()) - set(stored))
    if unknown:
        raise UsageError(f"not in the tick store: {', '.join(unknown)}")
    symbols = SymbolTable(names or stored)
    speed, start, end = args.speed, args.start, args.end

    def make(sink):
        return ReplayFeed(SinkReader(sink), symbols, names=names, start_ns=start, end_ns=end,
                          speed=speed)

    return make, symbols


def _store_symbols(url: str) -> list[str]:
    """The symbols in the store, asked of a short-lived sink actor (chdb: one process)."""
    import ray

    from actors.runtime import ensure_ray, kill_and_wait
    from actors.sink import TickSink

    ensure_ray()
    sink = ray.remote(TickSink).options(num_cpus=0).remote(url, SymbolTable())
    try:
        return ray.get(sink.store_symbols.remote())
    finally:
        ray.get(sink.close.remote())
        kill_and_wait(sink)  # the pipeline's own sink opens the same directory next


# ----------------------------------------------------------------------------- running


def _pipeline_config(args, settings: Settings, *, store_url: str | None, **flow_over):
    p = settings.pipeline
    flow = FlowConfig(
        batch_rows=p.batch_rows, batch_ms=p.batch_ms, max_inflight=p.max_inflight,
        buffer_ticks=p.buffer_ticks, **flow_over,
    )
    return PipelineConfig(
        n_shards=args.shards or p.shards, detector=settings.detector, flow=flow,
        store_url=store_url, sink_flush_rows=p.sink_flush_rows, sink_flush_ms=p.sink_flush_ms,
    )


class _Live:
    """The progress line: ticks, rate, trips, dead letters; a bar when the total is known."""

    def __init__(self, console: Console, total: int | None, enabled: bool) -> None:
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[ticks]} ticks · {task.fields[rate]}/s · "
                       "{task.fields[trips]} trips · {task.fields[dead]} dead · "
                       "{task.fields[shed]} shed"),
            TimeElapsedColumn(),
            console=console, transient=True, disable=not enabled,
        )
        self.task = self.bar.add_task("ingest", total=total, ticks="0", rate="0", trips=0,
                                      dead=0, shed=0)

    def update(self, s: dict[str, Any]) -> None:
        rate = s["ticks_scored"] / s["elapsed_s"] if s.get("elapsed_s") else 0
        self.bar.update(self.task, completed=s["ticks_in"], ticks=f"{s['ticks_scored']:,}",
                        rate=f"{rate:,.0f}", trips=s["trips"], dead=s["dead_letters"],
                        shed=s["shed_ticks"])


def _run(pipeline: Pipeline, live: _Live, run_for: float | None) -> PipelineResult:
    started = time.monotonic()
    stopping = {"asked": False}

    def on_progress(stats: dict[str, Any]) -> None:
        live.update(stats)
        if run_for is not None and not stopping["asked"] and time.monotonic() - started > run_for:
            stopping["asked"] = True
            pipeline.stop()

    def on_sigint(signum, frame) -> None:  # first Ctrl-C: stop cleanly, keep what was read
        if stopping["asked"]:
            raise KeyboardInterrupt
        stopping["asked"] = True
        pipeline.stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with live.bar:
            return pipeline.run(progress=on_progress, poll_s=0.2)
    finally:
        signal.signal(signal.SIGINT, previous)


def _fail(err: Console, command: str, exc: BaseException, code: int) -> int:
    err.print(f"[red]tripwire {command}: {exc}[/red]")
    return code


def cmd_ingest(args: argparse.Namespace) -> int:
    err, out = Console(stderr=True), Console()
    try:
        settings = load_settings(args.config)
        if args.source != "binance-csv" and args.files:
            raise UsageError(f"files are only read by --source binance-csv, not {args.source}")
        if args.source == "replay" and args.no_store:
            raise UsageError("--source replay reads the tick store; --no-store makes no sense")
        store = None if args.no_store else (args.store or settings.store_url)
        make_feed, symbols = feed_factory(args, settings)
        cfg = _pipeline_config(args, settings, store_url=store,
                               store_ticks=args.source != "replay",
                               live=args.source == "binance")
    except (ValueError, OSError) as exc:
        return _fail(err, "ingest", exc, 2)
    total = _expected_ticks(args)
    try:
        with Pipeline(make_feed, symbols, cfg, address=settings.ray_address) as pipeline:
            res = _run(pipeline, _Live(err, total, not args.json), args.run_for)
            store_counts = _store_counts(pipeline) if store else None
    except ValueError as exc:
        return _fail(err, "ingest", exc, 2)
    except Exception as exc:
        return _fail(err, "ingest", exc, 1)
    summary = _summary(args.source, res, store, store_counts)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(out, summary)
    return 0


def _expected_ticks(args: argparse.Namespace) -> int | None:
    if args.source != "scenario":
        return None
    from tripwire.feeds.scenario import Scenario

    return Scenario(_scenario_config(args, args.seed)).estimated_ticks


def _store_counts(pipeline: Pipeline) -> dict[str, int]:
    import ray

    return ray.get(pipeline.sink.counts.remote())


def _summary(source: str, res: PipelineResult, store: str | None, counts) -> dict[str, Any]:
    f = res.feed
    return {
        "source": source,
        "ticks_in": f["ticks_in"],
        "ticks_scored": f["ticks_scored"],
        "ticks_per_s": round(res.ticks_per_s),
        "wall_s": round(res.wall_s, 3),
        "trips": f["trips"],
        "anomalies": f["anomalies"],
        "dead_letters": f["dead_letters"],
        "dead_by_reason": f["dead_by_reason"],
        "gaps": f["gaps"],
        "shed_ticks": f["shed_ticks"],
        "news": f["news"],
        "shards": len(res.shards),
        "store": _redact(store),
        "store_rows": counts,
    }


def _redact(url: str | None) -> str | None:
    """A URL without its password (secrets never reach output)."""
    from tripwire.store.tick_urls import redact_url

    return None if url is None else redact_url(url)


def _print_summary(out: Console, s: dict[str, Any]) -> None:
    table = Table(title=f"ingest from {s['source']}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for key in ("ticks_in", "ticks_scored", "trips", "anomalies", "dead_letters", "gaps",
                "shed_ticks", "news"):
        table.add_row(key.replace("_", " "), f"{s[key]:,}")
    for reason, n in sorted(s["dead_by_reason"].items()):
        table.add_row(f"  dead: {reason}", f"{n:,}")
    if s["store_rows"] is not None:
        for name, n in s["store_rows"].items():
            table.add_row(f"store rows: {name}", f"{n:,}")
    out.print(table)
    out.print(
        f"[bold]summary[/bold]: {s['ticks_scored']:,} ticks scored in {s['wall_s']:.1f} s "
        f"({s['ticks_per_s']:,} ticks/s) on {s['shards']} shards; {s['trips']} trips, "
        f"{s['dead_letters']} dead letters, {s['shed_ticks']} shed; store: {s['store'] or 'off'}"
    )

