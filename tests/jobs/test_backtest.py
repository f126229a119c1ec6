"""The backtest job: the per-task replay without Ray, the job under local Ray, bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from actors.backtest import ShardConfig, ShardSpec, run_shard
from serve_apps.jobs.backtest import main
from tripwire.decisions.config import DecisionConfig
from tripwire.feeds.scenario import Scenario, ScenarioConfig
from tripwire.risk.modes import SafetyMode
from tripwire.store.ticks import TickStore

# Small enough for seconds, with news shocks the rules analyst trades (seed 2: two fills).
SCENARIO = {"seed": 2, "n_symbols": 3, "duration_s": 3 * 3600,
            "events_per_kind": {"news_shock": 2, "fat_finger": 1}}
DIRECT = ShardConfig(decisions=dataclasses.replace(DecisionConfig(), mode=SafetyMode.DIRECT))


def _spec(symbols=None, label="all") -> ShardSpec:
    cfg = ScenarioConfig.from_dict(SCENARIO)
    names = symbols or Scenario(cfg).symbols.names
    return ShardSpec(label, tuple(names), cfg.start_ns, cfg.end_ns, scenario=cfg.to_dict(),
                     seed=cfg.seed)


@pytest.fixture(scope="module")
def whole() -> dict:
    return run_shard(_spec(), DIRECT)


def test_shard_runs_incidents_through_decisions_to_fills(whole):
    assert whole["incidents"] >= 3 and whole["anomalies"] >= whole["incidents"]
    # every incident ends somewhere: decided, held, rejected or coalesced, none lost
    assert sum(whole["outcomes"].values()) == whole["incidents"] == len(whole["decisions"])
    assert whole["verdicts"].get("NEWS_DRIVEN", 0) >= 1
    assert whole["outcomes"].get("EXECUTED", 0) >= 1
    assert whole["orders"] >= 1 and whole["fills"] >= 1
    assert whole["realised_pnl"] + whole["unrealised_pnl"] != 0
    per = whole["per_symbol"]
    assert sum(r["fills"] for r in per.values()) == whole["fills"]
    assert sum(r["realised_pnl"] for r in per.values()) == pytest.approx(whole["realised_pnl"])
    assert sum(r["fees"] for r in per.values()) == pytest.approx(whole["fees"])
    assert whole["llm"]["calls"] >= whole["incidents"] and whole["llm"]["failed"] == 0


def test_shard_is_reproducible(whole):
    assert run_shard(_spec(), DIRECT) == whole


def test_detection_and_ids_do_not_depend_on_the_grouping(whole):
    names = whole["symbols"]
    alone = [run_shard(_spec([s], label=s), DIRECT) for s in names]
    assert sum(r["anomalies"] for r in alone) == whole["anomalies"]
    key = ("symbol", "ts_ns", "metric", "incident_id", "verdict")
    split = sorted(tuple(d[k] for k in key) for r in alone for d in r["decisions"])
    assert split == sorted(tuple(d[k] for k in key) for d in whole["decisions"])


def test_strict_cassette_miss_fails_closed():
    cfg = dataclasses.replace(DIRECT, cassette_text="", cassette_mode="strict")
    r = run_shard(_spec(), cfg)
    assert r["incidents"] >= 1 and r["orders"] == 0 and r["fills"] == 0
    assert set(r["outcomes"]) <= {"TRIAGE_FAILED", "COALESCED"}
    assert r["llm"]["failed"] >= 1


def test_shard_refuses_symbols_missing_from_the_data():
    with pytest.raises(ValueError, match="NOPEUSDT"):
        run_shard(_spec(["BTCUSDT", "NOPEUSDT"]), DIRECT)


# ----------------------------------------------------------------------------- the job


def _scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(SCENARIO))
    return path


def test_job_fans_out_and_is_reproducible(ray_local, tmp_path, capsys):
    sc = _scenario_file(tmp_path)
    outs = []
    for run in ("a", "b"):
        argv = ["--scenario-config", str(sc), "--groups", "2", "--out", str(tmp_path / run),
                "--json"]
        assert main(argv) == 0
        outs.append((tmp_path / run / "backtest.json").read_bytes())
        printed = json.loads(capsys.readouterr().out)
    assert outs[0] == outs[1]
    report = json.loads(outs[0])
    assert printed == report
    assert report["tasks"] == len(report["per_task"]) == 2
    t = report["totals"]
    assert t["incidents"] == sum(p["incidents"] for p in report["per_task"]) >= 3
    assert t["fills"] >= 1 and report["outcomes"].get("EXECUTED", 0) >= 1
    assert t["net_pnl"] == pytest.approx(t["realised_pnl"] - t["fees"])
    md = (tmp_path / "a" / "backtest.md").read_text()
    for sym in report["per_symbol"]:
        assert f"| {sym} |" in md
    assert "| **total** |" in md


def test_job_over_a_chdb_store_by_group_and_day(ray_local, tmp_path, capsys):
    cfg = ScenarioConfig.from_dict({**SCENARIO, "start_ns": ScenarioConfig().start_ns - 3600 *
                                    10**9})  # 23:00 the day before: the period spans 2 days
    sc = Scenario(cfg)
    url = f"chdb://{tmp_path / 'store'}"
    with TickStore(url) as store:
        for chunk in sc.blocks():
            store.insert_ticks(chunk.ticks, sc.symbols, source="test")
        store.insert_news(list(sc.news))
    argv = ["--store", url, "--start", "2026-01-04T23:30", "--end", "2026-01-05T02:00",
            "--warmup-s", "1800", "--symbols", "BTCUSDT,ETHUSDT", "--groups", "2",
            "--out", str(tmp_path / "out"), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    days = {p["label"].split("/")[1] for p in report["per_task"]}
    assert days == {"2026-01-04", "2026-01-05"}
    assert sorted(report["per_symbol"]) == ["BTCUSDT", "ETHUSDT"]
    assert report["totals"]["ticks"] > 0 and report["totals"]["warmup_ticks"] > 0


@pytest.mark.parametrize(("argv", "named"), [
    (["--groups", "0"], "--groups"),
    (["--scenario-seed", "1", "--symbols", "NOPEUSDT"], "--symbols"),
    (["--scenario-seed", "1", "--start", "2026-01-05"], "--start"),
    (["--scenario-seed", "1", "--mode", "YOLO"], "--mode"),
    (["--scenario-seed", "1", "--cassette", "/no/such/cassette.jsonl"], "--cassette"),
    (["--store", "chdb:///tmp/x", "--start", "2026-01-05"], "--end"),
    (["--store", "ftp://x", "--start", "2026-01-05", "--end", "2026-01-06"], "--store"),
    (["--scenario-config", "/no/such.json"], "--scenario-config"),
    (["--start", "yesterday"], "--start"),
])
def test_bad_arguments_exit_2_naming_the_argument(argv, named, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert named in err
    assert not (tmp_path / "backtest.json").exists()
