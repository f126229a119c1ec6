"""``tripwire ingest``'s driver (its arguments are parsed in :mod:`actors.commands`).

It runs the real pipeline on Ray (a local one unless ``RAY_ADDRESS`` or ``[ray] address``
names a cluster), show a live progress line, and end with a summary (``--json``: one JSON
object on stdout). Exit codes: 0 done, 1 the run failed, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import dataclasses
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


FILE_SOURCES = ("scenario", "binance-csv", "replay")  # read alone; live sources combine


def normalise_sources(args: argparse.Namespace, settings: Settings | None = None) -> list[str]:
    """``--source`` given once or several times -> the list; ``args.source`` becomes its label.

    Without ``--source``, the settings' ``[feeds] sources`` (live sources), else the scenario.
    Idempotent (the live job and ``cmd_ingest`` both call it). Several sources must all be
    live (registry names: ``binance``, ``ccxt:<exchange>``, ...).
    """
    if getattr(args, "sources", None):
        return args.sources
    raw = args.source if isinstance(args.source, list) else [args.source] if args.source else []
    if not raw and settings is not None:
        from tripwire.adapters.registry import feeds_table

        table = feeds_table(settings.table("feeds"))
        raw = list(table.sources)
        args.feeds_table = table
    sources = raw or ["scenario"]
    names = [s.partition("=")[0] for s in sources]
    if len(sources) > 1:
        files = [n for n in names if n in FILE_SOURCES]
        if files:
            raise UsageError(f"--source {files[0]} cannot be combined with other sources")
        if len(set(names)) != len(names):
            raise UsageError(f"a source is given twice: {', '.join(names)}")
    args.sources = sources
    args.source = "+".join(names)
    return sources


def is_live(args: argparse.Namespace) -> bool:
    """Whether the (normalised) sources are exchange feeds, on wall-clock time."""
    return all(s.partition("=")[0] not in FILE_SOURCES for s in normalise_sources(args))


def _live_specs(args: argparse.Namespace, settings: Settings | None = None) -> list:
    """Registry specs: ``NAME=SYMBOLS`` or, for a single source, ``--streams``; ``--url``
    is a URL (one source) or ``NAME=URL`` (several). A ``news`` source takes its aliases
    (and ``max_seen``) from the settings' ``[news]`` table."""
    from tripwire.adapters.registry import parse_spec

    sources = normalise_sources(args)
    urls = _urls(args, sources)
    specs = []
    for text in sources:
        spec = parse_spec(text, urls.get(text.partition("=")[0]))
        if not spec.symbols and args.streams and len(sources) == 1:
            spec = dataclasses.replace(spec, symbols=tuple(
                s.strip() for s in args.streams.split(",") if s.strip()))
        if spec.name == "news" and settings is not None:
            from tripwire.adapters.news.factory import settings_options

            try:
                options = settings_options(settings.table("news"), spec.options)
            except ValueError as exc:
                raise UsageError(f"[news]: {exc}") from None
            spec = dataclasses.replace(spec, options=options)
        if not spec.symbols and not (spec.name == "news" and spec.options.get("sources")):
            raise UsageError(f"--source {spec.name} needs --streams (a single source) or "
                             f"--source {spec.name}=SYM,SYM"
                             + (" (or [news] sources in the config)"
                                if spec.name == "news" else ""))
        table = getattr(args, "feeds_table", None)
        spot = getattr(args, "spot_markets", False) or (table is not None and table.spot_markets)
        if spec.name.startswith("ccxt:") and spot:
            spec = dataclasses.replace(spec, options={"spot_markets": True})
        specs.append(spec)
    return specs


def _urls(args: argparse.Namespace, sources: list[str]) -> dict[str, str]:
    given = getattr(args, "url", None) or []
    given = [given] if isinstance(given, str) else given
    names = [s.partition("=")[0] for s in sources]
    table = getattr(args, "feeds_table", None)
    out: dict[str, str] = dict(table.urls) if table is not None else {}
    for u in given:
        if u.startswith(("ws://", "wss://")):
            if len(names) != 1:
                raise UsageError(f"--url {u}: with several sources write --url NAME=URL")
            out[names[0]] = u
            continue
        name, _, url = u.partition("=")
        if name not in names or not url:
            raise UsageError(f"--url {u!r} is not a ws:// URL nor NAME=URL for a given source")
        out[name] = url
    return out


def feed_factory(args: argparse.Namespace, settings: Settings) -> tuple[Callable, SymbolTable]:
    """A picklable factory (the feed is built inside its actor) and the symbol table."""
    sources = normalise_sources(args, settings)
    if sources == ["scenario"]:
        from tripwire.feeds.scenario import Scenario, ScenarioFeed

        cfg = _scenario_config(args, args.seed)
        symbols = Scenario(cfg).symbols
        speed = args.speed
        return (lambda: ScenarioFeed(cfg, speed=speed)), symbols
    if sources == ["binance-csv"]:
        from tripwire.adapters.binance.loader import BinanceCsvFeed

        files, symbol = binance_csv_files(args), args.symbol
        symbols = BinanceCsvFeed(files, symbol=symbol).symbols
        return (lambda: BinanceCsvFeed(files, symbol=symbol)), symbols
    if sources == ["replay"]:
        return _replay_factory(args, settings)
    from tripwire.adapters.registry import build_feeds, probability_symbols

    try:
        specs = _live_specs(args, settings)
        feed = build_feeds(specs)  # validates early, before Ray starts
        symbols = feed.symbols
        args.probability_symbols = probability_symbols(feed)  # for _pipeline_config
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return (lambda: build_feeds(specs)), symbols


def _replay_factory(args: argparse.Namespace, settings: Settings):
    from actors.sink import SinkReader
    from tripwire.feeds.replay import ReplayFeed

    names = [n.strip() for n in args.names.split(",") if n.strip()] if args.names else None
    stored = _store_symbols(args.store or settings.store_url, settings)
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


def _store_symbols(url: str, settings: Settings) -> list[str]:
    """The symbols in the store, asked of a short-lived sink actor (chdb: one process)."""
    import ray

    from actors.runtime import ensure_command_ray, kill_and_wait
    from actors.sink import TickSink

    ensure_command_ray(settings.data_dir, settings.ray_address)
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
        probability_symbols=tuple(getattr(args, "probability_symbols", ())),
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
        normalise_sources(args, settings)
        if args.source != "binance-csv" and args.files:
            raise UsageError(f"files are only read by --source binance-csv, not {args.source}")
        if args.source == "replay" and args.no_store:
            raise UsageError("--source replay reads the tick store; --no-store makes no sense")
        store = None if args.no_store else (args.store or settings.store_url)
        make_feed, symbols = feed_factory(args, settings)
        cfg = _pipeline_config(args, settings, store_url=store,
                               store_ticks=args.source != "replay",
                               live=is_live(args))
    except (ValueError, OSError) as exc:
        return _fail(err, "ingest", exc, 2)
    total = _expected_ticks(args)
    try:
        with Pipeline(make_feed, symbols, cfg, address=settings.ray_address,
                      data_dir=str(settings.data_dir)) as pipeline:
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
        "sources": _per_source(f.get("feed") or {}),
    }


def _per_source(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each live source's own figures (several sources: MultiFeed's ``sources``)."""
    per = stats.get("sources") or ({stats["source"]: stats} if "reconnects" in stats else {})
    keys = ("ticks", "messages", "reconnects", "gaps", "missing_trade_ids", "dead",
            "disconnects", "last_message_ns")
    return {name: {k: s.get(k) for k in keys} for name, s in per.items()}


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

