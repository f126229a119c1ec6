"""`tripwire detect-demo`: the scenario's injected events are found, bad input exits 2."""

import json
import subprocess
import sys

from tripwire.cli import main

ARGS = ["detect-demo", "--symbols", "6", "--hours", "12", "--json"]


def test_demo_detects_labelled_events_and_not_the_slow_trend(capsys):
    assert main(ARGS) == 0
    out = json.loads(capsys.readouterr().out)
    found = {e["event"]: e for e in out["events"] if e["detected"] is not None}
    for kind in ("flash_crash", "fat_finger", "liquidation_cascade"):
        assert found[kind]["detected"], kind
    assert out["slow_trend_trips"] == 0
    assert any(e["event"] == "slow_trend" and e["detected"] is None for e in out["events"])
    assert out["ticks"] > 100_000 and out["rejected"] == 0
    assert out["false_alarms"] == 0 and out["precision"] == 1.0


def test_demo_is_reproducible(capsys):
    runs = []
    for _ in range(2):
        assert main(["detect-demo", "--symbols", "3", "--hours", "6", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        out.pop("seconds"), out.pop("ticks_per_s")
        runs.append(out)
    assert runs[0] == runs[1]


def test_bad_arguments_exit_2_with_a_message():
    r = subprocess.run(
        [sys.executable, "-m", "tripwire.cli", "detect-demo", "--symbols", "0"],
        capture_output=True, text=True, check=False,
    )
    assert r.returncode == 2 and "argument --symbols: expected an integer >= 1, got 0" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "tripwire.cli", "detect-demo", "--hours", "-1"],
        capture_output=True, text=True, check=False,
    )
    assert r.returncode == 2 and "argument --hours" in r.stderr
