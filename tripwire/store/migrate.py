"""Numbered SQL migrations for tripwire's PostgreSQL schema, applied with asyncpg.

Migrations are the files ``migrations/NNNN_<name>.sql`` next to this module, applied in number
order, each inside its own transaction together with its row in ``schema_migrations`` (so a
failing migration leaves nothing behind). Applying is idempotent: applied migrations are
skipped. A database that has a migration this code does not know (a newer tripwire wrote it),
or whose applied file has since changed, is refused rather than guessed at.

>>> [m.version for m in load_migrations()][:2]
[1, 2]
>>> parse_name("0007_add_fees.sql")
(7, 'add_fees')
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every tripwire process, so that two
# processes migrating the same database at once take turns.
_LOCK_KEY = 0x7472_6970_7769_7265 >> 1  # "tripwire", shifted into bigint range

SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The database's schema cannot be brought up to date by this code (message says why)."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        """``0002_bus_messages``: how migrations are named in messages and results."""
        return f"{self.version:04d}_{self.name}"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def parse_name(filename: str) -> tuple[int, str]:
    """(version, name) of a migration file name; ValueError for anything else."""
    match = _NAME.match(filename)
    if match is None:
        raise ValueError(f"not a migration file name (want NNNN_name.sql): {filename!r}")
    return int(match.group(1)), match.group(2)


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in ``directory``, in version order; duplicates and gaps are errors."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        version, name = parse_name(path.name)
        migrations.append(Migration(version, name, path.read_text()))
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migrations must be numbered 1..n without gaps: {versions}")
    return migrations


def check_applied(known: list[Migration], applied: dict[int, str]) -> None:
    """Refuse unknown (newer) or altered applied migrations. ``applied``: version -> checksum.

    >>> m = Migration(1, "core", "SELECT 1")
    >>> check_applied([m], {1: m.checksum})
    >>> check_applied([m], {1: m.checksum, 2: "x"})
    Traceback (most recent call last):
    ...
    tripwire.store.migrate.MigrationError: the database has migrations this tripwire does not \
know: [2] (a newer version applied them); upgrade tripwire instead of running this one
    """
    by_version = {m.version: m for m in known}
    unknown = sorted(v for v in applied if v not in by_version)
    if unknown:
        raise MigrationError(
            f"the database has migrations this tripwire does not know: {unknown} (a newer "
            "version applied them); upgrade tripwire instead of running this one"
        )
    altered = [by_version[v].label for v, sha in sorted(applied.items())
               if by_version[v].checksum != sha]
    if altered:
        raise MigrationError(
            f"applied migrations have changed since they ran: {altered}; never edit an applied "
            "migration, add a new one"
        )


async def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations to the database at ``dsn``; the labels applied, in order."""
    import asyncpg  # deferred: importing the domain must not need the database driver

    known = load_migrations(directory)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(SCHEMA_MIGRATIONS_DDL)
            rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
            applied = {r["version"]: r["checksum"] for r in rows}
            check_applied(known, applied)
            done = []
            for migration in known:
                if migration.version in applied:
                    continue
                await _apply(conn, migration)
                done.append(migration.label)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()


async def _apply(conn, migration: Migration) -> None:  # conn: asyncpg.Connection
    try:
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version, migration.name, migration.checksum,
            )
    except Exception as exc:  # asyncpg raises many types; the label is what the operator needs
        raise MigrationError(f"migration {migration.label} failed: {exc}") from exc
