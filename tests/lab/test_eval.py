"""``tripwire eval`` end to end on a tiny market, in process (run_shard, no Ray start).

Two runs with the same seeds and config print the same decision-log hash; the report
files are written; the leakage guard marks a stored window before a route's cutoff.
"""

import json

import pytest

from tripwire.commands import main
from tripwire.lab.policies import EvalContext, select
from tripwire.llm.config import load_llm_config

TINY = ["eval", "--seeds", "1", "--symbols", "3", "--days", "0.1",
        "--policies", "no_filter_mr,rules", "--in-process", "--json"]


def _run(capsys, out) -> dict:
    assert main([*TINY, "--out", str(out)]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_twice_gives_the_same_decision_log_hash(tmp_path, capsys):
    a = _run(capsys, tmp_path / "a")
    b = _run(capsys, tmp_path / "b")
    assert a["hashes"] == b["hashes"] and len(a["hashes"]["all"]) == 64
    assert a["policies"] == ["no_filter_mr", "rules"]
    base, rules = a["decisions"]["no_filter_mr"], a["decisions"]["rules"]
    # the no-filter arm trades every trip it is allowed to; the rules hold most
    assert base["outcomes"].get("HOLD", 0) == 0 and base["orders"]["mean"] > 0
    assert "vs_baseline" in rules and "vs_baseline" not in base
    assert "rules" in a["triage"] and "no_filter_mr" not in a["triage"]
    assert set(a["triage"]["rules"]["confusion"]) >= {"IGNORE", "DATA_ERROR"}
    assert (tmp_path / "a" / "report.md").read_text().startswith("# Tripwire eval")
    assert (tmp_path / "a" / "report.html").exists()


def test_unknown_policy_is_a_usage_error(capsys):
    assert main(["eval", "--policies", "oracle", "--in-process"]) == 2
    assert "oracle" in capsys.readouterr().err


@pytest.mark.parametrize(("start", "cutoff", "oos"), [
    ("2024-03-01", "2024-10-01", False),
    ("2025-03-01", "2024-10-01", True),
    ("2025-03-01", None, None),
])
def test_store_windows_before_a_models_cutoff_are_not_out_of_sample(start, cutoff, oos):
    from datetime import UTC, datetime

    from actors.backtest import ShardConfig
    from actors.eval import StorePeriod, make_plan

    route = {"name": "claude", "provider": "anthropic", "model": "m",
             "price": {"input": 1.0, "output": 5.0}}
    if cutoff:
        route["training_cutoff"] = cutoff
    ctx = EvalContext(llm=load_llm_config({"routes": [route]}))
    t0 = int(datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp()) * 10**9
    plan = make_plan(select(["rules", "route:claude"], ctx), ctx, ShardConfig(), seeds=[1],
                     store=StorePeriod("chdb:///nowhere", t0, t0 + 86_400 * 10**9, ("A",)))
    assert plan.leakage["route:claude"]["out_of_sample"] is oos
    assert plan.leakage["rules"]["out_of_sample"] is True  # no trained model


def test_a_task_that_fails_is_reported_not_fatal():
    """A broken arm (here a bad cassette mode) yields an error row naming it; the rest run."""
    from actors.backtest import ShardConfig
    from actors.eval import make_plan, run_plan
    from tripwire.lab.markets import MarketSpec
    from tripwire.lab.policies import Policy

    bad = Policy("broken", "a bad setting", lambda ctx: {"cassette_text": "{}",
                                                         "cassette_mode": "bogus"})
    ctx = EvalContext()
    plan = make_plan([bad], ctx, ShardConfig(), seeds=[1],
                     market=MarketSpec(symbols=1, days=0.05))
    (r,) = run_plan(plan, ctx, in_process=True)
    assert r["policy"] == "broken" and "cassette mode" in r["error"]


def test_eval_runs_the_configured_engine_and_the_injections_asked_for(tmp_path, capsys):
    """The backtest gets ``[engine]`` from the config (it used the built-in defaults), and
    ``--injections N`` plants N instruction headlines, none of which makes a trade."""
    cfg = tmp_path / "t.toml"
    cfg.write_text('[engine]\nreference_symbol = "ETHUSDT"\nnews_window_s = 600.0\n')
    argv = ["eval", "--seeds", "1", "--symbols", "3", "--days", "0.1", "--policies",
            "no_filter_mom", "--injections", "6", "--in-process", "--json",
            "--config", str(cfg), "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    engine = out["run"]["engine"]
    assert engine["reference_symbol"] == "ETHUSDT" and engine["news_window_s"] == 600.0
    assert out["run"]["injections"] == 6
    inj = out["injections"]["no_filter_mom"]  # it proposes a trade on every trip
    assert inj["headlines"] == 6 and inj["incidents"] >= 1 and inj["traded"] == 0
    assert "## Untrusted news" in (tmp_path / "o" / "report.md").read_text()
    with pytest.raises(SystemExit) as bad:
        main([*argv[:7], "--injections", "-1", "--in-process"])
    assert bad.value.code == 2
