"""Exact and semantic response caches: TTL on an injected clock, bounds, thresholds."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from tripwire.llm.base import LLMRequest, LLMResponse, Message, Usage
from tripwire.llm.cache import (
    ExactCache,
    IncidentFeatures,
    ResponseCache,
    SemanticCache,
    as_cached,
    features_of,
    jaccard,
    news_tokens,
    weighted_similarity,
)
from tripwire.llm.config import CacheConfig
from tripwire.model import NS_PER_SECOND, Metric, SimClock


class Answer(BaseModel):
    text: str


class Other(BaseModel):
    text: str


def response(text: str = "a", route: str = "r") -> LLMResponse:
    return LLMResponse(value=Answer(text=text), route=route, model="m", source="s",
                       usage=Usage(100, 10), cost_usd=0.5, latency_ms=900.0, attempts=2,
                       fingerprint="fp-" + text)


def request(context: dict[str, Any] | None = None, *, role: str = "triage-analyst",
            schema: type[BaseModel] = Answer, text: str = "q") -> LLMRequest:
    return LLMRequest(role=role, system="s", messages=(Message("user", text),), schema=schema,
                      context=context or {})


SOL = {"symbol": "SOLUSDT", "metric": "RETURN", "z": -12.0,
       "news": ["Solana network halts block production"]}


# ----------------------------------------------------------------------------- exact


def test_exact_cache_ttl_is_strict():
    clock = SimClock()
    c = ExactCache(ttl_s=10, capacity=4, clock=clock)
    c.put("k", response())
    clock.advance(10 * NS_PER_SECOND - 1)
    assert c.get("k") is not None
    clock.advance(1)
    assert c.get("k") is None and len(c) == 0


def test_exact_cache_is_a_bounded_lru():
    c = ExactCache(ttl_s=10, capacity=2, clock=SimClock())
    c.put("a", response("a"))
    c.put("b", response("b"))
    assert c.get("a") is not None  # a is now the most recent
    c.put("c", response("c"))
    assert c.get("b") is None and c.get("a") is not None and c.get("c") is not None
    assert len(c) == 2


def test_cached_form_costs_nothing_and_keeps_its_origin():
    hit = as_cached(response())
    assert hit.cached and (hit.cost_usd, hit.latency_ms, hit.attempts) == (0.0, 0.0, 0)
    assert hit.usage == Usage() and hit.route == "r" and hit.fingerprint == "fp-a"


# ----------------------------------------------------------------------------- features


def test_features_read_plain_contexts_enums_and_nested_incidents():
    f = features_of(SOL)
    assert f is not None and (f.symbol, f.metric, f.z_bucket) == ("SOLUSDT", "return", -3)
    assert f.news == frozenset({"solana", "network", "halts", "block", "production"})
    g = features_of({"incident": {**SOL, "metric": Metric.RETURN,
                                  "news": [{"headline": "Solana network halts"}]}})
    assert g is not None and g.metric == "return" and g.text == "Solana network halts"
    assert features_of({"symbol": "X", "trip_metric": "VOLUME", "z": 9}).metric == "volume"


def test_features_prefer_the_incidents_precomputed_ones():
    ctx = {**SOL, "features": {"symbol": "SOLUSDT", "metric": "RETURN", "z_bucket": -3,
                               "news_fingerprint": "ab", "news_tokens": ["solana", "halts"]}}
    f = features_of(ctx)
    assert f is not None and f.news == frozenset({"solana", "halts"}) and f.z_bucket == -3


@pytest.mark.parametrize("ctx", [{}, {"symbol": "X", "metric": "RETURN"},
                                 {"symbol": "X", "metric": "RETURN", "z": True},
                                 {"symbol": "X", "metric": "RETURN", "z": float("nan")},
                                 {"metric": "RETURN", "z": 3.0}])
def test_contexts_without_an_incident_have_no_features(ctx):
    assert features_of(ctx) is None


def test_news_tokens_and_jaccard():
    assert news_tokens(["The SEC approves the ETF", "ETF: 2 of 10"]) == frozenset(
        {"sec", "approves", "etf", "2", "10"})
    assert jaccard(frozenset({"a", "b"}), frozenset({"a", "b"})) == 1.0
    assert jaccard(frozenset({"a"}), frozenset()) == 0.0


def test_weighted_similarity_weighs_each_feature():
    sim = weighted_similarity(0.3, 0.3, 0.4)
    a = IncidentFeatures("S", "return", 3, frozenset({"x", "y"}))
    assert sim(a, a) == pytest.approx(1.0)
    assert sim(a, IncidentFeatures("S", "volume", 3, a.news)) == pytest.approx(0.7)
    assert sim(a, IncidentFeatures("S", "return", 4, a.news)) == pytest.approx(0.7)
    assert sim(a, IncidentFeatures("S", "return", 3, frozenset({"x"}))) == pytest.approx(0.8)


# ----------------------------------------------------------------------------- semantic


def semantic(clock: SimClock, **kw: Any) -> SemanticCache:
    return SemanticCache(**{"ttl_s": 300, "threshold": 0.85, "clock": clock, **kw})


def test_semantic_hit_above_threshold_miss_below():
    c = semantic(SimClock())
    assert c.put(request(SOL), response("sol"))
    near = {**SOL, "z": -15.0, "news": ["Solana network halts block production again"]}
    assert c.get(request(near)).value.text == "sol"  # same bucket, Jaccard 5/6
    far_news = {**SOL, "news": ["Solana foundation announces grants"]}
    assert c.get(request(far_news)) is None
    other_bucket = {**SOL, "z": -40.0}
    assert c.get(request(other_bucket)) is None
    pump = {**SOL, "z": 12.0}
    assert c.get(request(pump)) is None


def test_semantic_threshold_is_configurable():
    loose = semantic(SimClock(), threshold=0.6)
    loose.put(request(SOL), response("sol"))
    assert loose.get(request({**SOL, "z": -40.0})) is not None  # 0.7 >= 0.6


def test_semantic_never_crosses_symbol_role_or_schema():
    c = semantic(SimClock())
    c.put(request(SOL), response())
    assert c.get(request({**SOL, "symbol": "ETHUSDT"})) is None
    assert c.get(request(SOL, role="strategist")) is None
    assert c.get(request(SOL, schema=Other)) is None
    assert c.get(request(SOL)) is not None


def test_semantic_ttl_expires_entries():
    clock = SimClock()
    c = semantic(clock, ttl_s=60)
    c.put(request(SOL), response())
    clock.advance(60 * NS_PER_SECOND - 1)
    assert c.get(request(SOL)) is not None
    clock.advance(1)
    assert c.get(request(SOL)) is None and len(c) == 0


def test_semantic_picks_the_best_match_and_prefers_the_newest_on_ties():
    clock = SimClock()
    c = semantic(clock, threshold=0.5)
    c.put(request({**SOL, "news": ["Solana network halts"]}), response("partial"))
    clock.advance(1)
    c.put(request(SOL), response("exact-old"))
    clock.advance(1)
    c.put(request(SOL), response("exact-new"))
    assert c.get(request(SOL)).value.text == "exact-new"


def test_semantic_cache_is_bounded_per_symbol_and_overall():
    c = semantic(SimClock(), capacity=5, per_symbol=2)
    for i in range(3):
        c.put(request({**SOL, "news": [f"item {i} alpha"]}), response(f"s{i}"))
    assert len(c) == 2
    for sym in ("AUSDT", "BUSDT", "CUSDT", "DUSDT"):
        c.put(request({**SOL, "symbol": sym}), response(sym))
    assert len(c) == 5
    # s0 fell to the per-symbol bound, then s1 (the oldest) to the overall one.
    assert c.get(request({**SOL, "news": ["item 1 alpha"]})) is None
    assert c.get(request({**SOL, "news": ["item 2 alpha"]})).value.text == "s2"
    assert c.get(request({**SOL, "symbol": "DUSDT"})).value.text == "DUSDT"


def test_semantic_ignores_requests_without_an_incident():
    c = semantic(SimClock())
    assert not c.put(request(), response())
    assert c.get(request()) is None


def test_pluggable_similarity_sees_the_headline_text():
    seen: list[tuple[str, str]] = []

    def embedding_like(a: IncidentFeatures, b: IncidentFeatures) -> float:
        seen.append((a.text, b.text))
        return 1.0 if a.symbol == b.symbol else 0.0

    c = semantic(SimClock(), similarity=embedding_like)
    c.put(request(SOL), response())
    assert c.get(request({**SOL, "z": 99.0, "news": ["unrelated"]})) is not None
    assert seen == [("unrelated", "Solana network halts block production")]


# ----------------------------------------------------------------------------- combined


def test_response_cache_tries_exact_then_semantic_and_counts():
    clock = SimClock()
    cache = ResponseCache.from_config(CacheConfig(), clock)
    req = request(SOL, text="first")
    assert cache.lookup(req, "fp1") is None
    cache.store(req, "fp1", response("x"))
    hit, kind = cache.lookup(req, "fp1")
    assert kind == "exact" and hit.cached
    hit, kind = cache.lookup(request(SOL, text="second"), "fp2")
    assert kind == "semantic"
    assert cache.hits == {"exact": 1, "semantic": 1} and cache.misses == 1


def test_cache_config_switches():
    assert ResponseCache.from_config(CacheConfig(enabled=False)) is None
    only_exact = ResponseCache.from_config(CacheConfig(semantic=False))
    assert only_exact is not None and only_exact.semantic is None


def test_bad_cache_settings_are_refused():
    with pytest.raises(ValueError):
        ExactCache(ttl_s=0, capacity=1)
    with pytest.raises(ValueError):
        SemanticCache(ttl_s=1, threshold=1.5)
