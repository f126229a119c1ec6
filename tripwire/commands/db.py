"""The ``tripwire db`` command group (``tripwire db migrate``) and ``tripwire explain``.

``tripwire db migrate`` brings the PostgreSQL schema up to date: the server named by
``--dsn`` or ``TRIPWIRE_PG_DSN``, or else the private cluster under the data directory
(started for the command and stopped after it). It prints the migrations it applied
(``--json``: one JSON object). Exit codes: 0 up to date, 1 a migration or the server failed,
2 bad usage or PostgreSQL not installed (the message says how to install it).

``tripwire explain <decision-id>`` prints one decision's whole chain, from the trip to the
fills (``--json``: one JSON object), from the same database. An unambiguous id prefix of at
least 8 characters will do. Exit codes: 0 printed, 1 the server failed, 2 no such decision
(the message names the id), an ambiguous prefix, or PostgreSQL not installed.

``register(subparsers)`` adds both to the ``tripwire`` command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tripwire.commands.common import add_config, add_json
from tripwire.store.migrate import MigrationError, migrate
from tripwire.store.pg import PgError, PgNotInstalledError, database, redact_dsn

if TYPE_CHECKING:
    from tripwire.store.decisions import DecisionChain, DecisionStore

MIN_PREFIX = 8  # shorter prefixes of time-ordered ids (UUIDv7) match too much to be useful
PREFIX_SCAN = 10_000  # how many of the newest decisions a prefix is matched against


@contextlib.contextmanager
def _target(args: argparse.Namespace) -> Iterator[str]:
    """The DSN to use: --dsn, else TRIPWIRE_PG_DSN, else the private cluster."""
    if args.dsn:
        yield args.dsn
        return
    if args.data_dir is not None:
        data_dir = Path(args.data_dir)
    else:
        from tripwire.config import load_settings

        data_dir = load_settings(args.config).data_dir
    with database(data_dir) as dsn:
        yield dsn


def cmd_migrate(args: argparse.Namespace) -> int:
    try:
        with _target(args) as dsn:
            applied = asyncio.run(migrate(dsn))
    except PgNotInstalledError as exc:
        print(f"tripwire db: {exc}", file=sys.stderr)
        return 2
    except (PgError, MigrationError, OSError) as exc:
        print(f"tripwire db: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # asyncpg's server errors share no base with the ones above
        print(f"tripwire db: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"dsn": redact_dsn(dsn), "applied": applied}))
    elif applied:
        print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        print("schema up to date (nothing to apply)")
    return 0


class _NotFound(Exception):
    """The id names no decision (or several); the message says which and why."""


async def _resolve(store: DecisionStore, ref: str) -> DecisionChain:
    """The chain of the decision ``ref`` names: its exact id, else a unique id prefix."""
    chain = await store.chain(ref)
    if chain is not None:
        return chain
    if len(ref) < MIN_PREFIX:
        raise _NotFound(f"no decision {ref!r} (an id prefix needs at least {MIN_PREFIX} "
                        "characters)")
    rows = await store.decisions(limit=PREFIX_SCAN)
    matches = sorted(r["id"] for r in rows if r["id"].startswith(ref))
    if not matches:
        raise _NotFound(f"no decision {ref!r} (no id and no id prefix among the newest "
                        f"{PREFIX_SCAN} decisions)")
    if len(matches) > 1:
        raise _NotFound(f"decision id prefix {ref!r} is ambiguous: it matches "
                        + ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else ""))
    chain = await store.chain(matches[0])
    if chain is None:  # removed between the two reads: say so rather than crash
        raise _NotFound(f"no decision {ref!r}")
    return chain


async def _load_chain(dsn: str, ref: str) -> DecisionChain:
    # Imported here: asyncpg and the store load only for the commands that use them.
    from tripwire.store.pg_decisions import PgDecisionStore

    store = await PgDecisionStore.connect(dsn)
    try:
        return await _resolve(store, ref)
    finally:
        await store.close()


def cmd_explain(args: argparse.Namespace) -> int:
    ref = (args.decision_id or "").strip()
    if not ref:
        print("tripwire explain: the decision id is empty", file=sys.stderr)
        return 2
    try:
        with _target(args) as dsn:
            chain = asyncio.run(_load_chain(dsn, ref))
    except _NotFound as exc:
        print(f"tripwire explain: {exc}", file=sys.stderr)
        return 2
    except PgNotInstalledError as exc:
        print(f"tripwire explain: {exc}", file=sys.stderr)
        return 2
    except (PgError, OSError) as exc:
        print(f"tripwire explain: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # asyncpg's errors (bad DSN, schema missing) share no base
        hint = " (run `tripwire db migrate` first)" if "UndefinedTable" in type(
            exc).__name__ else ""
        print(f"tripwire explain: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return 1
    return _print_chain(chain, as_json=args.json)


def _print_chain(chain: DecisionChain, *, as_json: bool) -> int:
    from tripwire.store.explain import explain_json, render_explain

    if as_json:
        print(json.dumps(explain_json(chain), allow_nan=False))
        return 0
    from rich.console import Console

    render_explain(chain, Console())
    return 0


def _add_target_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--dsn", help=f"server to {what} (default: $TRIPWIRE_PG_DSN, else the "
                                 "private cluster under the data directory)")
    p.add_argument("--data-dir", help="data directory of the private cluster "
                                      "(default: [data] dir of the settings)")
    add_config(p)
    add_json(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tripwire db ...`` and ``tripwire explain`` to the ``tripwire`` command."""
    db = subparsers.add_parser("db", help="the PostgreSQL database: migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    m = db_sub.add_parser("migrate", help="apply pending schema migrations")
    _add_target_options(m, "migrate")
    m.set_defaults(func=cmd_migrate)
    e = subparsers.add_parser("explain", help="one decision's whole chain, trip to fills")
    e.add_argument("decision_id", help=f"the decision id (or a unique prefix of at least "
                                       f"{MIN_PREFIX} characters)")
    _add_target_options(e, "read")
    e.set_defaults(func=cmd_explain)

