"""`tripwire demo` end to end, as a user runs it: its own Ray, PostgreSQL, chdb and Serve app.

A small scenario (8 symbols, 2 simulated hours) keeps it to about a minute; the default
(24 symbols, one day) is what `make demo` runs and the README reports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve_apps.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Under /tmp, not pytest's 0700 tree: the postgres user must enter it."""
    root = Path(tempfile.mkdtemp(prefix="tripwire-demo-test-"))
    root.chmod(0o711)
    yield root / "data"
    shutil.rmtree(root, ignore_errors=True)


def test_the_demo_runs_to_its_summary_and_loses_nothing(data_dir: Path) -> None:
    data = data_dir
    env = {**os.environ, "TRIPWIRE_DATA__DIR": str(data), "RAY_ADDRESS": "",
           "TRIPWIRE_API_TOKEN": "demo-test-token"}
    env.pop("RAY_ADDRESS")
    proc = subprocess.run(
        [sys.executable, "-m", "tripwire.cli", "demo", "--hours", "2", "--symbols", "8",
         "--port", str(free_port()), "--json"],
        env=env, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    ticks = summary["ticks"]
    assert ticks["accepted"] == ticks["sent"] > 10_000
    assert summary["shutdown"]["ticks_stored"] == ticks["accepted"]
    assert summary["shutdown"]["ticks_lost"] == 0
    assert summary["shutdown"]["decisions_unfinished"] == 0
    assert summary["halt"]["halted"] is False
    assert summary["mode"] == "DIRECT"
    assert summary["console"].startswith("http://127.0.0.1:")
    report = Path(summary["report"]["html"])
    assert report.is_file() and "<html" in report.read_text()[:500].lower()
    assert "demo-test-token" not in proc.stdout + proc.stderr  # the token is never printed
    watchdog_log = Path(summary["watchdog"]["log"]).read_text()
    assert '"watchdog_check"' in watchdog_log


def test_bad_arguments_exit_2_naming_them(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tripwire.cli", "demo", "--mode", "YOLO"],
        env={**os.environ, "TRIPWIRE_DATA__DIR": str(tmp_path)}, capture_output=True,
        text=True, timeout=120)
    assert proc.returncode == 2
    assert "--mode" in proc.stderr
