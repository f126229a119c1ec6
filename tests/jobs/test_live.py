"""The live job end to end in its own process: a feed into the real Serve app, then a drain."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.serve_apps.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _run(args: list[str], data: Path, timeout: float = 540) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRIPWIRE_DATA__DIR": str(data),
           "TRIPWIRE_SERVE__PORT": str(free_port()), "TRIPWIRE_API_TOKEN": "live-test"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "serve_apps.jobs.live", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_scenario_feed_runs_through_the_app_and_every_tick_is_stored() -> None:
    root = Path(tempfile.mkdtemp(prefix="tripwire-live-test-"))
    root.chmod(0o711)  # the postgres user runs the private cluster under it
    try:
        proc = _run(["--symbols", "4", "--days", "0.03", "--speed", "0", "--json"],
                    root / "data")
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert summary["ticks"] == summary["accepted"] > 1_000
        assert summary["ticks_stored"] == summary["accepted"]
        assert summary["decisions_unfinished"] == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "binance"], "--streams"),
        (["--source", "ccxt:okx"], "--streams"),
        (["--source", "ccxt:okx=BTC/USDT", "--source", "nasdaq=AAPL"], "unknown live source"),
        (["--source", "replay"], "scenario or live sources"),
    ],
)
def test_bad_arguments_exit_2(tmp_path: Path, argv: list[str], message: str) -> None:
    proc = _run(argv, tmp_path, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr
