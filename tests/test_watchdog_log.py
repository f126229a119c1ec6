"""The watchdog's log file is appended to, never truncated (issue 13, finding 2): the lines
that say why an earlier run halted survive the next start, and each start is marked."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tripwire.commands import main


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = tmp_path / "wd.toml"
    path.write_text('[watchdog]\nheartbeats = ["shard:*"]\nheartbeat_max_age_s = 60\n')
    for name in ("TRIPWIRE_CONFIG", "TRIPWIRE_WATCHDOG_DSN", "TRIPWIRE_PG_DSN"):
        monkeypatch.delenv(name, raising=False)
    return str(path)


def test_each_start_appends_a_marker_and_keeps_the_earlier_lines(
        migrated_db: str, config: str, tmp_path: Path) -> None:
    log = tmp_path / "watchdog.log"
    earlier = '{"event": "watchdog_alert", "code": "drawdown", "detail": "why it halted"}\n'
    log.write_text(earlier)
    argv = ["watchdog", "--once", "--json", "--dsn", migrated_db, "--config", config,
            "--log", str(log)]
    try:
        assert main(argv) == 1  # no shard heartbeat yet: a breach, logged to the file
        assert main(argv) == 1
    finally:
        for h in logging.getLogger("tripwire.watchdog").handlers:
            h.close()
    text = log.read_text()
    assert text.startswith(earlier)  # not truncated
    events = [json.loads(line)["event"] for line in text.splitlines()]
    assert events.count("watchdog_start") == 2
    # The first run's alert (why it halted) follows its marker and survives the second start
    # (which finds the flag already up and has nothing new to say).
    first, second = [i for i, e in enumerate(events) if e == "watchdog_start"]
    assert 0 < first < second
    alerts = [line for line in text.splitlines()[first + 1:second] if "watchdog_alert" in line]
    assert alerts and "heartbeat_stale" in alerts[0]
