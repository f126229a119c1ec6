"""The offline rules analyst: each rule on a hand-made incident, the provider contract, the
strategist and double-checker rules, and triage of the scenario generator's labelled day."""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from tripwire.feeds.news import SOURCE as TRUSTED_WIRE  # trusted by the default [news]
from tripwire.incident import Incident
from tripwire.llm.base import LLMRequest, Message, Provider, ProviderError
from tripwire.llm.rules import (
    MAX_CONFIDENCE,
    RULES_MAX_SIZE,
    RulesProvider,
    double_check,
    propose,
    triage,
)
from tripwire.llm.schemas import (
    Action,
    CheckVerdict,
    Classification,
    DoubleCheck,
    StrategistProposal,
    TriageVerdict,
)
from tripwire.model import NS_PER_SECOND, EventKind

S = NS_PER_SECOND
C = Classification


def make(
    *,
    symbol: str = "ETHUSDT",
    tripped: dict[str, float] | None = None,
    price: float = 100.0,
    news: list[tuple[str, bool]] = (),
    market: dict[str, float] | None = None,
    source: str = TRUSTED_WIRE,
    **recent: Any,
) -> Incident:
    """An incident from the few numbers a rule looks at (a quiet market by default); its
    headlines come from ``source`` (a trusted one by default)."""
    tripped = tripped or {"RETURN": -30.0}
    metric = max(tripped, key=lambda k: abs(tripped[k]))
    rec = {"ticks": 200, "span_s": 120.0, "ret_1_pct": 0.0, "ret_10_pct": 0.0,
           "last_gap_s": 0.5, "median_gap_s": 0.5, **recent}  # fmt: skip
    return Incident.model_validate(
        {
            "symbol": symbol, "ts_ns": 1_000 * S, "metric": metric, "z": tripped[metric],
            "value": 0.0, "price": price, "tripped": tripped, "recent": rec,
            "market": market,
            "news": [
                {"id": f"n{i}", "age_s": 30.0 + i, "headline": h, "about_symbol": about,
                 "source": source}
                for i, (h, about) in enumerate(news)
            ],
        }
    )  # fmt: skip


def check(inc: Incident, want: Classification, rule: str) -> TriageVerdict:
    v = triage(inc)
    assert v.classification is want, v.reasoning
    assert v.reasoning.startswith(f"[rules] {rule}:"), v.reasoning
    assert v.source == "rules" and v.key_factors
    return v


# ----------------------------------------------------------------------------- triage rules


def test_a_print_far_off_and_back_is_a_data_error():
    v = check(make(ret_prev_pct=-12.0, ret_1_pct=13.5, ret_10_pct=0.1), C.DATA_ERROR,
              "spike-and-back")  # fmt: skip
    assert v.confidence == 0.9


def test_a_trade_after_minutes_of_silence_is_a_data_error():
    inc = make(ret_1_pct=1.9, ret_10_pct=1.9, last_gap_s=390.0, median_gap_s=0.6)
    check(inc, C.DATA_ERROR, "feed-gap")
    # a quiet small cap trading every minute is not a gap
    check(make(ret_1_pct=1.9, ret_10_pct=1.9, last_gap_s=90.0, median_gap_s=60.0),
          C.TECHNICAL_SPIKE, "unexplained-jump")  # fmt: skip


def test_hard_news_about_the_symbol_makes_it_news_driven():
    bad = [("BREAKING: Coinbase halts ETH deposits and withdrawals after security incident", True)]
    v = check(make(ret_1_pct=-2.9, ret_10_pct=-2.9, news=bad), C.NEWS_DRIVEN, "hard-news")
    assert "bad news" in v.reasoning and v.confidence >= 0.85
    good = [("BREAKING: SEC approves spot ETH ETF applications", True)]
    v2 = check(make(ret_1_pct=4.1, ret_10_pct=4.0, news=good), C.NEWS_DRIVEN, "hard-news")
    assert "good news" in v2.reasoning


def test_news_against_the_move_lowers_the_confidence():
    good = [("BREAKING: SEC approves spot ETH ETF applications", True)]
    agree = triage(make(ret_1_pct=3.0, ret_10_pct=3.0, news=good))
    clash = triage(make(ret_1_pct=-3.0, ret_10_pct=-3.0, news=good))
    assert clash.classification is C.NEWS_DRIVEN and clash.confidence < agree.confidence - 0.3
    assert "against the headline" in clash.reasoning


