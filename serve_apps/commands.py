"""The Serve layer's ``tripwire`` commands, registered from this one module.

``demo``, ``live``, ``backtest``, ``sweep`` and ``report`` are added to the ``tripwire``
command through the ``tripwire.commands`` entry point (pyproject.toml -> :func:`register`).
This module only parses: each command's arguments are defined once here, by an
``add_<command>_arguments`` function that both ``tripwire <command>`` and the job's own
``python -m serve_apps.jobs.<command>`` parser (kept for ``ray job submit``) use; the
function that runs the command lives with the code it drives and is imported only when that
command runs. A new Serve-layer command is added here.
"""

from __future__ import annotations

import argparse

from tripwire.argtypes import int_in, positive_float, time_ns
from tripwire.commands.common import add_config, add_json, lazy
from tripwire.llm.cassette import MODES as CASSETTE_MODES

# The LLM cassette modes a backtest may use: it never records (that would spend money).
BACKTEST_CASSETTE_MODES = tuple(m for m in CASSETTE_MODES if m != "record")
PG_ENV = "TRIPWIRE_PG_DSN"
SWEEP_SHORTCUTS = {
    "returns_threshold": "returns.threshold", "returns_window": "returns.window",
    "volume_threshold": "volume.threshold", "volume_window": "volume.window",
    "price_threshold": "price.threshold", "price_window": "price.window",
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the Serve layer's commands to the ``tripwire`` command's subparsers."""
    import serve_apps.config  # noqa: F401 - registers [serve] for `tripwire config show`

    _add(sub, "demo", "the whole system on the embedded defaults: Serve app, scenario replay, "
         "decisions, watchdog, report", add_demo_arguments, "serve_apps.demo", "cmd_demo")
    _add(sub, "live", "the live Serve app on the scenario or live sources (binance, ccxt, "
         "polymarket, news), orders through the [execution] broker",
         add_live_arguments, "serve_apps.jobs.live", "run")
    _add(sub, "backtest", "replay a scenario or the tick store through detection, decisions "
         "and the backtest venue, fanned out as Ray tasks", add_backtest_arguments,
         "serve_apps.jobs.backtest", "run")
    _add(sub, "sweep", "a grid of detector settings scored against the labels, as Ray tasks",
         add_sweep_arguments, "serve_apps.jobs.sweep", "run")
    _add(sub, "report", "write the daily report (markdown, HTML, plots)",
         add_report_arguments, "serve_apps.jobs.report", "run")
    _add(sub, "parity", "one scenario through the in-process backtest, its Ray-task "
         "fan-out and the live driver on market time, compared record by record (exit 1 "
         "on any difference)",
         add_parity_arguments, "serve_apps.jobs.parity", "run")


def _add(sub, name: str, help: str, add_arguments, module: str, func: str) -> None:
    p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
    add_arguments(p)
    p.set_defaults(func=lazy(module, func))


# ----------------------------------------------------------------------------- arguments


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    add_config(p)
    p.add_argument("--seed", type=int, help="scenario seed (default: the default scenario)")
    p.add_argument("--symbols", type=int, help="scenario symbols (default 24)")
    p.add_argument("--hours", type=float, help="simulated hours to replay (default 24)")
    p.add_argument("--mode", default="DIRECT",
                   help="DIRECT (default: paper orders), TWO_PHASE or DRY_RUN")
    p.add_argument("--llm", choices=("config", "rules", "local"), default="config",
                   help="configured routes (default), the offline rules analyst, or the "
                   "bundled small local model")
    p.add_argument("--port", type=int, help="HTTP port (default [serve] port, 8000)")
    p.add_argument("--batch", type=int, default=50_000, help="ticks per POST (<= 100000)")
    p.add_argument("--keep-running", action="store_true",
                   help="leave the app and console up after the summary, until Ctrl-C")
    p.add_argument("--no-dashboard", action="store_true",
                   help="do not start the Ray dashboard (saves memory and a few seconds)")
    add_json(p, "print the summary as one JSON object")


def add_live_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", action="append", metavar="SOURCE",
                   help="scenario (default), or live: binance, ccxt:<exchange>, each as NAME "
                   "or NAME=SYM,SYM; repeat for several live sources in one process")
    p.add_argument("--streams", help="one live source's symbols (binance streams or ccxt "
                   "symbols such as BTC/USDT)")
    p.add_argument("--url", action="append",
                   help="live: WebSocket URL (one source) or NAME=URL per source")
    p.add_argument("--spot-markets", action="store_true",
                   help="ccxt: build BASE-QUOTE spot markets locally instead of over REST")
    p.add_argument("--seed", type=int, help="scenario seed")
    p.add_argument("--symbols", type=int, help="scenario symbols")
    p.add_argument("--days", type=float, help="scenario days")
    p.add_argument("--speed", type=float, default=60.0,
                   help="scenario pacing: simulated seconds per second (0: unpaced)")
    p.add_argument("--run-for", type=float, metavar="S", help="stop after S seconds")
    add_config(p)
    add_json(p, "print the summary as one JSON object")


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """Where the ticks come from and how they are split (the backtest's and the sweep's)."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--scenario-seed", type=int, metavar="N",
                     help="the default scenario with this seed (the default source)")
    src.add_argument("--scenario-config", metavar="FILE",
                     help="a scenario as JSON (ScenarioConfig fields)")
    src.add_argument("--store", metavar="URL", help="tick store: chdb:///path or http(s)://...")
    p.add_argument("--start", type=time_ns, help="--store: first instant (ISO time, UTC)")
    p.add_argument("--end", type=time_ns, help="--store: end instant, exclusive")
    p.add_argument("--warmup-s", type=positive_float, default=10_800.0,
                   help="--store: seconds of ticks before each day to warm detectors up")
    p.add_argument("--symbols", help="comma-separated symbols (default: all)")
    p.add_argument("--groups", type=int_in(1, 1024), default=4, help="symbol groups")


