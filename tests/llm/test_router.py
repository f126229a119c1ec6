"""Router: failover order, retries and backoff, repair, budgets, pacing, cache, spans, ledger.

Providers here are scripted in-test fakes (a queue of results and errors, recording every
request); the clock is simulated and ``sleep`` is instant but records each delay asked for
and moves the clock, so nothing waits and every figure is exact.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import BaseModel, Field

from tripwire.llm import telemetry
from tripwire.llm.base import (
    AllRoutesFailed,
    BudgetExceeded,
    LLMRequest,
    Message,
    ProviderError,
    ProviderResult,
    Usage,
)
from tripwire.llm.cache import ExactCache, ResponseCache, SemanticCache
from tripwire.llm.config import BudgetConfig, Price, RoutePolicy, load_llm_config
from tripwire.llm.ledger import InMemoryLedger
from tripwire.llm.limits import Budget, ConcurrencyLimit, TokenBucket, estimate_tokens
from tripwire.llm.router import Route, Router, build_router, repair_request
from tripwire.model import NS_PER_SECOND, SimClock

DAY0 = 1_767_571_200 * NS_PER_SECOND  # 2026-01-05 00:00:00 UTC


class Verdict(BaseModel):
    classification: Literal["TECHNICAL_SPIKE", "NEWS_DRIVEN", "IGNORE"]
    confidence: float = Field(ge=0, le=1)
    reasoning: str


GOOD = {"classification": "NEWS_DRIVEN", "confidence": 0.8, "reasoning": "headline"}


def result(data: Any = None, *, tokens: tuple[int, int] = (100, 20), model: str = "m",
           raw: str | None = None) -> ProviderResult:
    data = GOOD if data is None else data
    return ProviderResult(data=data, raw_text=raw if raw is not None else str(data),
                          usage=Usage(*tokens), model=model, latency_ms=1.0, source="scripted")


Step = ProviderResult | BaseException | Callable[[LLMRequest], Awaitable[ProviderResult]]


class Scripted:
    """A provider that plays a script: results are returned, exceptions raised, coroutine
    functions awaited. Past the end of the script it answers GOOD."""

    kind = "scripted"

    def __init__(self, *script: Step, model: str = "m") -> None:
        self.model = model
        self.script: deque[Step] = deque(script)
        self.requests: list[LLMRequest] = []
        self.timeouts: list[float] = []
        self.closed = 0

    async def complete(self, request: LLMRequest, *, timeout_s: float) -> ProviderResult:
        self.requests.append(request)
        self.timeouts.append(timeout_s)
        step = self.script.popleft() if self.script else result(model=self.model)
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return await step(request)
        return step

    async def aclose(self) -> None:
        self.closed += 1

    @property
    def calls(self) -> int:
        return len(self.requests)


class Sleeper:
    """Instant sleep that records delays and advances the simulated clock."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(round(seconds * NS_PER_SECOND))


class MaxJitter(random.Random):
    """Full jitter that always draws its ceiling, to check the capped exponential."""

    def uniform(self, a: float, b: float) -> float:
        return b


def request(text: str = "BTC fell 8% in a minute", *, max_tokens: int = 200,
            context: dict[str, Any] | None = None, role: str = "triage-analyst") -> LLMRequest:
    return LLMRequest(role=role, system="You triage trips.",
                      messages=(Message("user", text),), schema=Verdict,
                      max_tokens=max_tokens, context=context or {})


def policy(**kw: Any) -> RoutePolicy:
    base: dict[str, Any] = {"retries": 2, "backoff_base_s": 0.5, "backoff_cap_s": 4.0,
                            "rate_per_s": float("inf"), "timeout_s": 5.0,
                            "price": Price(input=3.0, output=15.0)}
    return RoutePolicy(**{**base, **kw})


