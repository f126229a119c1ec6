"""The private PostgreSQL cluster and the migrations, against a real server.

One private cluster serves the whole session (``pg_cluster``); each test that changes the
schema gets its own fresh database in it (``fresh_db``), so tests stay independent. The
cluster lives under /tmp rather than pytest's tmp dir because, as root, the server runs as the
``postgres`` user, who cannot enter root's 0700 pytest directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path

import asyncpg
import pytest

from tripwire.llm.ledger import LLM_CALLS_DDL
from tripwire.store import pg
from tripwire.store.migrate import (
    MIGRATIONS_DIR,
    MigrationError,
    load_migrations,
    migrate,
)
from tripwire.store.pg import PgNotInstalledError, PrivateCluster, database, find_bindir

pytestmark = pytest.mark.timeout(120)

TABLES = {
    "incidents", "verdicts", "proposals", "signatures", "orders", "fills", "positions",
    "bus_messages", "llm_calls", "app_state", "heartbeats", "dead_letters", "schema_migrations",
    "approvals",
}
async def _fetch(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def _port_is_free(port: int) -> bool:
    """Whether a new server could listen on ``port`` (as PostgreSQL binds: SO_REUSEADDR, so
    connections of the old server still in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


# -- migrations ----------------------------------------------------------------------------


def test_migrate_applies_every_migration_in_order_then_is_a_no_op(fresh_db: str) -> None:
    labels = [m.label for m in load_migrations()]
    assert asyncio.run(migrate(fresh_db)) == labels
    assert asyncio.run(migrate(fresh_db)) == []
    rows = asyncio.run(_fetch(fresh_db, "SELECT version FROM schema_migrations ORDER BY 1"))
    assert [r["version"] for r in rows] == list(range(1, len(labels) + 1))


def test_migrated_database_has_every_table(fresh_db: str) -> None:
    asyncio.run(migrate(fresh_db))
    rows = asyncio.run(_fetch(
        fresh_db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
    assert {r["tablename"] for r in rows} >= TABLES


def test_llm_calls_migration_is_the_ledgers_ddl() -> None:
    sql = (MIGRATIONS_DIR / "0003_llm_calls.sql").read_text()
    assert LLM_CALLS_DDL.strip() in sql


def test_app_state_starts_with_one_clear_halt_row(fresh_db: str) -> None:
    asyncio.run(migrate(fresh_db))
    rows = asyncio.run(_fetch(fresh_db, "SELECT halted, reason FROM app_state"))
    assert [(r["halted"], r["reason"]) for r in rows] == [(False, "")]

    async def insert_second_row() -> None:
        await _fetch(fresh_db, "INSERT INTO app_state (id) VALUES (false)")

    with pytest.raises(asyncpg.CheckViolationError):
        asyncio.run(insert_second_row())


def test_database_with_an_unknown_newer_migration_is_refused(fresh_db: str) -> None:
    asyncio.run(migrate(fresh_db))
    asyncio.run(_fetch(
        fresh_db, "INSERT INTO schema_migrations (version, name, checksum) "
        "VALUES (9999, 'from_the_future', 'x')"))
    with pytest.raises(MigrationError, match=r"does not know: \[9999\]"):
        asyncio.run(migrate(fresh_db))


def test_an_applied_migration_edited_afterwards_is_refused(fresh_db: str) -> None:
    asyncio.run(migrate(fresh_db))
    asyncio.run(_fetch(fresh_db, "UPDATE schema_migrations SET checksum = 'x' WHERE version = 2"))
    with pytest.raises(MigrationError, match="0002_bus_messages"):
        asyncio.run(migrate(fresh_db))


def test_a_failing_migration_leaves_nothing_behind(fresh_db: str, tmp_path: Path) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (x int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (x int);\nSELECT no_such_fn();")
    with pytest.raises(MigrationError, match="0002_bad"):
        asyncio.run(migrate(fresh_db, tmp_path))
    rows = asyncio.run(_fetch(
        fresh_db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
    assert {r["tablename"] for r in rows} == {"good", "schema_migrations"}
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (x int);")
    assert asyncio.run(migrate(fresh_db, tmp_path)) == ["0002_bad"]


def test_migration_files_with_a_gap_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_c.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="without gaps"):
        load_migrations(tmp_path)


# -- bus messages --------------------------------------------------------------------------


async def _insert_and_listen(dsn: str) -> dict:
    listener = await asyncpg.connect(dsn)
    writer = await asyncpg.connect(dsn)
    received: asyncio.Queue[str] = asyncio.Queue()
    try:
        await listener.add_listener("bus_messages", lambda *args: received.put_nowait(args[3]))
        await writer.execute(
            "INSERT INTO bus_messages (ts_ns, decision_id, sender, recipient, kind, payload) "
            "VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
            1_700_000_000_000_000_000, "d-1", "strategist", "risk-gate", "proposal",
            json.dumps({"side": "BUY"}),
        )
        return json.loads(await asyncio.wait_for(received.get(), timeout=10))
    finally:
        await writer.close()
        await listener.close()


def test_bus_message_insert_notifies_listeners(fresh_db: str) -> None:
    asyncio.run(migrate(fresh_db))
    note = asyncio.run(_insert_and_listen(fresh_db))
    assert note["decision_id"] == "d-1"
    assert (note["sender"], note["recipient"], note["kind"]) == (
        "strategist", "risk-gate", "proposal")
    assert isinstance(note["id"], int)


@pytest.mark.parametrize("statement", [
    "UPDATE bus_messages SET kind = 'forged'",
    "DELETE FROM bus_messages",
])
def test_bus_messages_are_append_only(fresh_db: str, statement: str) -> None:
    asyncio.run(migrate(fresh_db))
    asyncio.run(_fetch(
        fresh_db, "INSERT INTO bus_messages (ts_ns, sender, recipient, kind) "
        "VALUES (1, 'a', 'b', 'c')"))
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        asyncio.run(_fetch(fresh_db, statement))
    rows = asyncio.run(_fetch(fresh_db, "SELECT kind FROM bus_messages"))
    assert [r["kind"] for r in rows] == ["c"]


# -- the private cluster -------------------------------------------------------------------


def test_second_cluster_on_the_same_directory_reuses_the_running_server(
    pg_cluster: PrivateCluster,
) -> None:
    second = PrivateCluster(pg_cluster.root)
    with second as dsn:
        assert dsn == pg_cluster.dsn
        assert not second.owned
    # The reuser's exit must not stop the starter's server.
    assert pg_cluster.is_running()
    assert asyncio.run(_fetch(pg_cluster.dsn, "SELECT 1 AS one"))[0]["one"] == 1


def test_stop_releases_the_port_and_a_restart_keeps_the_data(pg_root: Path) -> None:
    cluster = PrivateCluster(pg_root / "restart", durable=False)
    dsn = cluster.start()
    port = cluster.port
    assert port is not None and cluster.owned
    asyncio.run(migrate(dsn))
    assert not _port_is_free(port)  # the server listens there while running
    cluster.stop()
    assert not cluster.is_running()
    assert _port_is_free(port)
    with pytest.raises(OSError):
        asyncio.run(_fetch(dsn, "SELECT 1"))
    with cluster as dsn_again:
        assert asyncio.run(migrate(dsn_again)) == []  # the schema survived the restart


def test_missing_postgresql_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PgNotInstalledError, match="apt-get install -y postgresql"):
        find_bindir(path="", search=[str(tmp_path)])
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(pg, "DEFAULT_SEARCH", (str(tmp_path / "nowhere"),))
    cluster = PrivateCluster(tmp_path / "cluster")
    with pytest.raises(PgNotInstalledError, match="TRIPWIRE_PG_DSN"):
        cluster.start()
    assert not (tmp_path / "cluster").exists()  # nothing created before the check


def _fake_bindir(directory: Path) -> Path:
    directory.mkdir(parents=True)
    for name in pg.BINARIES:
        tool = directory / name
        tool.write_text("#!/bin/sh\nexit 0\n")
        tool.chmod(0o755)
    return directory


def test_newest_debian_version_wins_and_symlinks_resolve(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16"):
        _fake_bindir(tmp_path / "lib" / "postgresql" / version / "bin")
    pattern = str(tmp_path / "lib" / "postgresql" / "*" / "bin")
    assert find_bindir(path="", search=[pattern]) == tmp_path / "lib/postgresql/16/bin"

    links = tmp_path / "local-bin"
    links.mkdir()
    for name in pg.BINARIES:
        (links / name).symlink_to(tmp_path / "lib/postgresql/15/bin" / name)
    assert find_bindir(path=str(links), search=[]) == tmp_path / "lib/postgresql/15/bin"


def test_directory_without_all_three_binaries_is_skipped(tmp_path: Path) -> None:
    partial = _fake_bindir(tmp_path / "partial")
    (partial / "postgres").unlink()
    full = _fake_bindir(tmp_path / "full")
    assert find_bindir(path=f"{partial}{os.pathsep}{full}", search=[]) == full


def test_configured_dsn_is_used_without_starting_a_cluster(tmp_path: Path) -> None:
    env = {"TRIPWIRE_PG_DSN": "postgresql://u@db.example:5432/tw"}
    with database(tmp_path, env=env) as dsn:
        assert dsn == "postgresql://u@db.example:5432/tw"
    assert not (tmp_path / "postgres").exists()


# -- tripwire db migrate ---------------------------------------------------------------------


def test_db_migrate_command_applies_then_reports_up_to_date(
    fresh_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tripwire.commands import main

    assert main(["db", "migrate", "--dsn", fresh_db, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["applied"] == [m.label for m in load_migrations()]
    assert main(["db", "migrate", "--dsn", fresh_db]) == 0
    assert "up to date" in capsys.readouterr().out


def test_db_migrate_command_on_a_private_cluster_starts_and_stops_it(
    pg_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tripwire.commands import main

    monkeypatch.delenv("TRIPWIRE_PG_DSN", raising=False)
    data_dir = pg_root / "cli-data"
    assert main(["db", "migrate", "--data-dir", str(data_dir), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["applied"]) == len(load_migrations())
    assert not PrivateCluster(data_dir / "postgres").is_running()


def test_db_migrate_command_without_postgresql_exits_2_with_the_install_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tripwire.commands import main

    monkeypatch.delenv("TRIPWIRE_PG_DSN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(pg, "DEFAULT_SEARCH", ())
    assert main(["db", "migrate", "--data-dir", str(tmp_path / "d")]) == 2
    assert "apt-get install -y postgresql" in capsys.readouterr().err


def test_db_migrate_command_against_an_unreachable_server_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tripwire.commands import main

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dsn = f"postgresql://u:s3cret@127.0.0.1:{port}/x"
    assert main(["db", "migrate", "--dsn", dsn]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tripwire db:")
    assert "s3cret" not in err
