"""Parity: the comparison itself, and the backtest reproducing itself record by record
(proposal hashes and signatures included) in process and fanned out as Ray tasks."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from tripwire.engine.parity import compare
from tripwire.feeds.scenario import ScenarioConfig

SMALL = ScenarioConfig(seed=3, n_symbols=6, duration_s=4 * 3600,
                       events_per_kind={"fat_finger": 2, "news_shock": 2,
                                        "liquidation_cascade": 1})


def _report(label="g0", **records):
    return {"label": label, "records": records}


def test_compare_pairs_records_by_id_and_names_each_difference():
    a = [_report(orders=[{"id": "o1", "qty": 1.0, "avg": math.nan}, {"id": "o2", "qty": 1.0}],
                 proposals=[{"decision_id": "d1", "hash": "x", "recorded_ns": 1}])]
    b = [_report(orders=[{"id": "o1", "qty": 2.0, "avg": math.nan}, {"id": "o3", "qty": 1.0}],
                 proposals=[{"decision_id": "d1", "hash": "x", "recorded_ns": 2}])]
    r = compare(a, b, ("left", "right"))
    got = {(d.kind, d.key, d.field, d.a, d.b) for d in r.differences}
    assert got == {("orders", "g0/o1", "qty", 1.0, 2.0), ("orders", "g0/o2", "", True, False),
                   ("orders", "g0/o3", "", False, True)}  # NaN == NaN; recorded_ns is ignored
    assert r.count == 3 and r.records["orders"] == 3 and r.to_dict()["drivers"] == ["left",
                                                                                     "right"]
    assert compare(a, a).count == 0
    assert compare(a, []).count == 1  # a whole shard missing on one side


def test_compare_refuses_reports_without_records():
    with pytest.raises(ValueError, match="no records"):
        compare([{"label": "g0"}], [])


@pytest.fixture(scope="module")
def small_plan(tmp_path_factory):
    from serve_apps.jobs.backtest import make_plan
    from serve_apps.jobs.parity import backtest_args

    path = tmp_path_factory.mktemp("parity") / "small.json"
    path.write_text(json.dumps(SMALL.to_dict()))
    return argparse.Namespace(scenario=None, scenario_config=str(path), symbols=None,
                              groups=2, num_cpus=0.5, mode="DIRECT", config=None), \
        make_plan(backtest_args(argparse.Namespace(
            scenario=None, scenario_config=str(path), symbols=None, groups=1, num_cpus=0.5,
            mode="DIRECT", config=None)))


def test_the_backtest_reproduces_every_record(small_plan):
    """Regression: verdict ids were drawn from os.urandom, so two runs of one stream gave
    different proposal hashes and signatures (the orders still matched)."""
    import dataclasses

    from actors.backtest import run_shard

    _, plan = small_plan
    config = dataclasses.replace(plan.config, records=True)
    a, b = (run_shard(plan.specs[0], config) for _ in range(2))
    assert a["records"]["orders"] and a["records"]["signatures"]  # decisions were made
    r = compare([a], [b])
    assert r.count == 0, r.to_dict()["listed"][:5]


def test_parity_in_process_against_ray_tasks(ray_local, small_plan, capsys):
    from serve_apps.jobs.parity import run

    args, _ = small_plan
    args.json = True
    assert run(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["differences"] == 0 and out["tasks"] == 2
    assert out["records"]["orders"] >= 1 and out["records"]["proposals"] >= 1