def test_rumours_and_other_symbols_news_do_not_explain_a_move():
    rumour = [("Rumour of ETH smart-contract exploit circulates on social media", True)]
    check(make(ret_1_pct=-0.8, ret_10_pct=-0.9, news=rumour), C.LIQUIDATION_CASCADE,
          "forced-selling")  # fmt: skip
    # ... unless the move is big: then a weak NEWS_DRIVEN
    v = check(make(ret_1_pct=-2.5, ret_10_pct=-2.6, news=rumour), C.NEWS_DRIVEN, "hard-news")
    assert v.confidence <= 0.6 and "unconfirmed" in v.reasoning
    macro = [("Fed's Powell says policy is well positioned", False)]
    check(make(ret_1_pct=-0.8, ret_10_pct=-0.9, news=macro), C.LIQUIDATION_CASCADE,
          "forced-selling")  # fmt: skip


def test_market_wide_news_counts_only_when_the_market_moves_too():
    etf = [("Spot bitcoin ETFs log $600m of net inflows on the day", False)]
    up = make(ret_1_pct=1.2, ret_10_pct=1.5, news=etf, market={"market_move_pct": 2.0})
    check(up, C.NEWS_DRIVEN, "hard-news")
    check(make(ret_1_pct=1.2, ret_10_pct=1.5, news=etf, market={"market_move_pct": 0.1}),
          C.TECHNICAL_SPIKE, "unexplained-jump")  # fmt: skip


def test_one_print_far_off_with_a_flat_run_before_is_a_bad_print():
    inc = make(
        tripped={"RETURN": -616.0, "PRICE": -104.0},
        ret_1_pct=-20.5,
        ret_10_pct=-20.5,
        volume_vs_window=1.4,
        market={"symbol_move_pct": -20.2, "market_move_pct": 0.1},
    )
    v = check(inc, C.DATA_ERROR, "single-print")
    assert v.confidence == 0.9


def test_a_big_drop_after_a_run_up_is_a_dump_not_a_bad_print():
    inc = make(ret_1_pct=-9.2, ret_10_pct=-9.2, volume_vs_window=1.5,
               market={"symbol_move_pct": 15.0, "market_move_pct": -0.2})  # fmt: skip
    v = check(inc, C.MANIPULATION, "run-up-reversal")
    assert "run-up" in v.reasoning


def test_a_modest_drop_after_pump_headlines_is_a_dump():
    pump = [("SOL soars on social media buzz; analysts warn of thin liquidity", True)]
    inc = make(symbol="SOLUSDT", tripped={"RETURN": -25.0}, ret_1_pct=-0.4, ret_10_pct=-0.6,
               news=pump, market={"symbol_move_pct": 2.0, "market_move_pct": 0.0})  # fmt: skip
    check(inc, C.MANIPULATION, "run-up-reversal")


def test_a_sharp_fall_without_news_is_forced_selling():
    v = check(make(ret_1_pct=-0.8, ret_10_pct=-1.2, down_run=4, volume_vs_window=5.0),
              C.LIQUIDATION_CASCADE, "forced-selling")  # fmt: skip
    plain = triage(make(ret_1_pct=-0.8, ret_10_pct=-0.6))
    assert v.confidence > plain.confidence


def test_a_small_fall_with_a_strong_return_z_on_a_quiet_major_is_forced_selling():
    inc = make(symbol="BTCUSDT", tripped={"RETURN": -56.0, "PRICE": -10.9}, ret_1_pct=-0.43,
               ret_10_pct=-0.44)  # fmt: skip
    check(inc, C.LIQUIDATION_CASCADE, "forced-selling")


def test_liquidation_headlines_raise_a_cascade_and_do_not_make_it_news_driven():
    liq = [("Over $250m in ETH longs liquidated in the past hour", True)]
    v = check(make(ret_1_pct=-0.35, ret_10_pct=-0.4, news=liq, tripped={"RETURN": -15.0}),
              C.LIQUIDATION_CASCADE, "forced-selling")  # fmt: skip
    assert "liquidations reported" in v.reasoning


def test_a_volume_surge_on_a_rise_the_market_did_not_share_is_a_pump():
    inc = make(
        symbol="DOTUSDT",
        tripped={"VOLUME": 11.3},
        ret_1_pct=0.05,
        ret_10_pct=0.12,
        volume_vs_window=5.1,
        market={"symbol_move_pct": 2.95, "reference_symbol": "BTCUSDT", "reference_move_pct": 0.08},
    )
    check(inc, C.MANIPULATION, "pump-in-progress")
    # the same rise with the whole market: not a pump
    with_market = make(symbol="DOTUSDT", tripped={"VOLUME": 11.3}, ret_10_pct=0.12,
                       volume_vs_window=5.1,
                       market={"symbol_move_pct": 2.95, "market_move_pct": 2.7})  # fmt: skip
    assert triage(with_market).classification is not C.MANIPULATION


def test_a_drift_trip_during_a_symbol_only_run_up_is_a_pump():
    # The drift statistic (reported as RETURN at its |z| 7.5) fires minutes into a pump's
    # run-up: the last ten ticks are bid-ask noise, no volume bucket has surged yet (2.6x),
    # but the symbol is up 4% in 15 minutes with the market flat -- the expert's pump
    # (tripwire.lab.mapping: a symbol-only run-up on one-sided buying). Before: fallback.
    market = {"symbol_move_pct": 4.0, "market_move_pct": 0.05}
    drift = make(symbol="DOTUSDT", tripped={"RETURN": 7.5}, ret_1_pct=0.02, ret_10_pct=0.2,
                 volume_vs_window=2.6, market=market)  # fmt: skip
    v = check(drift, C.MANIPULATION, "pump-in-progress")
    assert "run-up" in v.reasoning
    # a headline reporting the buying stands for it, whatever the volume
    pump = [("TRX soars on social media buzz; analysts warn of thin liquidity", True)]
    told = make(symbol="TRXUSDT", tripped={"RETURN": 7.5}, ret_10_pct=0.03,
                volume_vs_window=1.1, news=pump, market=market)  # fmt: skip
    check(told, C.MANIPULATION, "pump-in-progress")
    # not a pump: a rise at a trend's pace (1% in 15 minutes), volume at its normal, or a
    # rise the whole market shares
    for market_, vol in (({"symbol_move_pct": 1.0, "market_move_pct": 0.0}, 2.6),
                         (market, 1.2),
                         ({"symbol_move_pct": 4.0, "market_move_pct": 3.6}, 2.6)):  # fmt: skip
        inc = make(tripped={"RETURN": 7.5}, ret_10_pct=0.2, volume_vs_window=vol,
                   market=market_)  # fmt: skip
        assert triage(inc).classification in {C.TECHNICAL_SPIKE, C.IGNORE}, (market_, vol)


def test_btc_is_not_measured_against_itself():
    inc = make(symbol="BTCUSDT", tripped={"VOLUME": 10.0}, ret_10_pct=0.0, volume_vs_window=7.1,
               market={"symbol_move_pct": 0.42, "reference_symbol": "BTCUSDT", "reference_move_pct": 0.42})  # fmt: skip
    v = check(inc, C.TECHNICAL_SPIKE, "quiet-price")
    assert "barely moved" in v.reasoning


def test_a_sharp_rise_without_news_is_a_technical_spike():
    check(make(ret_1_pct=0.9, ret_10_pct=1.1), C.TECHNICAL_SPIKE, "unexplained-jump")


def test_a_trip_just_over_the_threshold_with_no_move_is_ignored():
    v = check(make(tripped={"VOLUME": 10.1}, ret_10_pct=0.03, volume_vs_window=4.0),
              C.IGNORE, "quiet-price")  # fmt: skip
    assert v.confidence == 0.65


def test_heavy_trading_without_a_move_is_a_technical_spike():
    check(make(tripped={"VOLUME": 13.0}, ret_10_pct=-0.05, volume_vs_window=8.9),
          C.TECHNICAL_SPIKE, "quiet-price")  # fmt: skip


def test_anything_else_falls_back_to_a_technical_spike():
    inc = make(tripped={"VOLUME": 10.2}, ret_10_pct=-0.3, volume_vs_window=6.0,
               market={"symbol_move_pct": -1.3})  # fmt: skip
    v = check(inc, C.TECHNICAL_SPIKE, "fallback")
    assert v.confidence == 0.4


def test_triage_is_deterministic():
    inc = make(ret_1_pct=-0.8, ret_10_pct=-1.2, down_run=4)
    assert triage(inc) == triage(Incident.model_validate_json(inc.model_dump_json()))


_PCT = st.one_of(st.none(), st.floats(-60, 60, allow_nan=False))


@given(
    r1=_PCT, prev=_PCT, r10=_PCT, gap=st.floats(0, 3600), med=st.floats(0, 100),
    vol=st.one_of(st.none(), st.floats(0, 1000)), z=st.floats(-5000, 5000, allow_nan=False),
    sym=_PCT, mkt=_PCT, runs=st.integers(0, 300),
    heads=st.lists(st.tuples(st.sampled_from([
        "BREAKING: SEC approves spot ETH ETF", "ETH exchange hack", "Fed holds rates",
        "Unconfirmed: ETH listing review", "ETH longs liquidated", "ETH soars on buzz",
    ]), st.booleans()), max_size=4),
)  # fmt: skip
def test_every_incident_gets_a_valid_verdict_and_a_small_or_no_trade(
    r1, prev, r10, gap, med, vol, z, sym, mkt, runs, heads
):
    inc = make(
        tripped={"RETURN": z, "VOLUME": 11.0},
        ret_1_pct=r1,
        ret_prev_pct=prev,
        ret_10_pct=r10,
        last_gap_s=gap,
        median_gap_s=med,
        volume_vs_window=vol,
        down_run=runs,
        news=heads,
        market={"symbol_move_pct": sym, "market_move_pct": mkt},
    )
    v = TriageVerdict.model_validate(triage(inc).model_dump())
    assert 0.05 <= v.confidence <= MAX_CONFIDENCE and v.reasoning.startswith("[rules] ")
    p = StrategistProposal.model_validate(propose(inc, v).model_dump())
    assert p.size <= RULES_MAX_SIZE and (p.action is Action.HOLD or p.stop_loss is not None)
    DoubleCheck.model_validate(double_check(inc, p).model_dump())


# ----------------------------------------------------------------------------- strategist


BAD_NEWS = [("BREAKING: Coinbase halts ETH deposits and withdrawals after security incident", True)]


def news_incident(move: float = -2.9) -> Incident:
    return make(ret_1_pct=move, ret_10_pct=move, news=BAD_NEWS, price=3400.0)


def test_the_strategist_follows_confident_clear_news_with_a_small_stopped_position():
    inc = news_incident()
    p = propose(inc, triage(inc))
    assert p.action is Action.SELL and 0 < p.size <= RULES_MAX_SIZE
    assert p.limit_price == 3400.0 * (1 - 0.0025) and p.stop_loss > 3400.0 > p.take_profit
    assert p.take_profit == pytest.approx(3400.0 - 2 * (p.stop_loss - 3400.0))
    assert p.rationale.startswith("[rules] follow-the-news") and p.source == "rules"


@pytest.mark.parametrize(
    ("verdict", "why"),
    [
        (None, "no valid triage verdict"),
        (TriageVerdict(classification=C.DATA_ERROR, confidence=0.95, reasoning="x",
                       key_factors=[], source="llm"), "DATA_ERROR"),
        (TriageVerdict(classification=C.NEWS_DRIVEN, confidence=0.6, reasoning="x",
                       key_factors=[], source="llm"), "too low"),
    ],
)  # fmt: skip
def test_the_strategist_holds_otherwise(verdict, why):
    p = propose(news_incident(), verdict)
    assert p.action is Action.HOLD and p.size == 0 and p.stop_loss is None
    assert why in p.rationale


def test_the_strategist_holds_when_headline_and_move_disagree():
    inc = news_incident(move=+2.9)
    sure = TriageVerdict(classification=C.NEWS_DRIVEN, confidence=0.9, reasoning="x",
                         key_factors=[], source="llm")  # fmt: skip
    assert propose(inc, sure).action is Action.HOLD


# ----------------------------------------------------------------------------- double-check


def proposal(**kw: Any) -> StrategistProposal:
    base = {"action": "SELL", "symbol": "ETHUSDT", "size": 0.09, "limit_price": 3400.0,
            "stop_loss": 3460.0, "take_profit": 3280.0, "rationale": "secret reasoning",
            "confidence": 0.7, "source": "llm"}  # fmt: skip
    return StrategistProposal.model_validate({**base, **kw})


def test_the_double_checker_agrees_with_a_trade_the_facts_support():
    d = double_check(news_incident(), proposal())
    assert d.verdict is CheckVerdict.AGREE and d.concerns == [] and d.confidence > 0.7


def test_the_double_checker_shrinks_a_size_above_its_cap_and_never_enlarges():
    big = double_check(news_incident(), proposal(size=0.5))
    assert big.verdict is CheckVerdict.AGREE and big.max_size == 0.25
    small = double_check(news_incident(), proposal(size=0.1))
    assert small.verdict is CheckVerdict.AGREE and small.max_size is None


def test_the_double_checker_agrees_with_any_hold():
    hold = proposal(action="HOLD", size=0, limit_price=None, stop_loss=None, take_profit=None)
    assert double_check(make(), hold).verdict is CheckVerdict.AGREE


@pytest.mark.parametrize(
    ("inc", "kw", "concern"),
    [
        (news_incident(), {"action": "BUY", "stop_loss": 3300.0, "take_profit": 3600.0},
         "BUY against the -2.90% move"),
        (news_incident(), {"symbol": "SOLUSDT"}, "proposal is for SOLUSDT"),
        (news_incident(), {"stop_loss": 3401.0}, "stop 0.0% away"),
        (news_incident(), {"limit_price": 3000.0, "stop_loss": 3060.0, "take_profit": 2900.0},
         "more than 2% from"),
        (make(ret_prev_pct=-12.0, ret_1_pct=13.5, ret_10_pct=0.1, price=3400.0),
         {"action": "BUY", "stop_loss": 3300.0, "take_profit": 3600.0}, "DATA_ERROR"),
    ],
)  # fmt: skip
def test_the_double_checker_disagrees_with_what_the_facts_do_not_support(inc, kw, concern):
    d = double_check(inc, proposal(**kw))
    assert d.verdict is CheckVerdict.DISAGREE
    assert any(concern in c for c in d.concerns), d.concerns


def test_the_double_checker_abstains_without_a_proposal_or_a_news_story():
    assert double_check(make(), None).verdict is CheckVerdict.ABSTAIN
    spike = make(ret_1_pct=-0.8, ret_10_pct=-0.6)  # a cascade: no story to back a SELL
    d = double_check(spike, proposal(limit_price=100.0, stop_loss=102.0, take_profit=97.0))
    assert d.verdict is CheckVerdict.ABSTAIN and "LIQUIDATION_CASCADE" in d.concerns[0]


# ----------------------------------------------------------------------------- the provider


def request(role: str, schema: type[BaseModel], context: dict[str, Any]) -> LLMRequest:
    return LLMRequest(role=role, system="s", messages=(Message("user", "u"),), schema=schema,
                      context=context)  # fmt: skip


def complete(req: LLMRequest, provider: RulesProvider | None = None):
    return asyncio.run((provider or RulesProvider()).complete(req, timeout_s=1.0))


def test_the_provider_answers_every_role_for_free_and_says_it_is_the_rules():
    inc = news_incident()
    ctx = inc.to_context()
    provider = RulesProvider()
    assert isinstance(provider, Provider)
    assert (provider.kind, provider.model) == ("rules", "rules-v1")
    v = complete(request("triage-analyst", TriageVerdict, ctx), provider)
    assert v.source == "rules" and v.usage.total == 0 and v.model == "rules-v1"
    assert json.loads(v.raw_text) == v.data
    verdict = TriageVerdict.model_validate(v.data)
    p = complete(request("strategist", StrategistProposal, {**ctx, "verdict": v.data}))
    proposal_ = StrategistProposal.model_validate(p.data)
    assert proposal_ == propose(inc, verdict) and proposal_.action is Action.SELL
    d = complete(request("double-checker", DoubleCheck, {**ctx, "proposal": p.data}))
    assert DoubleCheck.model_validate(d.data).verdict is CheckVerdict.AGREE
    asyncio.run(provider.aclose())


def test_the_same_request_gives_the_same_bytes():
    req = request("triage-analyst", TriageVerdict, news_incident().to_context())
    assert complete(req).raw_text == complete(req).raw_text


def test_latency_comes_from_the_injected_timer():
    ticks = iter([10.0, 10.25])
    out = complete(request("triage-analyst", TriageVerdict, make().to_context()),
                   RulesProvider(timer=lambda: next(ticks)))  # fmt: skip
    assert out.latency_ms == 250.0


def test_an_invalid_upstream_answer_makes_the_strategist_hold():
    ctx = {**news_incident().to_context(), "verdict": {"classification": "BOGUS"}}
    p = complete(request("strategist", StrategistProposal, ctx))
    assert p.data["action"] == "HOLD" and "no valid triage verdict" in p.data["rationale"]


@pytest.mark.parametrize(
    ("role", "schema", "context", "message"),
    [
        ("poet", TriageVerdict, {}, "no rules for role 'poet'"),
        ("triage-analyst", TriageVerdict, {"symbol": "X"}, "not an incident"),
        ("triage-analyst", DoubleCheck, None, "does not fit DoubleCheck"),
    ],
)
def test_what_the_rules_cannot_answer_is_a_bad_request(role, schema, context, message):
    ctx = make().to_context() if context is None else context
    with pytest.raises(ProviderError, match=message) as err:
        complete(request(role, schema, ctx))
    assert err.value.kind == "bad_request" and not err.value.retryable


# ----------------------------------------------------------------------------- the scenario

# What each labelled event should be classified as (any of), when the triage sees its
# first incident. A flash crash is forced selling or, seen in its recovery, an unexplained
# volume trip; slow trends must not trip at all.
EXPECTED = {
    EventKind.FAT_FINGER: {C.DATA_ERROR},
    EventKind.OUTAGE: {C.DATA_ERROR},
    EventKind.NEWS_SHOCK: {C.NEWS_DRIVEN},
    EventKind.LIQUIDATION_CASCADE: {C.LIQUIDATION_CASCADE},
    EventKind.PUMP_AND_DUMP: {C.MANIPULATION},
    EventKind.FLASH_CRASH: {C.LIQUIDATION_CASCADE, C.TECHNICAL_SPIKE, C.IGNORE},
    EventKind.VOLUME_BURST: {C.TECHNICAL_SPIKE, C.IGNORE},
}
COALESCE_S = 600  # a symbol's trips within 10 minutes of its last are one incident


def scenario_incidents(seed: int):
    """Run a scenario day through the engine (a real detector shard in 5-second batches,
    the market state's 15-minute context: the reference BTCUSDT, the universe's median and
    the symbol's own move, with the scenario's news); coalesce each symbol's incidents."""
    from actors.shard import DetectorShard
    from tripwire.engine import Engine, LocalDetectors, MarketState
    from tripwire.engine.step import run_inline, sub_batches
    from tripwire.feeds.scenario import Scenario, ScenarioConfig

    sc = Scenario(ScenarioConfig(seed=seed))
    market = MarketState(sc.symbols)
    market.on_news(sc.news)
    engine = Engine(market, LocalDetectors(DetectorShard(0, 1, sc.symbols, id_seed=seed)))
    latest_trip: dict[str, int] = {}
    out = []
    for chunk in sc.blocks():
        for batch in sub_batches(chunk.ticks):
            for inc in run_inline(engine.step(batch)):
                previous, latest_trip[inc.symbol] = latest_trip.get(inc.symbol), inc.ts_ns
                if previous is not None and inc.ts_ns - previous < COALESCE_S * S:
                    continue
                out.append(inc)
    return sc, out


def _label(sc, inc: Incident) -> EventKind | None:
    for lab in sc.labels:
        if lab.symbol == inc.symbol and lab.start_ns <= inc.ts_ns <= lab.end_ns + 60 * S:
            return lab.kind
    return None


@pytest.mark.slow
def test_the_rules_classify_the_scenarios_labelled_events_sensibly():
    sc, incidents = scenario_incidents(seed=7)
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    hits: dict[EventKind, list[bool]] = collections.defaultdict(list)
    for inc in incidents:
        kind, verdict = _label(sc, inc), triage(inc)
        table[kind.value if kind else "(no event)"][verdict.classification.value] += 1
        if kind is not None:
            hits[kind].append(verdict.classification in EXPECTED[kind])
        else:  # a false alarm is never a story
            assert verdict.classification in {C.TECHNICAL_SPIKE, C.IGNORE}, verdict.reasoning
    print("\nrules triage of the default scenario day (seed 7): label -> classifications")
    for label in sorted(table):
        print(f"  {label:20s} {dict(sorted(table[label].items()))}")
    share = {k: sum(v) / len(v) for k, v in hits.items()}
    # The default detectors (time-bucketed returns, trade-count volume) no longer trip on
    # the scenario's feed outages (a gap in trading; the watchdog's feed heartbeat covers
    # it) nor on its size-only volume bursts: those kinds bring no incident to classify.
    assert set(share) >= {EventKind.FAT_FINGER, EventKind.NEWS_SHOCK,
                          EventKind.LIQUIDATION_CASCADE, EventKind.PUMP_AND_DUMP}  # fmt: skip
    for kind in (EventKind.FAT_FINGER, EventKind.NEWS_SHOCK, EventKind.LIQUIDATION_CASCADE,
                 EventKind.OUTAGE):  # fmt: skip
        if kind in share:
            assert share[kind] >= 0.8, (kind, table)
    assert share[EventKind.PUMP_AND_DUMP] >= 0.6, table
    assert sum(sum(v) for v in hits.values()) / sum(len(v) for v in hits.values()) >= 0.8
