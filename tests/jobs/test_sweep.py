"""The sweep job: the per-task scoring without Ray, the grid under local Ray, rows in
PostgreSQL, bad arguments."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest

from actors.backtest import ShardSpec
from actors.sweep import run_sweep
from serve_apps.jobs.sweep import main
from tripwire.detect import DetectorConfig
from tripwire.feeds.scenario import Scenario, ScenarioConfig

# One short labelled day: 4 symbols, 3 hours, one event of four kinds.
SCENARIO = {"seed": 2, "n_symbols": 4, "duration_s": 3 * 3600,
            "events_per_kind": {"flash_crash": 1, "fat_finger": 1, "news_shock": 1,
                                "volume_burst": 1}}
GRID = ["--returns-threshold", "5,12", "--groups", "2"]
# Fields that measure the run, not the result.
RUN_KEYS = ("run_id", "wall_s", "tasks_per_s", "workers", "cluster_cpus")


def _spec() -> ShardSpec:
    cfg = ScenarioConfig.from_dict(SCENARIO)
    return ShardSpec("all", Scenario(cfg).symbols.names, cfg.start_ns, cfg.end_ns,
                     scenario=cfg.to_dict(), seed=cfg.seed)


def _without_timing(report: dict) -> dict:
    out = {k: v for k, v in report.items() if k not in RUN_KEYS}
    out["per_task"] = [{k: v for k, v in r.items() if k != "seconds"} for r in out["per_task"]]
    return out


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(SCENARIO))
    return path


@pytest.fixture
def no_pg_env(monkeypatch):
    monkeypatch.delenv("TRIPWIRE_PG_DSN", raising=False)


def test_task_scores_trips_against_the_labels():
    loose = run_sweep(_spec(), DetectorConfig.from_dict({"returns": {"threshold": 5.0}}))
    tight = run_sweep(_spec(), DetectorConfig())
    assert loose["labelled"] and loose["ticks"] == tight["ticks"] > 0
    assert sum(loose["events"].values()) == 4
    assert loose["alarms"] == loose["true_alarms"] + loose["false_alarms"]
    # a lower threshold trips more, and the extra trips are mostly noise
    assert loose["alarms"] > tight["alarms"] and loose["false_alarms"] > tight["false_alarms"]
    assert loose["precision"] < tight["precision"]
    assert set(loose["recall"]) == {"flash_crash", "fat_finger", "news_shock", "volume_burst"}


def test_job_sweeps_the_grid_and_is_reproducible(ray_local, scenario_file, tmp_path, capsys,
                                                 no_pg_env):
    reports = []
    for run in ("a", "b"):
        argv = ["--scenario-config", str(scenario_file), *GRID, "--out", str(tmp_path / run),
                "--json"]
        assert main(argv) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed == json.loads((tmp_path / run / "sweep.json").read_text())
        reports.append(printed)
    assert _without_timing(reports[0]) == _without_timing(reports[1])
    r = reports[0]
    assert r["tasks"] == len(r["per_task"]) == 2 * 2  # 2 configs x 2 groups x 1 day
    assert r["workers"] >= 1 and r["wall_s"] > 0 and r["tasks_per_s"] > 0
    assert [c["params"] for c in r["configs"]] == [{"returns.threshold": 5.0},
                                                   {"returns.threshold": 12.0}]
    loose, tight = r["configs"]
    assert loose["detector"]["returns"]["threshold"] == 5.0
    for c in r["configs"]:
        tasks = [t for t in r["per_task"] if t["config"] == c["id"]]
        assert c["alarms"] == sum(t["alarms"] for t in tasks) == c["true_alarms"] + c[
            "false_alarms"]
        assert c["precision"] == pytest.approx(c["true_alarms"] / c["alarms"])
        assert sum(c["events"].values()) == 4
    assert loose["false_alarms"] > tight["false_alarms"]
    assert r["best"] == sorted(r["best"], key=lambda i: -r["configs"][i]["f1"])
    assert r["best"][0] == 1  # the calibrated threshold beats the noisy one
    md = (tmp_path / "a" / "sweep.md").read_text()
    assert "returns.threshold=5.0" in md and "## Best by F1" in md


def test_job_writes_rows_to_postgres(ray_local, scenario_file, tmp_path, capsys, migrated_db,
                                     no_pg_env):
    argv = ["--scenario-config", str(scenario_file), *GRID, "--out", str(tmp_path),
            "--pg", migrated_db, "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)

    async def rows():
        conn = await asyncpg.connect(migrated_db)
        try:
            return await conn.fetch("SELECT * FROM sweep_results ORDER BY config_id, label")
        finally:
            await conn.close()

    got = asyncio.run(rows())
    assert len(got) == report["tasks"] == 4
    assert {r["run_id"] for r in got} == {report["run_id"]}
    for row in got:
        task = next(t for t in report["per_task"]
                    if t["config"] == row["config_id"] and t["label"] == row["label"])
        assert (row["alarms"], row["true_alarms"], row["ticks"]) == (
            task["alarms"], task["true_alarms"], task["ticks"])
        assert list(row["symbols"]) == task["symbols"]
        assert json.loads(row["config"]) == report["configs"][row["config_id"]]["detector"]
        assert str(row["day"]) == "2026-01-05" and row["created_ns"] > 0


@pytest.mark.parametrize(("argv", "named"), [
    (["--param", "returns.window"], "--param"),
    (["--param", "returns.speed=1,2"], "--param"),
    (["--param", "returns.window=10,ten"], "--param"),
    (["--returns-window", "0,100"], "--param returns.window"),
    (["--returns-threshold", "5", "--param", "returns.threshold=6"], "returns.threshold"),
    (["--returns-threshold", "nan"], "--returns-threshold"),
    (["--window", ""], "--returns-window"),
    (["--groups", "0"], "--groups"),
    (["--scenario-seed", "1", "--symbols", "NOPEUSDT"], "--symbols"),
    (["--scenario-config", "/no/such.json"], "--scenario-config"),
    (["--store", "ftp://x", "--start", "2026-01-05", "--end", "2026-01-06"], "--store"),
    (["--num-cpus", "-1"], "--num-cpus"),
])
def test_bad_arguments_exit_2_naming_the_argument(argv, named, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "sweep.json").exists()


def test_job_over_a_chdb_store_counts_alarms_without_scores(ray_local, tmp_path, capsys,
                                                           no_pg_env):
    from tripwire.store.ticks import TickStore

    # 23:00 the day before: the period spans two UTC days
    cfg = ScenarioConfig.from_dict({**SCENARIO, "start_ns": ScenarioConfig().start_ns - 3600 *
                                    10**9})
    sc = Scenario(cfg)
    url = f"chdb://{tmp_path / 'store'}"
    with TickStore(url) as store:
        for chunk in sc.blocks():
            store.insert_ticks(chunk.ticks, sc.symbols, source="test")
    argv = ["--store", url, "--start", "2026-01-04T23:30", "--end", "2026-01-05T01:00",
            "--warmup-s", "1800", "--symbols", "BTCUSDT,ETHUSDT", "--groups", "1",
            "--param", "returns.threshold=2,12", "--out", str(tmp_path / "out"), "--json"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["tasks"] == 2 * 2  # 2 configs x 1 group x 2 days
    assert {t["label"].split("/")[1] for t in r["per_task"]} == {"2026-01-04", "2026-01-05"}
    loose, tight = r["configs"]
    assert not loose["labelled"] and loose["f1"] is None and r["best"] == []
    assert loose["ticks"] == tight["ticks"] > 0 and loose["alarms"] > tight["alarms"]
