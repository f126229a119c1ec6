"""PostgreSQL fixtures shared by every test that needs a real server.

One private cluster serves the whole session (``pg_cluster``); a test gets its own empty
database in it (``fresh_db``) or a migrated one (``migrated_db``). The cluster lives under
/tmp rather than pytest's tmp dir because, as root, the server runs as the ``postgres`` user,
who cannot enter root's 0700 pytest directory.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tripwire.store.migrate import migrate
from tripwire.store.pg import PrivateCluster


@pytest.fixture(scope="session")
def pg_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="tripwire-pg-test-"))
    root.chmod(0o711)  # mkdtemp makes it 0700; the postgres user must be able to enter it
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster(pg_root: Path) -> Iterator[PrivateCluster]:
    cluster = PrivateCluster(pg_root / "session", durable=False)
    cluster.start()
    yield cluster
    cluster.stop()


_db_numbers = itertools.count()


def _with_database(dsn: str, name: str) -> str:
    return dsn.rsplit("/", 1)[0] + "/" + name


async def _create_database(admin_dsn: str) -> str:
    name = f"t{os.getpid()}_{next(_db_numbers)}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_database(admin_dsn, name)


@pytest.fixture
def fresh_db(pg_cluster: PrivateCluster) -> str:
    """A new, empty database in the session cluster."""
    return asyncio.run(_create_database(pg_cluster.dsn))


@pytest.fixture
def migrated_db(pg_cluster: PrivateCluster) -> str:
    """A new database in the session cluster with every migration applied."""

    async def make() -> str:
        dsn = await _create_database(pg_cluster.dsn)
        await migrate(dsn)
        return dsn

    return asyncio.run(make())
