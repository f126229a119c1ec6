"""The incident model: what a trip looks like to the LLM roles, built from an Anomaly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from tripwire.incident import (
    Incident,
    MarketContext,
    base_asset,
    iso_utc,
    near_news,
    news_fingerprint,
    news_tokens,
    z_bucket,
)
from tripwire.llm.incident import INCIDENT_VARS, prompt_vars
from tripwire.model import Anomaly, Metric, NewsItem, RecentTicks

S = 1_000_000_000
T0 = 1_767_571_200 * S  # 2026-01-05T00:00:00Z


def anomaly(
    prices,
    *,
    symbol="ARBUSDT",
    metric=Metric.RETURN,
    z=-616.2,
    value=None,
    gaps_s=None,
    qty=None,
    window=None,
    window_mean=0.0,
    window_std=3e-4,
) -> Anomaly:
    """An anomaly on the last of ``prices`` (one trade a second unless ``gaps_s``)."""
    prices = np.asarray(prices, dtype=np.float64)
    n = len(prices)
    gaps = np.ones(n - 1) if gaps_s is None else np.asarray(gaps_s, dtype=np.float64)
    ts = T0 + np.concatenate([[0], np.cumsum(np.round(gaps * S))]).astype(np.int64)
    qty = np.ones(n) if qty is None else np.asarray(qty, dtype=np.float64)
    if value is None:
        value = math.log(prices[-1] / prices[-2]) if n > 1 else 0.0
    return Anomaly(
        symbol_id=0, symbol=symbol, ts_ns=int(ts[-1]), metric=metric, z=z,
        window_mean=window_mean, window_std=window_std, value=value, price=float(prices[-1]),
        id="0190d6c5-0000-7000-8000-000000000000", snapshot=RecentTicks(ts, prices, qty),
        window=window,
    )  # fmt: skip


def news(at_ns: int, headline: str, symbols=(), id_="n") -> NewsItem:
    return NewsItem(id_, at_ns, headline, tuple(symbols), "wire")


# ----------------------------------------------------------------------------- recent move


def test_recent_move_summarises_the_snapshot():
    prices = [100.0] * 40 + [100.0 + i * 0.1 for i in range(1, 11)] + [99.0]
    a = anomaly(prices)
    r = Incident.from_anomaly(a).recent
    assert r.ticks == 51 and r.span_s == 50.0
    assert r.ret_1_pct == pytest.approx((99.0 / 101.0 - 1) * 100, abs=1e-4)
    assert r.ret_prev_pct == pytest.approx((101.0 / 100.9 - 1) * 100, abs=1e-4)
    assert r.ret_10_pct == pytest.approx((99.0 / 100.1 - 1) * 100, abs=1e-4)
    assert r.ret_50_pct == r.ret_all_pct == pytest.approx(-1.0, abs=1e-4)
    assert (r.down_run, r.up_run) == (1, 0)
    assert r.last_gap_s == 1.0 and r.median_gap_s == 1.0


def test_runs_count_consecutive_moves_and_repeated_prints_neither_break_nor_extend_them():
    r = Incident.from_anomaly(anomaly([100, 101, 100, 99, 99, 98, 97])).recent
    assert (r.down_run, r.up_run) == (4, 0)
    r = Incident.from_anomaly(anomaly([100, 99, 100, 101])).recent
    assert (r.down_run, r.up_run) == (0, 2)


def test_a_feed_gap_shows_in_last_and_median_gap():
    r = Incident.from_anomaly(anomaly([1.0, 1.0, 1.0, 1.02], gaps_s=[2, 2, 300])).recent
    assert r.last_gap_s == 300.0 and r.median_gap_s == 2.0


def test_volume_ratio_is_exact_when_the_volume_metric_tripped():
    a = anomaly([1.0, 1.0], metric=Metric.VOLUME, z=12.0, value=600.0, window_mean=50.0)
    assert Incident.from_anomaly(a).recent.volume_vs_window == 12.0


def test_volume_ratio_otherwise_sums_the_last_bucket_of_the_snapshot():
    qty = [1.0] * 60 + [5.0] * 10
    a = anomaly([1.0] * 70, qty=qty, window={"volume": {"mean": 20.0}})
    # the last 30 s hold 30 trades: 20 of size 1 and 10 of size 5 -> 70 / 20
    assert Incident.from_anomaly(a).recent.volume_vs_window == 3.5


@pytest.mark.parametrize("statistic, want", [("log_count", 1.0), ("log_active", 70 / 30)])
def test_volume_ratio_compares_like_with_like_for_the_log_statistics(statistic, want):
    """The default detectors' volume window holds log(trades per bucket): its mean is a
    log. Dividing quantity by it read a fat finger on a usual rate as a 1,286x volume
    surge, and the rules analyst called it forced selling (issue 16's detectors)."""
    qty = [1.0] * 60 + [5.0] * 10  # the last 30 s: 30 trades, quantity 70
    a = anomaly([1.0] * 70, qty=qty, window={"volume": {"mean": math.log(30.0),
                                                        "statistic": statistic}})
    assert Incident.from_anomaly(a).recent.volume_vs_window == pytest.approx(want, abs=1e-3)


def test_unknown_volume_window_gives_no_ratio():
    a = anomaly([1.0, 1.0], window={"volume": {"mean": float("nan")}})
    assert Incident.from_anomaly(a).recent.volume_vs_window is None


def test_a_snapshot_cut_to_the_tripping_tick_takes_its_move_from_the_return_trip():
    a = anomaly([97.0], value=math.log(0.97))
    r = Incident.from_anomaly(a).recent
    assert r.ticks == 1 and r.ret_1_pct == pytest.approx(-3.0) and r.ret_10_pct is None


def test_no_snapshot_means_no_recent_figures():
    a = anomaly([100.0, 99.0])
    bare = Anomaly(**{**{f: getattr(a, f) for f in a.__slots__}, "snapshot": None})
    r = Incident.from_anomaly(bare).recent
    assert r.ticks == 0 and r.ret_10_pct is None and r.last_gap_s is None
    assert r.ret_1_pct == pytest.approx(-1.0)  # still known from the RETURN trip's value


# ----------------------------------------------------------------------------- the incident


def test_fields_come_from_the_anomaly():
    inc = Incident.from_anomaly(anomaly([100.0, 80.0]))
    assert (inc.symbol, inc.metric, inc.z, inc.price) == ("ARBUSDT", "RETURN", -616.2, 80.0)
    assert inc.tripped == {"RETURN": -616.2}
    assert inc.ts_iso == "2026-01-05T00:00:01.000Z"
    assert inc.id == "0190d6c5-0000-7000-8000-000000000000"


def test_other_metrics_of_the_same_tick_fold_into_tripped():
    a = anomaly([100.0, 80.0])
    b = anomaly([100.0, 80.0], metric=Metric.PRICE, z=-104.0)
    inc = Incident.from_anomaly(a, others=[b])
    assert inc.tripped == {"RETURN": -616.2, "PRICE": -104.0}
    assert Incident.from_anomalies([b, a]).metric == "RETURN"  # the largest |z| leads


def test_other_metrics_must_be_the_same_tick():
    a = anomaly([100.0, 80.0])
    other = anomaly([100.0, 80.0, 81.0], metric=Metric.PRICE)
    with pytest.raises(ValueError, match="others must be trips of ARBUSDT"):
        Incident.from_anomaly(a, others=[other])


def test_an_anomaly_without_a_symbol_name_is_refused():
    a = anomaly([100.0, 80.0])
    nameless = Anomaly(**{**{f: getattr(a, f) for f in a.__slots__}, "symbol": None})
    with pytest.raises(ValueError, match="no symbol name"):
        Incident.from_anomaly(nameless)
    with pytest.raises(ValueError, match="at least one"):
        Incident.from_anomalies([])


def test_nan_window_stats_become_none_and_the_incident_is_strict():
    inc = Incident.from_anomaly(anomaly([1.0, 2.0], window_mean=float("nan")))
    assert inc.window_mean is None
    with pytest.raises(ValidationError, match="Extra inputs"):
        Incident.model_validate({**inc.model_dump(), "mood": "calm"})
    with pytest.raises(ValidationError, match="finite"):
        Incident.model_validate({**inc.model_dump(), "z": float("inf")})


def test_market_context_from_a_mapping_and_validated():
    inc = Incident.from_anomaly(anomaly([1.0, 2.0]), market={"reference_move_pct": -1.5})
    assert inc.market == MarketContext(reference_move_pct=-1.5)
    with pytest.raises(ValidationError, match="horizon_s"):
        Incident.from_anomaly(anomaly([1.0, 2.0]), market={"horizon_s": 0})
    with pytest.raises(ValidationError, match="Extra inputs"):
        Incident.from_anomaly(anomaly([1.0, 2.0]), market={"eth_move_pct": 1.0})


# ----------------------------------------------------------------------------- news


def test_news_in_the_window_before_the_trip_only():
    a = anomaly([100.0, 80.0])  # trips at T0 + 1 s
    items = [
        news(T0 + 1 * S, "ARB exploit confirmed", ("ARBUSDT",), "same-instant"),
        news(T0 + 2 * S, "ARB team: funds safe", ("ARBUSDT",), "after"),
        news(T0 + 1 * S - 900 * S, "ARB upgrade", ("ARBUSDT",), "edge"),
        news(T0 + 1 * S - 901 * S, "ARB old news", ("ARBUSDT",), "too-old"),
    ]
    got = [h.id for h in Incident.from_anomaly(a, items).news]
    assert got == ["same-instant", "edge"]


def test_news_about_the_symbol_first_then_market_wide_and_never_other_symbols():
    a = anomaly([100.0, 80.0])
    t = a.ts_ns
    items = [
        news(t - 10 * S, "Fed holds rates", (), "macro"),
        news(t - 20 * S, "BREAKING: Binance halts ARB deposits", (), "named-in-text"),
        news(t - 5 * S, "SOL network stalls", ("SOLUSDT",), "other"),
        news(t - 30 * S, "Exchange lists ARBUSDT perps", ("ARBUSDT",), "tagged"),
        news(t - 1 * S, "BARBELL strategy explained", (), "substring-only"),
    ]
    heads = Incident.from_anomaly(a, items).news
    assert [h.id for h in heads] == ["named-in-text", "tagged", "substring-only", "macro"]
    assert [h.about_symbol for h in heads] == [True, True, False, False]
    assert heads[0].age_s == 20.0


def test_news_is_capped_most_recent_first():
    items = [news(T0 - i * S, f"ARB item {i}", ("ARBUSDT",), f"n{i}") for i in range(20)]
    got = near_news("ARBUSDT", T0, items, max_items=3)
    assert [h.id for h in got] == ["n0", "n1", "n2"]


def test_long_headlines_are_cut():
    item = news(T0, "ARB " + "x" * 1000, ("ARBUSDT",))
    (h,) = near_news("ARBUSDT", T0, [item])
    assert len(h.headline) == 300


# ----------------------------------------------------------------------------- features


def test_features_for_the_semantic_cache():
    a = anomaly([100.0, 80.0])
    items = [news(a.ts_ns - S, "BREAKING: SEC approves spot ARB ETF", ("ARBUSDT",))]
    f = Incident.from_anomaly(a, items).features()
    assert f["symbol"] == "ARBUSDT" and f["metric"] == "RETURN" and f["z_bucket"] == -9
    assert f["news_tokens"] == ["approves", "arb", "breaking", "etf", "sec", "spot"]
    assert len(f["news_fingerprint"]) == 16
    assert Incident.from_anomaly(a).features()["news_fingerprint"] == ""


def test_the_news_fingerprint_ignores_order_case_and_repeats():
    one = news_tokens(["SEC approves ETF", "Spot ETF"])
    two = news_tokens(["spot etf", "sec APPROVES etf"])
    assert news_fingerprint(one) == news_fingerprint(two) != news_fingerprint(["other"])


@pytest.mark.parametrize(
    ("z", "bucket"), [(0.0, 0), (0.99, 0), (1.0, 0), (2.0, 1), (-7.9, -2), (8.0, 3), (1e4, 13)]
)
def test_z_bucket(z, bucket):
    assert z_bucket(z) == bucket
    assert z_bucket(float("nan")) == 0


def test_context_round_trip_and_json():
    a = anomaly([100.0, 80.0])
    inc = Incident.from_anomaly(a, [news(a.ts_ns, "ARB halts", ("ARBUSDT",))], {"reference_move_pct": 1})
    ctx = inc.to_context()
    assert json.loads(json.dumps(ctx)) == ctx  # plain JSON, no NaN
    assert ctx["features"] == inc.features()
    extra = {**ctx, "verdict": {"classification": "IGNORE"}, "proposal": {}}
    assert Incident.from_context(extra) == inc


# ----------------------------------------------------------------------------- text


def test_prompt_vars_cover_every_name_and_say_n_a_when_unknown():
    inc = Incident.from_anomaly(anomaly([97.0], value=math.log(0.97)))
    text = prompt_vars(inc)
    assert set(text) == INCIDENT_VARS
    assert text["ret_10"] == "n/a" and text["reference_move"] == "n/a" and text["ret_1"] == "-3.000%"
    assert "no headline about ARBUSDT" in text["news"] and "15 min" in text["news"]
    assert '"id"' not in text["incident_json"]  # ids differ per run; prompts must not


def test_helpers():
    assert base_asset("BTCUSDT") == "BTC" and base_asset("1000PEPEUSDT") == "PEPE"
    assert base_asset("USDT") == "USDT"
    assert iso_utc(T0 + 1_234_567_890) == "2026-01-05T00:00:01.234Z"