def add_backtest_arguments(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p)
    p.add_argument("--num-cpus", type=positive_float, default=0.5, help="CPUs per task")
    p.add_argument("--max-inflight", type=int_in(1, 1024), default=16,
                   help="tasks submitted at once")
    p.add_argument("--mode", default="DIRECT", help="DRY_RUN, TWO_PHASE or DIRECT")
    p.add_argument("--cassette", metavar="PATH", help="replay LLM answers from this cassette")
    p.add_argument("--cassette-mode", choices=BACKTEST_CASSETTE_MODES, default="replay")
    add_config(p)
    p.add_argument("--out", help="output folder (default: <data dir>/backtest)")
    add_json(p)


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p)
    p.add_argument("--param", action="append", default=[], metavar="KEY=V1,V2",
                   help="a grid axis, e.g. returns.threshold=8,10,12 (repeatable)")
    for dest, key in SWEEP_SHORTCUTS.items():
        flags = ["--" + dest.replace("_", "-")] + (["--window"] if dest == "returns_window"
                                                   else [])
        p.add_argument(*flags, dest=dest, metavar="V1,V2", help=f"short for --param {key}=...")
    p.add_argument("--num-cpus", type=positive_float, default=1.0, help="CPUs per task")
    p.add_argument("--max-inflight", type=int_in(1, 1024), default=16,
                   help="tasks submitted at once")
    p.add_argument("--top", type=int_in(1, 1000), default=5, help="best configs to print")
    add_config(p)
    p.add_argument("--out", help="output folder (default: <data dir>/sweep)")
    p.add_argument("--pg", nargs="?", const="", metavar="DSN",
                   help=f"also write to PostgreSQL (default DSN: ${PG_ENV} or the private "
                        "cluster); on whenever $" + PG_ENV + " is set")
    add_json(p)


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    from serve_apps.jobs.report import parse_time  # light: the job imports its runtime late

    p.add_argument("--since", type=parse_time, help="period start, inclusive (default: "
                   "the start of the last whole UTC day)")
    p.add_argument("--until", type=parse_time, help="period end, exclusive")
    p.add_argument("--run", help="report this run's rows (an id from GET /v1/runs)")
    p.add_argument("--out", help="output directory (default <data dir>/reports/<date>, "
                   "or reports/run-<id> with --run)")
    p.add_argument("--ledger", help="an offline LLM ledger file (JSONL) to read instead of "
                                    "PostgreSQL's llm_calls")
    add_config(p)
    add_json(p)


def job_parser(job: str, description: str, add_arguments) -> argparse.ArgumentParser:
    """The parser of ``python -m serve_apps.jobs.<job>`` (for ``ray job submit``)."""
    p = argparse.ArgumentParser(prog=f"python -m serve_apps.jobs.{job}", description=description)
    add_arguments(p)
    return p


def add_parity_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--scenario", type=int, metavar="SEED",
                     help="the default scenario with this seed (default: the default seed)")
    src.add_argument("--scenario-config", metavar="FILE",
                     help="a scenario as JSON (ScenarioConfig fields)")
    p.add_argument("--symbols", help="comma-separated symbols (default: all)")
    p.add_argument("--groups", type=int_in(1, 1024), default=4, help="symbol groups")
    p.add_argument("--num-cpus", type=positive_float, default=0.5, help="CPUs per Ray task")
    p.add_argument("--mode", default="DIRECT", help="DRY_RUN, TWO_PHASE or DIRECT")
    p.add_argument("--live-batch-s", type=positive_float, default=1.0,
                   help="seconds of ticks per batch the live leg takes (the backtest takes "
                        "5; any value must give the same records; bigger is faster)")
    add_config(p)
    add_json(p, "print one JSON object (differences, records compared, the first listed)")
