"""The data plane's ``tripwire`` commands, registered from this one module.

``ingest``, ``triage``, ``decide`` and ``calibrate`` are added to the ``tripwire`` command
through the ``tripwire.commands`` entry point (pyproject.toml -> :func:`register`). This
module only parses: each command's function lives with the code it drives
(:mod:`actors.ingest`, :mod:`actors.triage`, :mod:`actors.decide`, :mod:`actors.calibrate`)
and is imported only when that command runs, so ``tripwire --help`` does not load Ray or
LangGraph. A new data-plane command is added here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tripwire.argtypes import int_in, positive_float, time_ns
from tripwire.commands.common import add_config, add_json, lazy

INGEST_SOURCES = ("scenario", "binance", "binance-csv", "replay")
CALIBRATE_SOURCES = ("binance-csv", "replay")
SKILLS_DIR = Path(__file__).resolve().parent.parent / "skills"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the data plane's commands to the ``tripwire`` command's subparsers."""
    _ingest(sub)
    _triage(sub)
    _decide(sub)
    _calibrate(sub)
    _eval(sub)


def _ingest(sub: argparse._SubParsersAction) -> None:
    ing = sub.add_parser(
        "ingest",
        help="run a feed through the detector shards into the tick store",
        description="Feed -> validation -> detector shards -> trips, with ticks, anomalies, "
        "dead letters and news written to the tick store.",
    )
    ing.add_argument(
        "--source", action="append", metavar="SOURCE",
        help=f"{', '.join(INGEST_SOURCES)} (default scenario), or live: binance, "
        "ccxt:<exchange> (okx, bybit, coinbase, ...), polymarket (NAME:<asset id>,...), "
        "news (NAME@URL,...; bare: the [news] sources), each as NAME or NAME=SYM,SYM; "
        "repeat --source for several live sources in one process (default: [feeds] sources)",
    )
    ing.add_argument("files", nargs="*", help="binance-csv: trade / aggTrade files (.csv/.zip)")
    add_config(ing)
    ing.add_argument("--shards", type=int_in(1), help="detector shard actors")
    add_json(ing, "print one JSON object at the end")
    ing.add_argument("--store", help="tick store URL (default: from settings; chdb:///...)")
    ing.add_argument("--no-store", action="store_true", help="score ticks without storing them")
    ing.add_argument("--seed", type=int, help="scenario: seed (default: the default scenario)")
    ing.add_argument("--symbols", type=int_in(1), help="scenario: number of symbols")
    ing.add_argument("--days", type=positive_float, help="scenario: simulated days")
    ing.add_argument("--speed", type=positive_float,
                     help="scenario/replay: N x recorded speed (default: as fast as possible)")
    ing.add_argument("--streams", help="one live source's symbols: binance streams "
                     "(btcusdt@trade,ethusdt@aggTrade) or ccxt symbols (BTC/USDT,ETH/USDT)")
    ing.add_argument("--url", action="append", help="live: WebSocket URL override (one "
                     "source), or NAME=URL per source (default: the exchange's)")
    ing.add_argument("--spot-markets", action="store_true", help="ccxt: build BASE-QUOTE "
                     "spot markets locally instead of loading them over REST")
    ing.add_argument("--symbol", help="binance-csv: symbol, when file names do not say it")
    ing.add_argument("--names", help="replay: comma-separated symbols (default: all)")
    ing.add_argument("--start", type=time_ns, help="replay: from (ISO time or ns)")
    ing.add_argument("--end", type=time_ns, help="replay: until (ISO time or ns)")
    ing.add_argument("--run-for", type=positive_float, metavar="SECONDS",
                     help="stop after this much wall time (live feeds run until stopped)")
    ing.set_defaults(func=lazy("actors.ingest", "cmd_ingest"))


def _triage(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("triage", help="classify incidents with the LLM layer (verdict, route, "
                       "cost)", description="Triage incidents with the LLM layer: verdict, "
                       "route and cost per incident.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--demo", action="store_true",
                      help="incidents from the default scenario (news shock, cascade, fat finger)")
    what.add_argument("--incident", metavar="FILE", help="an incident as JSON")
    p.add_argument("--seed", type=int, help="--demo: scenario seed (default: the default)")
    p.add_argument("--skills", default=str(SKILLS_DIR), help="skills folder (SKILL.md files)")
    add_config(p)
    add_json(p)
    p.set_defaults(func=lazy("actors.triage", "cmd_triage"))


def _decide(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decide", help="triage + sign-off of scenario incidents in paper mode "
                       "(PostgreSQL journal)", description="Triage and sign off the default "
                       "scenario's incidents in paper mode, journalled to PostgreSQL.")
    p.add_argument("--demo", action="store_true", required=True,
                   help="incidents from the default scenario (news shock, cascade, fat finger)")
    p.add_argument("--mode", help="DRY_RUN, TWO_PHASE or DIRECT (default: [risk] mode)")
    p.add_argument("--approve-as", metavar="NAME",
                   help="TWO_PHASE: approve every waiting decision as NAME")
    p.add_argument("--seed", type=int, help="scenario seed (default: the default)")
    add_config(p)
    add_json(p)
    p.set_defaults(func=lazy("actors.decide", "cmd_decide"))


def _calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="per-symbol detector thresholds that meet a false-trip budget on your data",
        description="Run the detectors over a quiet period of your own data and write a "
        "detector calibration (TOML) whose thresholds keep each symbol's false trips within "
        "--budget per day.",
    )
    p.add_argument("--source", choices=CALIBRATE_SOURCES, required=True)
    p.add_argument("files", nargs="*", help="binance-csv: trade / aggTrade files (.csv/.zip)")
    p.add_argument("--symbol", help="binance-csv: symbol, when file names do not say it")
    p.add_argument("--names", help="replay: comma-separated symbols (default: all)")
    p.add_argument("--start", type=time_ns, help="replay: from (ISO time or ns)")
    p.add_argument("--end", type=time_ns, help="replay: until (ISO time or ns)")
    p.add_argument("--store", help="replay: tick store URL (default: the config's)")
    p.add_argument("--budget", default="0.5/day", help="false trips per symbol-day (0.5/day)")
    p.add_argument("--out", default="detector-calibration.toml", help="file to write")
    add_config(p, "TOML settings file (its [detector] is the base)")
    add_json(p, "print one JSON object at the end")
    p.set_defaults(func=lazy("actors.calibrate", "cmd_calibrate"))


def _eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="measure what each analyst does to PnL, drawdown and cost vs trading every trip",
        description="N seeds x policies (no filter, rules, local model, configured routes, a "
        "cassette) through the backtest as Ray tasks: triage against the expert mapping, PnL "
        "with a paired test vs no filter, cost, the decision-log hash; report.md/.html.",
    )
    p.add_argument("--seeds", type=int_in(1), default=5, help="markets per policy (5)")
    p.add_argument("--seed-base", type=int_in(0), default=1, help="first seed (1)")
    p.add_argument("--scenario", choices=("realistic", "default"), default="realistic",
                   help="realistic (graded events, the default) or the default scenario")
    p.add_argument("--symbols", type=int_in(1), help="symbols per market (scenario default)")
    p.add_argument("--days", type=positive_float, help="simulated days per market")
    p.add_argument("--injections", type=int_in(0, 10_000), metavar="N",
                   help="prompt-injection headlines per market (scenario default: one per "
                   "two symbol-days, at least one; 0: none)")
    p.add_argument("--policies", help="comma-separated: no_filter_mr, no_filter_mom, rules, "
                   "local, cassette, route:<name>, or a registered one (default: the first four)")
    p.add_argument("--local-seeds", type=int_in(0), default=2,
                   help="seeds the (slow) local model runs (2)")
    p.add_argument("--cassette", metavar="FILE", help="a recorded cassette, replayed strictly")
    p.add_argument("--mode", default="DIRECT", help="safety mode of the backtest (DIRECT)")
    p.add_argument("--store", help="a tick-store URL: evaluate a stored period instead")
    p.add_argument("--start", type=time_ns, help="--store: from (ISO time or ns)")
    p.add_argument("--end", type=time_ns, help="--store: until (ISO time or ns)")
    p.add_argument("--names", help="--store: comma-separated symbols (default: all)")
    p.add_argument("--out", help="report folder (default: <data dir>/eval)")
    p.add_argument("--num-cpus", type=positive_float, default=1.0, help="CPUs per task (1)")
    p.add_argument("--in-process", action="store_true", help="run tasks here, not on Ray")
    add_config(p)
    add_json(p, "print one JSON object (the summary) on stdout")
    p.set_defaults(func=lazy("actors.eval", "cmd_eval"))
