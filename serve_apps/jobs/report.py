"""The daily report job: ``python -m serve_apps.jobs.report`` (or as a Ray job:
``ray job submit -- python -m serve_apps.jobs.report``).

Reads one period from PostgreSQL (``TRIPWIRE_PG_DSN``, else the private cluster under the
data directory), LLM calls included (``llm_calls``, or an offline JSONL ledger given with
``--ledger``), writes
report.md, report.html, report.json and the PNG plots to ``--out`` (default
``<data dir>/reports/<since date>``), and prints a short summary and the paths.

The period is ``[--since, --until)``; each is an ISO date (``2026-11-20``), an ISO date-time
(UTC unless it names an offset) or integer nanoseconds UTC. Default: the last whole UTC day.
With only one of the two, the period is the day after ``--since`` or before ``--until``.
``--run ID`` reports one run instead (``GET /v1/runs`` lists them): exactly the rows that
arrived during it, over the market period it covered unless ``--since``/``--until`` say
otherwise.

Exit codes: 0 written, 1 the database or the writing failed, 2 bad usage or PostgreSQL not
installed (the message says what).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

DAY_NS = 86_400 * 1_000_000_000


def _say(text: str) -> None:
    print(f"[report] {text}", file=sys.stderr, flush=True)


def parse_time(text: str) -> int:
    """ISO date, ISO date-time (naive = UTC) or integer ns -> ns UTC.

    >>> parse_time("1970-01-02"), parse_time("1970-01-01T00:00:01Z"), parse_time("5")
    (86400000000000, 1000000000, 5)
    """
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            moment = datetime(d.year, d.month, d.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date (2026-11-20), an ISO date-time or integer ns, got {text!r}"
        ) from None
    # Integer arithmetic: float seconds lose nanoseconds far from the epoch.
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def period(since: int | None, until: int | None, now_ns: int) -> tuple[int, int]:
    """The report period; default the last whole UTC day before ``now_ns``."""
    if since is None and until is None:
        until = now_ns - now_ns % DAY_NS
    if since is None:
        since = until - DAY_NS
    if until is None:
        until = since + DAY_NS
    if since >= until:
        raise ValueError(f"--since ({since}) must be before --until ({until})")
    return since, until


def _parser() -> argparse.ArgumentParser:
    from serve_apps.commands import add_report_arguments, job_parser

    return job_parser("report", "Write the daily report (markdown, HTML, plots).",
                      add_report_arguments)


async def _build(dsn: str, since: int | None, until: int | None, ledger: Any,
                 run: str | None = None) -> dict[str, Any]:
    from tripwire.report import build_report
    from tripwire.store.pg_decisions import PgDecisionStore

    store = await PgDecisionStore.connect(dsn)
    try:  # no --ledger: the LLM calls every replica wrote to PostgreSQL (llm_calls)
        return await build_report(store, since_ns=since, until_ns=until, run=run,
                                  ledger=ledger if ledger is not None else store.llm_ledger())
    finally:
        await store.close()


def _summary(report: dict[str, Any], paths: dict[str, Path]) -> dict[str, Any]:
    return {
        "period": report["period"], "run": report.get("run"),
        "incidents": report["incidents"]["count"],
        "verdicts": report["verdicts"]["count"], "decisions": report["decisions"]["count"],
        "orders": report["execution"]["orders"], "fills": report["execution"]["fills"],
        "pnl_net": report["pnl"]["net"], "llm_calls": report["llm"]["calls"],
        "llm_cost_usd": report["llm"]["cost_usd"],
        "truncated": [k for k, v in report["truncated"].items() if v is True],
        "paths": {k: str(v) for k, v in sorted(paths.items())},
    }


def _print(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, sort_keys=True))
        return
    p = summary["period"]
    print(f"report {p['since']} .. {p['until']}: {summary['incidents']:,} incidents, "
          f"{summary['verdicts']:,} verdicts, {summary['decisions']:,} decisions, "
          f"{summary['orders']:,} orders, {summary['fills']:,} fills, "
          f"net PnL {summary['pnl_net']:.4f}, {summary['llm_calls']:,} LLM calls "
          f"({summary['llm_cost_usd']:.4f} USD)")
    for name, path in summary["paths"].items():
        print(f"  {name}: {path}")


def _run(args: argparse.Namespace, now_ns: int) -> int:
    from tripwire.config import load_settings
    from tripwire.llm.ledger import JsonlLedger
    from tripwire.report import ReportError, iso, write_report
    from tripwire.store.pg import PgError, PgNotInstalledError, database

    try:
        settings = load_settings(args.config)
        if args.run is not None:  # the run's own period unless given
            since, until = args.since, args.until
            if since is not None and until is not None and since >= until:
                raise ValueError(f"--since ({since}) must be before --until ({until})")
        else:
            since, until = period(args.since, args.until, now_ns)
    except ValueError as exc:
        _say(str(exc))
        return 2
    if args.out:
        out = Path(args.out)
    elif args.run is not None:
        out = settings.data_dir / "reports" / f"run-{_safe(args.run)}"
    else:
        out = settings.data_dir / "reports" / iso(since)[:10]
    ledger = JsonlLedger(Path(args.ledger)) if args.ledger else None
    scope = f"run {args.run}" if args.run is not None else f"{iso(since)} .. {iso(until)}"
    _say(f"reading {scope} from PostgreSQL"
         + (f" and the LLM ledger {ledger.path}" if ledger else " (LLM calls from llm_calls)"))
    try:
        with database(settings.data_dir) as dsn:
            report = asyncio.run(_build(dsn, since, until, ledger, args.run))
        paths = write_report(report, out)
    except PgNotInstalledError as exc:
        _say(str(exc))
        return 2
    except ReportError as exc:
        _say(f"bad report input: {exc}")
        return 1
    except (PgError, OSError) as exc:  # server unreachable, or --out not writable
        _say(f"could not read the database or write {out}: {exc}")
        return 1
    except Exception as exc:  # asyncpg's errors (bad DSN, schema missing) share no base
        hint = (" (run `tripwire db migrate` first)"
                if "UndefinedTable" in type(exc).__name__ else "")
        _say(f"{type(exc).__name__}: {exc}{hint}")
        return 1
    _print(_summary(report, paths), args.json)
    return 0


def _safe(run_id: str) -> str:
    """A run id as one path component (no separators, no dot-dot)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in run_id)[:100]


def main(argv: list[str] | None = None, *, now_ns: int | None = None) -> int:
    """Run the job; ``now_ns`` (default the clock) only picks the default period."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the message
        return int(exc.code or 0)
    return _run(args, time.time_ns() if now_ns is None else now_ns)


def run(args: argparse.Namespace) -> int:
    """``tripwire report``: the job on already parsed arguments."""
    return _run(args, time.time_ns())


if __name__ == "__main__":
    sys.exit(main())
