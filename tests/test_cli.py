"""The `tripwire` command: the demo finds the injected events, bad input exits 2."""

import json
import subprocess
import sys

from tripwire.cli import main


def test_demo_detects_labelled_events_and_not_the_slow_trend(capsys):
    assert main(["detect-demo", "--symbols", "6", "--ticks-per-symbol", "8000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    found = {e["event"]: e for e in out["events"]}
    for kind in ("flash_crash", "volume_burst", "fat_finger"):
        assert found[kind]["detected"], kind
    assert not found["slow_trend"]["detected"]
    assert out["ticks"] == 48_000 and out["rejected"] == 0
    assert out["unlabelled_trips"] == 0


def test_demo_is_reproducible(capsys):
    args = ["detect-demo", "--symbols", "4", "--ticks-per-symbol", "6000", "--json"]
    runs = []
    for _ in range(2):
        main(args)
        out = json.loads(capsys.readouterr().out)
        out.pop("seconds_in_detectors"), out.pop("ticks_per_s")
        runs.append(out)
    assert runs[0] == runs[1]


def test_bad_arguments_exit_2_with_a_message():
    r = subprocess.run(
        [sys.executable, "-m", "tripwire.cli", "detect-demo", "--symbols", "0"],
        capture_output=True, text=True, check=False,
    )
    assert r.returncode == 2 and "expected an integer >= 1, got 0" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "tripwire.cli", "detect-demo", "--symbols", "2"],
        capture_output=True, text=True, check=False,
    )
    assert r.returncode == 2 and "the demo needs >= 4 symbols" in r.stderr