def make(*routes: tuple[str, Scripted, RoutePolicy] | tuple[str, Scripted], clock=None,
         budget: BudgetConfig | None = None, cache: ResponseCache | None = None,
         rng: random.Random | None = None, tracer=None):
    clock = clock or SimClock(DAY0)
    sleeper = Sleeper(clock)
    ledger = InMemoryLedger()
    built = [Route(r[0], r[1], r[2] if len(r) > 2 else policy()) for r in routes]
    router = Router(built, ledger=ledger, cache=cache, clock=clock, sleep=sleeper,
                    budget=Budget(budget, clock) if budget is not None else None,
                    rng=rng or random.Random(7), tracer=tracer)
    return router, ledger, sleeper, clock


def run(coro):
    return asyncio.run(coro)


def outcomes(ledger: InMemoryLedger) -> list[tuple[str, str]]:
    return [(r.route, r.outcome) for r in ledger.records]


# ----------------------------------------------------------------------------- the happy path


def test_first_route_answers_validated_with_cost_and_one_ledger_row():
    a, b = Scripted(result(tokens=(1000, 200))), Scripted()
    router, ledger, _, _ = make(("a", a), ("b", b))
    resp = run(router.call(request()))
    assert isinstance(resp.value, Verdict) and resp.value.classification == "NEWS_DRIVEN"
    assert (resp.route, resp.source, resp.cached, resp.attempts) == ("a", "scripted", False, 1)
    assert resp.usage == Usage(1000, 200)
    assert resp.cost_usd == pytest.approx(1000 * 3e-6 + 200 * 15e-6)
    assert resp.fingerprint == request().fingerprint()
    assert b.calls == 0 and a.timeouts == [5.0]
    (row,) = ledger.records
    assert (row.route, row.outcome, row.attempt, row.cached) == ("a", "ok", 1, False)
    assert (row.input_tokens, row.output_tokens, row.role) == (1000, 200, "triage-analyst")
    assert row.cost_usd == pytest.approx(resp.cost_usd) and row.fingerprint == resp.fingerprint
    assert row.ts_ns == DAY0


def test_routes_tried_in_order_and_all_failures_named():
    a = Scripted(ProviderError("auth", "HTTP 401 invalid key", status=401))
    b = Scripted(ProviderError("bad_request", "HTTP 400", status=400))
    c = Scripted()
    router, ledger, sleeper, _ = make(("a", a), ("b", b), ("c", c))
    assert run(router.call(request())).route == "c"
    assert outcomes(ledger) == [("a", "failed:auth"), ("b", "failed:bad_request"), ("c", "ok")]
    assert (a.calls, b.calls, sleeper.delays) == (1, 1, [])  # never a retry on 4xx


def test_all_routes_failed_is_typed_and_says_why_for_each_route():
    a = Scripted(ProviderError("auth", "HTTP 401", status=401))
    b = Scripted(*[ProviderError("server", "HTTP 503", status=503)] * 3)
    router, _, _, _ = make(("a", a), ("b", b))
    with pytest.raises(AllRoutesFailed) as info:
        run(router.call(request()))
    assert [r for r, _ in info.value.failures] == ["a", "b"]
    assert "auth: HTTP 401 (not retryable)" in info.value.failures[0][1]
    assert "server: HTTP 503 (after 2 retries)" in info.value.failures[1][1]
    assert info.value.role == "triage-analyst"
    assert router.stats["failed"] == 1


def test_unexpected_provider_exception_becomes_a_server_failure_not_a_leak():
    a = Scripted(RuntimeError("socket exploded"))
    router, ledger, _, _ = make(("a", a, policy(retries=0)), ("b", Scripted()))
    assert run(router.call(request())).route == "b"
    assert ledger.records[0].outcome == "failed:server"
    assert "RuntimeError" in ledger.records[0].detail


# ----------------------------------------------------------------------------- retries


@pytest.mark.parametrize("kind,status", [("overloaded", 529), ("server", 500),
                                         ("rate_limited", 429), ("timeout", None)])
def test_retryable_errors_retry_with_capped_exponential_backoff(kind, status):
    errors = [ProviderError(kind, "busy", status=status) for _ in range(4)]
    a = Scripted(*errors)
    cfg = policy(retries=4, backoff_base_s=0.5, backoff_cap_s=2.0)
    router, ledger, sleeper, _ = make(("a", a, cfg), rng=MaxJitter())
    resp = run(router.call(request()))
    assert a.calls == 5 and resp.attempts == 5
    assert sleeper.delays == [0.5, 1.0, 2.0, 2.0]  # base * 2**n, capped at 2.0
    assert [r.outcome for r in ledger.records] == ["retry"] * 4 + ["ok"]
    assert [r.attempt for r in ledger.records] == [1, 2, 3, 4, 5]


def test_backoff_is_fully_jittered_below_the_cap():
    a = Scripted(*[ProviderError("overloaded", "529", status=529) for _ in range(6)])
    cfg = policy(retries=6, backoff_base_s=1.0, backoff_cap_s=3.0, failure_threshold=10)
    router, _, sleeper, _ = make(("a", a, cfg), rng=random.Random(1))
    run(router.call(request()))
    ceilings = [1.0, 2.0, 3.0, 3.0, 3.0, 3.0]
    assert all(0 <= d <= c for d, c in zip(sleeper.delays, ceilings, strict=True))
    assert len(set(sleeper.delays)) == 6  # jittered, not a fixed ladder


def test_retry_after_is_honoured_as_a_minimum_wait():
    a = Scripted(ProviderError("rate_limited", "429", status=429, retry_after_s=7.0))
    router, _, sleeper, _ = make(("a", a, policy(backoff_cap_s=1.0)))
    run(router.call(request()))
    assert sleeper.delays == [7.0]


def test_retry_after_longer_than_allowed_fails_over_instead_of_waiting():
    a = Scripted(ProviderError("rate_limited", "429", status=429, retry_after_s=120.0))
    router, ledger, sleeper, _ = make(("a", a, policy(max_retry_after_s=30)), ("b", Scripted()))
    resp = run(router.call(request()))
    assert resp.route == "b" and sleeper.delays == [] and a.calls == 1
    assert outcomes(ledger)[0] == ("a", "failed:rate_limited")
    assert "Retry-After 120s > 30s: failing over" in ledger.records[0].detail


def test_retries_exhausted_then_next_route():
    a = Scripted(*[ProviderError("overloaded", "529", status=529)] * 3)
    router, ledger, sleeper, _ = make(("a", a, policy(retries=2)), ("b", Scripted()))
    resp = run(router.call(request()))
    assert resp.route == "b" and a.calls == 3 and len(sleeper.delays) == 2
    assert outcomes(ledger) == [("a", "retry"), ("a", "retry"), ("a", "failed:overloaded"),
                                ("b", "ok")]
    assert resp.attempts == 4


@pytest.mark.timeout(60)
def test_slow_provider_is_cut_at_the_route_timeout():
    async def slow(_req: LLMRequest) -> ProviderResult:
        await asyncio.sleep(30)
        return result()

    a = Scripted(slow, slow)
    router, ledger, _, _ = make(("a", a, policy(timeout_s=0.05, retries=1)), ("b", Scripted()))
    resp = run(router.call(request()))
    assert resp.route == "b"
    assert outcomes(ledger)[:2] == [("a", "retry"), ("a", "failed:timeout")]
    assert "no answer within 0.05s" in ledger.records[0].detail


# ----------------------------------------------------------------------------- validation


def test_invalid_answer_gets_one_repair_on_the_same_route():
    bad = {"classification": "BULLISH", "confidence": 0.8, "reasoning": "x"}
    a = Scripted(result(bad, raw='{"classification": "BULLISH"}'), result(tokens=(50, 10)))
    router, ledger, sleeper, _ = make(("a", a), ("b", Scripted()))
    resp = run(router.call(request()))
    assert resp.route == "a" and a.calls == 2 and sleeper.delays == []
    assert outcomes(ledger) == [("a", "invalid"), ("a", "repaired")]
    assert resp.usage == Usage(150, 30)  # both calls were paid for
    repair = a.requests[1]
    assert [m.role for m in repair.messages] == ["user", "assistant", "user"]
    assert repair.messages[1].content == '{"classification": "BULLISH"}'
    assert "classification" in repair.messages[2].content
    assert "only one JSON object" in repair.messages[2].content
    assert repair.schema is Verdict and repair.role == "triage-analyst"


def test_malformed_error_is_repaired_too():
    a = Scripted(ProviderError("malformed", "not JSON", raw_text="Sure! Here it is: {"),
                 result())
    router, ledger, _, _ = make(("a", a))
    assert run(router.call(request())).route == "a"
    assert outcomes(ledger) == [("a", "invalid"), ("a", "repaired")]
    assert "Sure! Here it is" in a.requests[1].messages[1].content


def test_second_invalid_answer_fails_the_route_once():
    bad = result({"classification": "NEWS_DRIVEN", "confidence": 7, "reasoning": "x"})
    a = Scripted(bad, bad, bad)
    router, ledger, _, _ = make(("a", a), ("b", Scripted()))
    resp = run(router.call(request()))
    assert resp.route == "b" and a.calls == 2  # one repair, never a third try
    assert outcomes(ledger) == [("a", "invalid"), ("a", "invalid"), ("b", "ok")]
    assert router.breaker("a").consecutive_failures == 1


def test_nothing_unvalidated_leaves_the_router():
    bad = result({"classification": "NEWS_DRIVEN"})
    router, _, _, _ = make(("a", Scripted(bad, bad)))
    with pytest.raises(AllRoutesFailed, match="invalid answer after one repair"):
        run(router.call(request()))


def test_repair_request_keeps_turns_alternating():
    req = LLMRequest("r", "s", (Message("user", "q"), Message("assistant", "{")), Verdict)
    fixed = repair_request(req, "", "x: bad")
    assert [m.role for m in fixed.messages] == ["user", "assistant", "user"]
    assert "(empty answer)" in fixed.messages[-1].content
    long = repair_request(request(), "y" * 10_000, "e")
    assert len(long.messages[1].content) == 2000


# ----------------------------------------------------------------------------- budgets


def test_per_call_token_budget_refuses_before_sending():
    a = Scripted()
    cfg = BudgetConfig(per_call_tokens=500, per_call_usd=None, per_day_tokens=None,
                       per_day_usd=None)
    router, ledger, _, _ = make(("a", a), budget=cfg)
    with pytest.raises(BudgetExceeded, match="per-call token budget"):
        run(router.call(request(max_tokens=1000)))
    assert a.calls == 0
    assert outcomes(ledger) == [("a", "budget")]


def test_budget_refusal_falls_back_to_an_unmetered_route():
    paid, free = Scripted(), Scripted()
    cfg = BudgetConfig(per_call_tokens=100, per_call_usd=None, per_day_tokens=None,
                       per_day_usd=None)
    router, ledger, _, _ = make(("paid", paid), ("rules", free, policy(metered=False)),
                                budget=cfg)
    assert run(router.call(request(max_tokens=1000))).route == "rules"
    assert outcomes(ledger) == [("paid", "budget"), ("rules", "ok")]


def test_per_call_budget_counts_every_attempt_of_the_call():
    # Each attempt is estimated at 10 + 200 tokens and really uses 120: the repair would
    # bring the call to 120 + 210 > 300.
    a = Scripted(result({"bad": 1}), result({"bad": 1}))
    cfg = BudgetConfig(per_call_tokens=300, per_call_usd=None, per_day_tokens=None,
                       per_day_usd=None)
    router, ledger, _, _ = make(("a", a), budget=cfg)
    with pytest.raises(BudgetExceeded):
        run(router.call(request(max_tokens=200)))
    assert a.calls == 1  # the repair would have crossed the per-call ceiling
    assert outcomes(ledger) == [("a", "invalid"), ("a", "budget")]


def test_per_day_usd_budget_refuses_then_rolls_over_at_utc_midnight():
    a = Scripted(*[result(tokens=(1000, 1000)) for _ in range(4)])
    # each call: estimated (~2 + 200 tokens) at ~0.003 USD; really 1000*3e-6 + 1000*15e-6
    # = 0.018 USD, so a second call (0.018 + 0.003) crosses 0.02.
    cfg = BudgetConfig(per_call_tokens=None, per_call_usd=None, per_day_tokens=None,
                       per_day_usd=0.02)
    clock = SimClock(DAY0 + 23 * 3600 * NS_PER_SECOND)
    router, ledger, _, _ = make(("a", a), budget=cfg, clock=clock)
    run(router.call(request("one")))
    with pytest.raises(BudgetExceeded, match="per-day USD budget"):
        run(router.call(request("two")))
    assert router.budget.spent_today()[1] == pytest.approx(0.018)
    clock.set(DAY0 + 24 * 3600 * NS_PER_SECOND)  # midnight UTC: a new day
    assert router.budget.spent_today() == (0, 0.0)
    run(router.call(request("three")))
    assert [r.outcome for r in ledger.records] == ["ok", "budget", "ok"]


def test_budget_reserves_estimates_of_calls_in_flight():
    b = Budget(BudgetConfig(per_call_tokens=None, per_call_usd=None, per_day_tokens=1000,
                            per_day_usd=None), SimClock(DAY0))
    first = b.reserve(600, 0.0)
    with pytest.raises(BudgetExceeded):
        b.reserve(600, 0.0)  # the first call has not settled, but it is counted
    b.settle(first, 100, 0.0)
    b.settle(first, 100, 0.0)  # settling twice changes nothing
    assert b.spent_today() == (100, 0.0)
    b.reserve(600, 0.0)


def test_estimate_is_prompt_chars_over_four_plus_max_tokens():
    req = request("x" * 400, max_tokens=300)
    assert estimate_tokens(req) == ((400 + len("You triage trips.")) // 4, 300)


# ----------------------------------------------------------------------------- pacing


def test_token_bucket_paces_and_refuses_waits_beyond_the_limit():
    clock = SimClock(DAY0)
    bucket = TokenBucket(rate_per_s=2.0, burst=2, clock=clock)
    assert [bucket.reserve(10) for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]
    assert bucket.reserve(1.2) is None  # next slot is 1.5 s away
    clock.advance(2 * NS_PER_SECOND)
    assert bucket.reserve(0) == 0.0  # refilled to the burst, the queue paid off


def test_rate_limit_waits_for_a_slot_within_the_timeout():
    a = Scripted()
    router, _, sleeper, _ = make(("a", a, policy(rate_per_s=1.0, burst=1, timeout_s=5)))
    run(router.call(request("one")))
    run(router.call(request("two")))
    assert sleeper.delays == [1.0]  # the sleep moved the clock, so the bucket refilled
    assert a.calls == 2


def test_rate_limit_beyond_the_timeout_skips_the_route():
    a, b = Scripted(), Scripted()
    router, ledger, _, _ = make(("a", a, policy(rate_per_s=0.1, burst=1, timeout_s=2)),
                                ("b", b))

    async def both():
        await router.call(request("one"))
        return await router.call(request("two"))

    assert run(both()).route == "b"
    assert outcomes(ledger) == [("a", "ok"), ("a", "throttled"), ("b", "ok")]
    assert "rate limit" in ledger.records[1].detail


@pytest.mark.timeout(60)
def test_concurrency_limit_bounds_calls_in_flight():
    gate = asyncio.Event()
    in_flight: list[int] = []
    peak = [0]

    async def held(_req: LLMRequest) -> ProviderResult:
        in_flight.append(1)
        peak[0] = max(peak[0], len(in_flight))
        await gate.wait()
        in_flight.pop()
        return result()

    a = Scripted(*[held] * 5)
    router, _, _, _ = make(("a", a, policy(max_concurrency=2, timeout_s=10)))

    async def go():
        tasks = [asyncio.create_task(router.call(request(f"q{i}"))) for i in range(5)]
        for _ in range(20):
            await asyncio.sleep(0)
        assert peak[0] == 2 and a.calls == 2
        gate.set()
        return await asyncio.gather(*tasks)

    assert len(run(go())) == 5 and peak[0] == 2 and a.calls == 5


@pytest.mark.timeout(60)
def test_concurrency_wait_beyond_the_timeout_skips_the_route():
    gate = asyncio.Event()

    async def stubborn(_req: LLMRequest) -> ProviderResult:
        # Holds its slot past the route timeout (it swallows the first cancellation), so
        # the second caller's bounded wait for a slot runs out first, deterministically.
        try:
            await gate.wait()
        except asyncio.CancelledError:
            await gate.wait()
            raise
        return result()

    a, b = Scripted(stubborn), Scripted()
    router, ledger, _, _ = make(("a", a, policy(max_concurrency=1, timeout_s=0.05)), ("b", b))

    async def go():
        first = asyncio.create_task(router.call(request("one")))
        await asyncio.sleep(0)
        second = await router.call(request("two"))
        gate.set()
        return second, await first

    second, first = run(go())
    assert second.route == "b" and first.route == "a"
    assert ("a", "throttled") in outcomes(ledger)
    assert "concurrency limit: 1 calls in flight" in next(
        r.detail for r in ledger.records if r.outcome == "throttled")


def test_concurrency_limit_waits_a_bounded_time():
    async def go():
        limit = ConcurrencyLimit(1)
        assert await limit.acquire(0.0) and limit.in_flight == 1
        refused = await limit.acquire(0.01)
        limit.release()
        return refused, await limit.acquire(0.0), limit.refused

    assert run(go()) == (False, True, 1)


# ----------------------------------------------------------------------------- breaker


def test_breaker_opens_after_threshold_and_skips_the_route():
    a = Scripted(*[ProviderError("server", "500", status=500)] * 10)
    b = Scripted()
    router, ledger, _, clock = make(("a", a, policy(retries=0, failure_threshold=3,
                                                    cooldown_s=60)), ("b", b))
    for i in range(3):
        assert run(router.call(request(f"q{i}"))).route == "b"
    assert router.breaker("a").state == "open" and a.calls == 3
    with_open = run(router.call(request("q3")))
    assert with_open.route == "b" and a.calls == 3  # skipped, not called
    assert outcomes(ledger)[-2:] == [("a", "breaker_open"), ("b", "ok")]
    assert "breaker open after 3 failures" in ledger.records[-2].detail
    clock.advance(60 * NS_PER_SECOND)
    a.script.clear()  # the provider is healthy again
    assert run(router.call(request("q4"))).route == "a"
    assert router.breaker("a").state == "closed"
    assert [t[1:] for t in router.breaker("a").transitions] == [
        ("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_retries_stop_when_the_breaker_opens():
    a = Scripted(*[ProviderError("overloaded", "529", status=529)] * 10)
    router, ledger, sleeper, _ = make(("a", a, policy(retries=5, failure_threshold=2)),
                                      ("b", Scripted()))
    assert run(router.call(request())).route == "b"
    assert a.calls == 2 and len(sleeper.delays) == 1
    assert "breaker opened" in ledger.records[1].detail


def test_failed_half_open_trial_reopens_and_fails_over():
    a = Scripted(*[ProviderError("server", "500", status=500)] * 10)
    router, _, _, clock = make(("a", a, policy(retries=3, failure_threshold=1,
                                               cooldown_s=10)), ("b", Scripted()))
    run(router.call(request("q1")))
    clock.advance(10 * NS_PER_SECOND)
    assert router.breaker("a").state == "half_open"
    run(router.call(request("q2")))
    assert a.calls == 2  # the trial is one call: no retries while half-open
    assert router.breaker("a").state == "open"


@pytest.mark.timeout(60)
def test_half_open_allows_one_trial_under_concurrency():
    gate = asyncio.Event()

    async def trial(_req: LLMRequest) -> ProviderResult:
        await gate.wait()
        return result()

    a = Scripted(ProviderError("server", "500", status=500), trial)
    b = Scripted()
    router, ledger, _, clock = make(("a", a, policy(retries=0, failure_threshold=1,
                                                    cooldown_s=5)), ("b", b))
    run(router.call(request("open it")))
    clock.advance(5 * NS_PER_SECOND)

    async def go():
        first = asyncio.create_task(router.call(request("trial")))
        for _ in range(5):
            await asyncio.sleep(0)
        others = await asyncio.gather(*(router.call(request(f"o{i}")) for i in range(3)))
        gate.set()
        return await first, others

    first, others = run(go())
    assert first.route == "a" and [o.route for o in others] == ["b"] * 3
    assert a.calls == 2  # the opening failure and the single trial
    assert sum(1 for r in ledger.records if r.outcome == "breaker_open") == 3
    assert "half-open" in next(r.detail for r in ledger.records if r.outcome == "breaker_open")
    assert router.breaker("a").state == "closed"


def test_budget_refusal_gives_back_the_half_open_trial():
    a = Scripted(ProviderError("server", "500", status=500))
    cfg = BudgetConfig(per_call_tokens=1000, per_call_usd=None, per_day_tokens=None,
                       per_day_usd=None)
    router, _, _, clock = make(("a", a, policy(retries=0, failure_threshold=1, cooldown_s=1)),
                               ("b", Scripted(), policy(metered=False)), budget=cfg)
    run(router.call(request()))
    clock.advance(NS_PER_SECOND)
    run(router.call(request(max_tokens=5000)))  # refused by budget while half-open
    assert router.breaker("a").state == "half_open"
    assert run(router.call(request("fine"))).route == "a"  # the trial was not lost


# ----------------------------------------------------------------------------- cache


def test_exact_cache_hit_is_marked_counted_and_recorded():
    clock = SimClock(DAY0)
    cache = ResponseCache(ExactCache(ttl_s=60, capacity=16, clock=clock))
    a = Scripted()
    router, ledger, _, _ = make(("a", a), cache=cache, clock=clock)
    first = run(router.call(request()))
    hit = run(router.call(request()))
    assert a.calls == 1
    assert hit.cached and not first.cached and hit.value == first.value
    assert (hit.cost_usd, hit.attempts, hit.usage) == (0.0, 0, Usage())
    assert outcomes(ledger) == [("a", "ok"), ("a", "cache_hit")]
    row = ledger.records[1]
    assert row.cached and row.detail == "exact" and row.cost_usd == 0 and row.attempt == 0
    assert cache.hits["exact"] == 1 and router.stats["cache_hits"] == 1


def test_cached_answer_is_never_older_than_its_ttl():
    clock = SimClock(DAY0)
    cache = ResponseCache(ExactCache(ttl_s=60, capacity=16, clock=clock))
    a = Scripted()
    router, _, _, _ = make(("a", a), cache=cache, clock=clock)
    run(router.call(request()))
    clock.advance(59 * NS_PER_SECOND)
    assert run(router.call(request())).cached
    clock.advance(1 * NS_PER_SECOND)
    assert not run(router.call(request())).cached and a.calls == 2


def test_semantic_cache_answers_a_similar_incident():
    clock = SimClock(DAY0)
    cache = ResponseCache(None, SemanticCache(ttl_s=300, threshold=0.85, clock=clock))
    a = Scripted()
    router, ledger, _, _ = make(("a", a), cache=cache, clock=clock)
    ctx = {"symbol": "SOLUSDT", "metric": "RETURN", "z": -12.0,
           "news": ["Solana network halts block production"]}
    run(router.call(request("first wording", context=ctx)))
    similar = {**ctx, "z": -14.5, "news": ["Solana network halts block production again"]}
    hit = run(router.call(request("other wording", context=similar)))
    assert hit.cached and a.calls == 1
    assert ledger.records[-1].detail == "semantic"
    assert ledger.records[-1].fingerprint == request("other wording").fingerprint()
    other = {**ctx, "symbol": "ETHUSDT"}
    assert not run(router.call(request("eth", context=other))).cached


def test_answers_of_routes_that_do_not_cache_are_not_stored():
    clock = SimClock(DAY0)
    cache = ResponseCache(ExactCache(ttl_s=60, capacity=16, clock=clock))
    rules = Scripted()
    router, _, _, _ = make(("a", Scripted(*[ProviderError("auth", "401")] * 2)),
                           ("rules", rules, policy(metered=False, cache_answers=False)),
                           cache=cache, clock=clock)
    run(router.call(request()))
    assert run(router.call(request())).route == "rules" and rules.calls == 2


# ----------------------------------------------------------------------------- telemetry


def _tracer():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def test_span_per_call_with_route_tokens_cost_retries_breaker():
    tracer, exporter = _tracer()
    a = Scripted(ProviderError("overloaded", "529", status=529), result(tokens=(400, 50)))
    router, _, _, _ = make(("a", a), tracer=tracer)
    run(router.call(request()))
    (span,) = exporter.get_finished_spans()
    attrs = span.attributes
    assert span.name == telemetry.SPAN_NAME
    assert attrs[telemetry.ROUTE] == "a" and attrs[telemetry.MODEL] == "m"
    assert (attrs[telemetry.TOKENS_IN], attrs[telemetry.TOKENS_OUT]) == (400, 50)
    assert attrs[telemetry.COST_USD] == pytest.approx(400 * 3e-6 + 50 * 15e-6)
    assert attrs[telemetry.RETRIES] == 1 and attrs[telemetry.ATTEMPTS] == 2
    assert attrs[telemetry.BREAKER_STATE] == "closed" and attrs[telemetry.CACHE_HIT] is False
    assert attrs[telemetry.OUTCOME] == "ok" and attrs[telemetry.ROLE] == "triage-analyst"


def test_span_of_a_cache_hit_and_of_a_failure():
    tracer, exporter = _tracer()
    clock = SimClock(DAY0)
    cache = ResponseCache(ExactCache(ttl_s=60, capacity=4, clock=clock))
    router, _, _, _ = make(("a", Scripted()), cache=cache, clock=clock, tracer=tracer)
    run(router.call(request()))
    run(router.call(request()))
    hit = exporter.get_finished_spans()[-1].attributes
    assert hit[telemetry.CACHE_HIT] is True and hit[telemetry.OUTCOME] == "cache_hit"

    tracer, exporter = _tracer()
    router, _, _, _ = make(("a", Scripted(*[ProviderError("auth", "401")] * 2)), tracer=tracer)
    with pytest.raises(AllRoutesFailed):
        run(router.call(request()))
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[telemetry.OUTCOME] == "failed"
    event = next(e for e in span.events if e.name == "llm.route_failed")
    assert event.attributes[telemetry.ROUTE] == "a"


# ----------------------------------------------------------------------------- plumbing


def test_failing_ledger_never_fails_the_call():
    class Broken:
        async def write(self, record):
            raise OSError("database gone")

        async def summarise(self, since_ns=None, until_ns=None, *, by=("route", "model")):
            return []

    router = Router([Route("a", Scripted(), policy())], ledger=Broken(),
                    sleep=Sleeper(SimClock(DAY0)), clock=SimClock(DAY0))
    assert run(router.call(request())).route == "a"
    assert router.stats["ledger_errors"] == 1


def test_router_refuses_bad_route_lists():
    with pytest.raises(ValueError, match="at least one route"):
        Router([])
    with pytest.raises(ValueError, match="'a' is used twice"):
        Router([Route("a", Scripted()), Route("a", Scripted())])


def test_build_router_from_config_and_close_providers_once():
    cfg = load_llm_config({
        "prices": {"gpt-x": {"input": 1.0, "output": 2.0}},
        "routes": [{"name": "gpt", "provider": "openai", "model": "gpt-x", "retries": 0}],
        "budget": {"per_day_usd": 1.0},
    })
    shared = Scripted()
    clock = SimClock(DAY0)
    router = build_router(cfg, {"gpt": shared, "rules": shared}, clock=clock,
                          sleep=Sleeper(clock))
    assert router.route_names == ["gpt", "rules"]
    resp = run(router.call(request()))
    assert resp.cost_usd == pytest.approx(100 * 1e-6 + 20 * 2e-6)
    assert router.cache is not None and router.budget is not None
    run(router.aclose())
    assert shared.closed == 1
    with pytest.raises(ValueError, match="no provider built for route 'rules'"):
        build_router(cfg, {"gpt": shared})
