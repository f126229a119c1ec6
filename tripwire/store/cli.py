"""The ``tripwire db`` command group: ``tripwire db migrate``.

``tripwire db migrate`` brings the PostgreSQL schema up to date: the server named by
``--dsn`` or ``TRIPWIRE_PG_DSN``, or else the private cluster under the data directory
(started for the command and stopped after it). It prints the migrations it applied
(``--json``: one JSON object). Exit codes: 0 up to date, 1 a migration or the server failed,
2 bad usage or PostgreSQL not installed (the message says how to install it).

``register(subparsers)`` adds the group to the ``tripwire`` command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from tripwire.store.migrate import MigrationError, migrate
from tripwire.store.pg import PgError, PgNotInstalledError, database, redact_dsn


@contextlib.contextmanager
def _target(args: argparse.Namespace) -> Iterator[str]:
    """The DSN to migrate: --dsn, else TRIPWIRE_PG_DSN, else the private cluster."""
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


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tripwire db ...`` to the ``tripwire`` command."""
    db = subparsers.add_parser("db", help="the PostgreSQL database: migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    m = db_sub.add_parser("migrate", help="apply pending schema migrations")
    m.add_argument("--dsn", help="server to migrate (default: $TRIPWIRE_PG_DSN, else the "
                                 "private cluster under the data directory)")
    m.add_argument("--data-dir", help="data directory of the private cluster "
                                      "(default: [data] dir of the settings)")
    m.add_argument("--config", help="TOML settings file (default: $TRIPWIRE_CONFIG)")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=cmd_migrate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tripwire")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
