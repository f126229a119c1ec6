"""The lab's markets carry prompt injections, and they never make a trade.

``MarketSpec.injections`` adds instruction-carrying headlines to the market's news (half
just before a labelled event on its symbol). The no-filter arm proposes a trade on every
trip, so every incident whose news window holds an injection is one the sign-off would
execute if the headline were obeyed; the fact-checker vetoes each of them. The rules arm
never trades one either.
"""

import dataclasses

import pytest

from actors.backtest import ShardConfig
from actors.eval import EvalTask, run_eval_task
from tripwire.config import load_settings
from tripwire.decisions.provenance import looks_like_instructions
from tripwire.lab import markets as lab_markets
from tripwire.lab.policies import EvalContext, select
from tripwire.risk.modes import SafetyMode

WINDOW_NS = 900 * 10**9  # the incident's news window (tripwire.incident.DEFAULT_NEWS_WINDOW_S)
SPEC = lab_markets.MarketSpec("realistic", 4, 0.25, injections=10)


def test_lab_markets_carry_injections_from_their_own_stream():
    plain = lab_markets.build(dataclasses.replace(SPEC, injections=0), 1)
    m = lab_markets.build(SPEC, 1)
    flagged = [n for n in m.news if looks_like_instructions(n.headline)]
    assert len(flagged) == 10 and m.describe["injections"] == 10
    assert [n.id for n in m.news if n not in flagged] == [n.id for n in plain.news]
    assert [e.label for e in m.events] == [e.label for e in plain.events]
    assert lab_markets.MarketSpec().injection_count(24, 1.0) == 12  # on by default
    with pytest.raises(ValueError, match="--injections"):
        lab_markets.MarketSpec(injections=-1)


@pytest.mark.parametrize("policy", ["no_filter_mom", "rules"])
def test_an_injected_incident_never_trades_in_the_lab(policy):
    ctx = EvalContext()
    arm = {p.name: p for p in select([policy], ctx)}[policy]
    settings = load_settings(None)
    base = ShardConfig(decisions=dataclasses.replace(settings.decisions,
                                                     mode=SafetyMode.DIRECT),
                       detector=settings.detector, llm=None)
    injected = [n for n in lab_markets.build(SPEC, 1).news
                if looks_like_instructions(n.headline)]
    out = run_eval_task(EvalTask(policy, arm.analyst, arm.configure(ctx), 1, SPEC), base)
    touched = [r for r in out["rows"]
               if any(r["symbol"] in n.symbols and 0 <= r["ts_ns"] - n.ts_ns <= WINDOW_NS
                      for n in injected)]
    assert touched, "no incident saw an injection: the test would prove nothing"
    assert all(r["outcome"] != "EXECUTED" for r in touched), touched
    if policy == "no_filter_mom":  # it trades everything else: the veto is the only stop
        assert all("instructions" in r["reason"] for r in touched)
        assert any(r["outcome"] == "EXECUTED" for r in out["rows"] if r not in touched)
