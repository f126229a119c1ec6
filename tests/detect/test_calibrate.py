"""`tripwire calibrate` on a Binance trade dump: a file the live path reads, within budget."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from actors.commands import register
from tripwire.adapters.binance.loader import BinanceCsvFeed
from tripwire.detect import DetectorBank, DetectorConfig
from tripwire.detect.calibrate import parse_budget

DAY_MS = 86_400_000
START_MS = 1_704_067_200_000  # 2024-01-01


def write_dump(path, n_days=1.0, gap_s=2.0, nu=3, seed=5):
    """A quiet spot trades file: Poisson trades, Student-t steps, bid-ask bounce."""
    rng = np.random.default_rng(seed)
    n = int(n_days * 86_400 / gap_s)
    t = START_MS + np.sort(rng.integers(0, int(n_days * DAY_MS), n))
    step = 4e-4 * rng.standard_t(nu, n) / math.sqrt(nu / (nu - 2))
    mid = 42_000 * np.exp(np.cumsum(step))
    side = rng.random(n) < 0.5
    price = np.round(mid * np.where(side, 1 - 1e-4, 1 + 1e-4), 1)
    qty = np.round(rng.lognormal(-3, 1, n), 5) + 1e-5
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"{i + 1},{price[i]:.1f},{qty[i]:.5f},{price[i] * qty[i]:.5f},{t[i]},"
                    f"{'True' if side[i] else 'False'},True\n")
    return n


def run(argv, capsys):
    parser = argparse.ArgumentParser(prog="tripwire")
    register(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr()


def test_calibrate_writes_thresholds_that_meet_the_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRIPWIRE_CONFIG", raising=False)
    dump = tmp_path / "BTCUSDT-trades-2024-01-01.csv"
    write_dump(dump)
    out = tmp_path / "cal.toml"
    code, io = run(["calibrate", "--source", "binance-csv", str(dump), "--budget", "0.5/day",
                    "--out", str(out), "--json"], capsys)
    assert code == 0, io.err
    report = json.loads(io.out)
    (row,) = report["symbols"]
    assert row["symbol"] == "BTCUSDT" and row["budget_met"] and row["trips_per_day"] <= 0.5
    assert row["multiplier"] >= 1.0 and row["min_move_pct"] > 0
    # The live path reads the file; the bank then holds the budget on the same data.
    cfg = DetectorConfig.from_dict({"calibration": str(out)})
    assert cfg.thresholds_for("BTCUSDT") == tuple(row["thresholds"])
    feed = BinanceCsvFeed([dump])
    bank = DetectorBank(cfg, n_symbols=1)
    assert bank.apply_symbol_thresholds(feed.symbols.names) == 1
    alarms = sum(len(np.unique(bank.push(c.ticks).trips.ts_ns)) for c in feed.iter_chunks())
    assert alarms <= 0.5 * max(row["days"], 1 / 24) + 1e-9


def test_calibrate_raises_thresholds_when_the_base_is_too_loose(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRIPWIRE_CONFIG", raising=False)
    dump = tmp_path / "ETHUSDT-trades-2024-01-01.csv"
    write_dump(dump, n_days=0.5, seed=9)
    settings = tmp_path / "tripwire.toml"
    settings.write_text("[detector.returns]\nthreshold = 3.0\n")
    out = tmp_path / "cal.toml"
    code, io = run(["calibrate", "--source", "binance-csv", str(dump), "--budget", "1",
                    "--config", str(settings), "--out", str(out)], capsys)
    assert code == 0, io.err
    text = out.read_text()
    assert "[detector.symbols.ETHUSDT]" in text and "ETHUSDT" in io.out
    th = DetectorConfig.from_dict({"calibration": str(out)}).thresholds_for("ETHUSDT")
    assert th[0] > 3.0  # raised: the base crossed far more than once a day


@pytest.mark.parametrize("argv, message", [
    (["--budget", "lots"], "--budget must be trips per day like 0.5/day"),
    (["--budget=-1/day"], "--budget must be > 0"),
    (["missing.csv"], "no such file: missing.csv"),
])
def test_bad_input_is_refused_with_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.delenv("TRIPWIRE_CONFIG", raising=False)
    out = tmp_path / "cal.toml"
    code, io = run(["calibrate", "--source", "binance-csv", *argv, "--out", str(out)], capsys)
    assert code == 2 and message in io.err.replace("\n", " ") and not out.exists()


def test_parse_budget():
    assert parse_budget("0.5/day") == 0.5 and parse_budget(" 2 ") == 2.0
