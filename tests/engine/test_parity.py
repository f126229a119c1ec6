"""Parity: the comparison itself, and the backtest reproducing itself record by record
(proposal hashes and signatures included) in process, fanned out as Ray tasks and through
the live driver on market time (Ray shard actors, the orchestrator, the paper venue)."""

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


@pytest.fixture(scope="module")
def three_legs(ray_local, pg_cluster, small_plan):
    """The small scenario through all three legs once (the slow part, shared)."""
    import os

    from rich.console import Console

    from serve_apps.jobs.parity import run_legs

    args, _ = small_plan
    os.environ["TRIPWIRE_PG_DSN"] = pg_cluster.dsn  # the live leg's databases go there
    try:
        return run_legs(args, Console(stderr=True, quiet=True))
    finally:
        del os.environ["TRIPWIRE_PG_DSN"]


def test_parity_three_legs_agree(three_legs):
    """(a) in process, (b) Ray tasks, (c) live on market time (Ray shard actors, the
    orchestrator's decision path and paper venue, 1 s batches): every record the same."""
    from serve_apps.jobs.parity import compare_legs, summary

    legs, timing = three_legs
    out = summary(compare_legs(legs), timing)
    assert out["tasks"] == 2 and set(out["pairs"]) == {"in-process vs ray-tasks",
                                                       "in-process vs live"}
    for name, pair in out["pairs"].items():
        assert pair["differences"] == 0, (name, pair["listed"][:5])
        assert pair["records"]["orders"] >= 1 and pair["records"]["signatures"] >= 1
    assert out["differences"] == 0


def test_parity_counts_a_difference_injected_in_the_live_leg(three_legs):
    import copy

    from serve_apps.jobs.parity import compare_legs, summary

    legs, timing = three_legs
    live = copy.deepcopy(legs[2])
    order = next(r for r in live if r["records"]["orders"])["records"]["orders"][0]
    order["filled_qty"] = float(order["filled_qty"]) + 1e-9  # one bit of one order
    live[0]["records"]["fills"] = live[0]["records"]["fills"][1:]  # one fill missing
    out = summary(compare_legs([legs[0], legs[1], live]), timing)
    pair = out["pairs"]["in-process vs live"]
    assert out["differences"] == pair["differences"] >= 2
    assert pair["by_kind"]["orders"] == 1 and pair["by_kind"]["fills"] >= 1
    assert out["pairs"]["in-process vs ray-tasks"]["differences"] == 0


def test_parity_command_exits_1_on_a_live_difference(monkeypatch, capsys):
    """The command's own part -- compare the legs, print the JSON, exit 1 on a difference --
    given three hand-made leg reports in place of run_legs (the real legs run in the
    three_legs fixture above)."""
    from serve_apps.jobs import parity

    report = {"label": "g0", "records": {"orders": [{"id": "o1", "qty": 1.0}]}}
    tampered = {"label": "g0", "records": {"orders": [{"id": "o1", "qty": 2.0}]}}
    monkeypatch.setattr(parity, "run_legs", lambda args, err: (
        [[report], [report], [tampered]], {"tasks": 1}))
    args = argparse.Namespace(json=True)
    assert parity.run(args) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["pairs"]["in-process vs live"]["by_kind"]["orders"] == 1
    assert out["differences"] == 1
