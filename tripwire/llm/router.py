"""The router: one dependable structured LLM call over an ordered list of routes.

:meth:`Router.call` takes an :class:`~tripwire.llm.base.LLMRequest` and returns a validated
:class:`~tripwire.llm.base.LLMResponse`, or raises :class:`~tripwire.llm.base.AllRoutesFailed`
(or :class:`~tripwire.llm.base.BudgetExceeded` when only budgets stood in the way), on which
callers HOLD. In order:

1. cache: exact fingerprint, then the semantic incident match; a hit returns at once;
2. for each route, in configured order:

   * skip it while its circuit breaker is open (half-open: one trial call at a time);
   * budget: refuse before sending when the estimate (prompt chars / 4 + ``max_tokens``)
     would exceed a per-call or per-day token or USD ceiling (metered routes only);
   * rate limit (token bucket, waiting at most the route's timeout) and concurrency limit;
   * ``provider.complete`` under the route's timeout;
   * validate against ``request.schema``; an invalid answer (or a "malformed" error) gets
     ONE repair prompt on the same route, then the route counts as failed;
   * retryable errors (timeout, 5xx, 529, 429) are retried with capped exponential backoff
     and full jitter, waiting at least a server's Retry-After; other 4xx fail over at once;
   * every failed provider call counts against the breaker, every success resets it.

Every provider call, cache hit and refusal is one :class:`~tripwire.llm.ledger.CallRecord`;
every call is one OpenTelemetry span. Clock, sleep, random source and tracer are injected,
so tests run on simulated time without waiting.

>>> from pydantic import BaseModel
>>> class Echo(BaseModel):
...     text: str
>>> class Parrot:
...     kind, model = "parrot", "parrot-1"
...     async def complete(self, request, *, timeout_s):
...         return ProviderResult({"text": "hi"}, '{"text": "hi"}', Usage(5, 2), self.model,
...                               0.1, self.kind)
...     async def aclose(self):
...         pass
>>> router = Router([Route("parrot", Parrot())])
>>> req = LLMRequest("echo", "Repeat.", (Message("user", "hi"),), Echo)
>>> resp = asyncio.run(router.call(req))
>>> resp.value.text, resp.route, resp.attempts, [r.outcome for r in router.ledger.records]
('hi', 'parrot', 1, ['ok'])
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from opentelemetry.trace import Span, Tracer
from pydantic import BaseModel, ValidationError

from tripwire.llm import telemetry
from tripwire.llm.base import (
    CALLER_DEADLINE,
    AllRoutesFailed,
    BudgetExceeded,
    LLMError,
    LLMRequest,
    LLMResponse,
    Message,
    Provider,
    ProviderError,
    ProviderResult,
    Usage,
)
from tripwire.llm.breaker import CircuitBreaker
from tripwire.llm.cache import ResponseCache, Similarity
from tripwire.llm.config import LLMConfig, RoutePolicy
from tripwire.llm.ledger import CallRecord, InMemoryLedger, LedgerSink
from tripwire.llm.limits import (
    Budget,
    ConcurrencyLimit,
    Deadline,
    Deadlines,
    SharedBudget,
    TokenBucket,
    estimate_tokens,
    route_limits,
)
from tripwire.model import NS_PER_MS, Clock, SystemClock

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

MAX_QUOTE_CHARS = 2000  # of a bad answer, quoted back in the repair prompt
MAX_DETAIL_CHARS = 300  # of an error, in ledger rows and failure reasons

REPAIR_PROMPT = (
    "Your previous answer could not be used: {error}\n"
    "Reply again with only one JSON object that matches the required schema: "
    "no prose, no code fences."
)


@dataclass(frozen=True, slots=True)
class Route:
    """A named provider with the policy the router applies to it."""

    name: str
    provider: Provider
    config: RoutePolicy = field(default_factory=RoutePolicy)


class _RouteRuntime:
    """A route with its live state: breaker, bucket, concurrency limit, per-token prices."""

    __slots__ = ("breaker", "bucket", "cfg", "in_per_tok", "limit", "name", "out_per_tok",
                 "provider")

    def __init__(self, route: Route, clock: Clock) -> None:
        cfg = route.config
        self.name = route.name
        self.provider = route.provider
        self.cfg = cfg
        self.breaker = CircuitBreaker(
            cfg.failure_threshold, cfg.cooldown_s, clock, name=route.name
        )
        self.bucket = TokenBucket(cfg.rate_per_s, cfg.burst, clock)
        self.limit = ConcurrencyLimit(cfg.max_concurrency)
        price = cfg.price
        self.in_per_tok = price.input / 1e6 if price is not None else 0.0
        self.out_per_tok = price.output / 1e6 if price is not None else 0.0

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return tokens_in * self.in_per_tok + tokens_out * self.out_per_tok


class _Call:
    """The running totals of one router call."""

    __slots__ = ("attempts", "budget_refusals", "call_id", "cost", "failures", "fp",
                 "metered_tokens", "metered_usd", "request", "retries", "t0", "tokens_in",
                 "tokens_out")

    def __init__(self, request: LLMRequest, fp: str, call_id: str) -> None:
        self.request = request
        self.fp = fp
        self.call_id = call_id
        self.t0 = time.perf_counter()
        self.attempts = 0
        self.retries = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.cost = 0.0
        self.metered_tokens = 0  # what counts against the per-call budget
        self.metered_usd = 0.0
        self.failures: list[tuple[str, str]] = []
        self.budget_refusals = 0


@dataclass(slots=True)
class _Attempt:
    """What one provider call gave: a result or an error, and how long it took."""

    result: ProviderResult | None
    error: ProviderError | None
    latency_ms: float


def explain(exc: ValidationError, limit: int = 5) -> str:
    """A short, value-free summary of a validation error, for the repair prompt.

    >>> from pydantic import BaseModel
    >>> class A(BaseModel):
    ...     x: int
    >>> try:
    ...     A.model_validate({"x": "nope"})
    ... except ValidationError as e:
    ...     print(explain(e))
    x: Input should be a valid integer, unable to parse string as an integer
    """
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def repair_request(request: LLMRequest, bad_output: str, error: str) -> LLMRequest:
    """The same request, followed by the bad answer and why it was refused.

    The bad answer goes back as the assistant's turn, so the conversation keeps alternating
    (chat templates of some local servers refuse two user turns in a row).
    """
    quoted = bad_output[:MAX_QUOTE_CHARS] or "(empty answer)"
    ask = Message("user", REPAIR_PROMPT.format(error=error))
    if request.messages and request.messages[-1].role == "assistant":
        ask = Message("user", f"Your previous answer was:\n{quoted}\n\n{ask.content}")
        return replace(request, messages=(*request.messages, ask))
    return replace(request, messages=(*request.messages, Message("assistant", quoted), ask))


_LOW62 = (1 << 62) - 1


def call_id(clock: Clock, rng: random.Random) -> str:
    """The id of one router call: :func:`tripwire.model.new_id`'s UUIDv7 (same bits from the
    same clock and random source), formatted without building a ``uuid.UUID``.

    >>> from tripwire.model import SimClock, new_id
    >>> clock = SimClock(1_700_000_000_123_456_789)
    >>> call_id(clock, random.Random(3)) == new_id(clock, random.Random(3))
    True
    """
    ms = (clock.now_ns() // NS_PER_MS) & 0xFFFF_FFFF_FFFF
    rand = rng.getrandbits(74)
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & _LOW62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _short(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 3] + "..."


class Router:
    """Ordered failover over routes, with every guard the layer promises (module docs)."""

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        ledger: LedgerSink | None = None,
        cache: ResponseCache | None = None,
        budget: Budget | SharedBudget | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        if not routes:
            raise ValueError("a router needs at least one route")
        names = [r.name for r in routes]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"route name {dup!r} is used twice")
        self._clock = clock or SystemClock()
        self._routes = [_RouteRuntime(r, self._clock) for r in routes]
        self.ledger: LedgerSink = ledger if ledger is not None else InMemoryLedger()
        self.cache = cache
        self.budget = budget
        # Budget: in this process, synchronous; a SharedBudget (PostgreSQL) is awaited.
        self._shared_budget = budget is not None and not isinstance(budget, Budget)
        self._sleep: Sleep = sleep or asyncio.sleep
        self._rng = rng or random.Random()
        self._tracer = telemetry.get_tracer(tracer)
        self._deadlines = Deadlines()  # each provider call's timeout, on one loop timer
        self.stats: dict[str, int] = dict.fromkeys(
            ("calls", "answered", "cache_hits", "failed", "budget_refused", "retries",
             "repairs", "provider_calls", "ledger_errors"), 0
        )

    # ------------------------------------------------------------------ introspection

    @property
    def route_names(self) -> list[str]:
        return [rt.name for rt in self._routes]

    def breaker(self, route: str) -> CircuitBreaker:
        for rt in self._routes:
            if rt.name == route:
                return rt.breaker
        raise KeyError(f"no route named {route!r}")

    def training_cutoff(self, route: str) -> str | None:
        """The route's configured training-data cutoff (ISO date), None when unknown."""
        for rt in self._routes:
            if rt.name == route:
                return getattr(rt.cfg, "training_cutoff", None)
        return None

    def breaker_states(self) -> dict[str, str]:
        return {rt.name: rt.breaker.state for rt in self._routes}

    async def aclose(self) -> None:
        """Close every provider (each once, even when routes share one), then the budget
        (a shared one settles what it still owes and closes its pool)."""
        seen: set[int] = set()
        for rt in self._routes:
            if id(rt.provider) not in seen:
                seen.add(id(rt.provider))
                await rt.provider.aclose()
        close = getattr(self.budget, "aclose", None)
        if close is not None:
            await close()

    # ------------------------------------------------------------------ the call

    async def call(self, request: LLMRequest) -> LLMResponse:
        """A validated answer, or AllRoutesFailed / BudgetExceeded (then HOLD)."""
        self.stats["calls"] += 1
        fp = request.fingerprint()
        with telemetry.CallSpan(self._tracer) as span:
            c = _Call(request, fp, call_id(self._clock, self._rng))
            if self.cache is not None:
                hit = self.cache.lookup(request, fp)
                if hit is not None:
                    return await self._serve_hit(c, span, hit[0], hit[1])
            for rt in self._routes:
                response = await self._try_route(rt, c, span)
                if response is not None:
                    if self.cache is not None and rt.cfg.cache_answers:
                        self.cache.store(request, fp, response)
                    if span.is_recording():  # else nothing would keep the figures
                        self._finish(span, c, rt, response, "ok")
                    return response
            raise self._all_failed(c, span)

    async def _serve_hit(
        self, c: _Call, span: Span, response: LLMResponse, kind: str
    ) -> LLMResponse:
        self.stats["cache_hits"] += 1
        latency_ms = (time.perf_counter() - c.t0) * 1e3
        await self._write(CallRecord(
            c.call_id, self._clock.now_ns(), c.request.role, response.route, response.model,
            0, 0, 0.0, latency_ms, "cache_hit", 0, c.fp, True, kind,
        ))
        if span.is_recording():
            telemetry.set_call_attributes(span, telemetry.CallFigures(
                role=c.request.role, route=response.route, model=response.model,
                outcome="cache_hit", cache_hit=True, cache_kind=kind,
            ))
        return response

    async def _try_route(self, rt: _RouteRuntime, c: _Call, span: Span) -> LLMResponse | None:
        """This route's answer, or None after recording why it gave none."""
        req = c.request
        repaired = False
        retries = 0
        permit = False  # holding the breaker's permission (matters for the half-open trial)
        try:
            while True:
                if not permit:
                    if not rt.breaker.acquire():
                        await self._skip(c, rt, span, "breaker_open", self._breaker_why(rt))
                        return None
                    permit = True
                att = await self._attempt(rt, c, req, span)
                if att is None:
                    return None
                value, problem, raw = self._check(req, att)
                if value is not None:
                    permit = False
                    rt.breaker.record_success()
                    return await self._answer(rt, c, att, value, repaired)
                if problem is not None:  # an answer came back, but not a usable one
                    await self._write(self._attempt_record(rt, c, att, "invalid", problem))
                    if not repaired:
                        repaired = True
                        self.stats["repairs"] += 1
                        req = repair_request(c.request, raw, problem)
                        continue
                    permit = False
                    rt.breaker.record_failure()
                    await self._give_up(rt, c, span, "invalid",
                                        f"invalid answer after one repair: {problem}")
                    return None
                permit = False
                rt.breaker.record_failure()
                delay = await self._after_error(rt, c, span, att, retries)
                if delay is None:
                    return None
                retries += 1
                await self._sleep(delay)
        finally:
            if permit:
                rt.breaker.release()

    async def _after_error(
        self, rt: _RouteRuntime, c: _Call, span: Span, att: _Attempt, retries: int
    ) -> float | None:
        """Record a failed provider call; the backoff before a retry, or None (give up)."""
        err = att.error
        assert err is not None
        stop = self._no_retry_reason(rt, err, retries)
        if stop is not None:
            outcome, why = f"failed:{err.kind}", f"{err}{stop}"
            await self._write(self._attempt_record(rt, c, att, outcome, why))
            await self._give_up(rt, c, span, outcome, why)
            return None
        await self._write(self._attempt_record(rt, c, att, "retry", str(err)))
        c.retries += 1
        self.stats["retries"] += 1
        return self._backoff(rt.cfg, retries, err.retry_after_s)

    def _no_retry_reason(self, rt: _RouteRuntime, err: ProviderError, retries: int) -> str | None:
        """Why this failure ends the route (a suffix for the reason), or None to retry."""
        if not err.retryable:
            return " (not retryable)"
        if rt.breaker.state == "open":
            return " (breaker opened)"
        if retries >= rt.cfg.retries:
            return f" (after {retries} retries)" if retries else " (no retries configured)"
        after = err.retry_after_s
        if after is not None and after > rt.cfg.max_retry_after_s:
            return f" (Retry-After {after:g}s > {rt.cfg.max_retry_after_s:g}s: failing over)"
        return None

    def _backoff(self, cfg: RoutePolicy, retry: int, retry_after_s: float | None) -> float:
        """Full jitter over a capped exponential, but never less than Retry-After."""
        ceiling = min(cfg.backoff_cap_s, cfg.backoff_base_s * (2.0**retry))
        delay = self._rng.uniform(0.0, ceiling)
        if retry_after_s is not None and retry_after_s > delay:
            delay = retry_after_s
        return delay

    async def _attempt(
        self, rt: _RouteRuntime, c: _Call, req: LLMRequest, span: Span
    ) -> _Attempt | None:
        """Budget, pacing, concurrency, then one provider call; None when refused (recorded)."""
        cfg = rt.cfg
        reservation = None
        budget = self.budget
        if cfg.metered and budget is not None:
            est_in, est_out = estimate_tokens(req)
            try:
                if self._shared_budget:
                    reservation = await budget.reserve_attempt(  # type: ignore[union-attr]
                        route=rt.name, model=rt.provider.model, role=req.role,
                        call_id=c.call_id, tokens_in=est_in, tokens_out=est_out,
                        usd=rt.cost(est_in, est_out), call_tokens=c.metered_tokens,
                        call_usd=c.metered_usd, route_timeout_s=cfg.timeout_s,
                    )
                else:
                    reservation = budget.reserve(  # type: ignore[union-attr]
                        est_in + est_out, rt.cost(est_in, est_out),
                        call_tokens=c.metered_tokens, call_usd=c.metered_usd, route=rt.name,
                    )
            except BudgetExceeded as exc:
                c.budget_refusals += 1
                self.stats["budget_refused"] += 1
                await self._skip(c, rt, span, "budget", str(exc))
                return None
        used_in = used_out = 0
        try:
            wait = rt.bucket.reserve(cfg.timeout_s)
            # Free slots (every call but a throttled one) are taken without a coroutine.
            admitted = wait == 0.0 and rt.limit.try_acquire()
            if not admitted and not await self._admit(rt, c, span, wait):
                return None
            try:
                att = await self._provider_call(rt, c, req)
            finally:
                rt.limit.release()
            if att.result is not None:
                used_in = att.result.usage.input_tokens
                used_out = att.result.usage.output_tokens
            return att
        finally:
            if reservation is not None:
                used_usd = rt.cost(used_in, used_out)
                if self._shared_budget:
                    # Shielded: a caller cancelled mid-settle still releases its hold.
                    await asyncio.shield(budget.settle_attempt(  # type: ignore[union-attr]
                        reservation, used_in + used_out, used_usd))
                else:
                    budget.settle(reservation, used_in + used_out, used_usd)  # type: ignore[union-attr]

    async def _admit(self, rt: _RouteRuntime, c: _Call, span: Span, wait: float | None) -> bool:
        """Wait for the rate-limit slot reserved ``wait`` seconds ahead (None: none within
        the route's timeout) and for a concurrency slot, each within the route's timeout."""
        timeout_s = rt.cfg.timeout_s
        if wait is None:
            await self._skip(c, rt, span, "throttled",
                             f"rate limit {rt.cfg.rate_per_s:g}/s: no slot within {timeout_s:g}s")
            return False
        if wait > 0:
            try:
                await self._sleep(wait)
            except BaseException:
                rt.bucket.cancel()
                raise
        if not await rt.limit.acquire(timeout_s):
            await self._skip(c, rt, span, "throttled",
                             f"concurrency limit: {rt.limit.limit} calls in flight for "
                             f"{timeout_s:g}s")
            return False
        return True

    async def _provider_call(self, rt: _RouteRuntime, c: _Call, req: LLMRequest) -> _Attempt:
        timeout_s = rt.cfg.timeout_s
        c.attempts += 1
        self.stats["provider_calls"] += 1
        t = time.perf_counter()
        try:
            with Deadline(self._deadlines, timeout_s) as deadline:
                token = CALLER_DEADLINE.set((deadline.task, deadline.when, timeout_s))
                try:
                    result = await rt.provider.complete(req, timeout_s=timeout_s)
                finally:
                    CALLER_DEADLINE.reset(token)
            return _Attempt(result, None, (time.perf_counter() - t) * 1e3)
        except ProviderError as exc:
            err = exc
        except TimeoutError:
            err = ProviderError("timeout", f"no answer within {timeout_s:g}s")
        except LLMError:
            # Not a provider failure but a refusal to answer at all (a strict cassette with
            # no recording): failing over would hide it behind another route's answer.
            raise
        except Exception as exc:  # a provider bug or an unmapped SDK error: never leak it raw
            log.warning("llm route %s: unexpected %s from provider", rt.name, type(exc).__name__)
            err = ProviderError("server", _short(f"{type(exc).__name__}: {exc}"))
        return _Attempt(None, err, (time.perf_counter() - t) * 1e3)

    def _check(
        self, req: LLMRequest, att: _Attempt
    ) -> tuple[BaseModel | None, str | None, str]:
        """(valid value, None, "") | (None, why invalid, raw text) | (None, None, "") on error."""
        if att.result is None:
            err = att.error
            if err is not None and err.kind == "malformed":
                return None, _short(str(err)), err.raw_text or ""
            return None, None, ""
        try:
            return req.schema.model_validate(att.result.data), None, ""
        except ValidationError as exc:
            return None, explain(exc), att.result.raw_text

    async def _answer(
        self, rt: _RouteRuntime, c: _Call, att: _Attempt, value: BaseModel, repaired: bool
    ) -> LLMResponse:
        result = att.result
        assert result is not None
        await self._write(self._attempt_record(rt, c, att, "repaired" if repaired else "ok", ""))
        self.stats["answered"] += 1
        return LLMResponse(
            value=value,
            route=rt.name,
            model=result.model or rt.provider.model,
            source=result.source,
            usage=Usage(c.tokens_in, c.tokens_out),
            cost_usd=c.cost,
            latency_ms=(time.perf_counter() - c.t0) * 1e3,
            cached=False,
            attempts=c.attempts,
            fingerprint=c.fp,
        )

    # ------------------------------------------------------------------ bookkeeping

    def _breaker_why(self, rt: _RouteRuntime) -> str:
        b = rt.breaker
        if b.state == "half_open":
            return "breaker half-open: its one trial call is in flight"
        return (
            f"breaker open after {b.consecutive_failures} failures, "
            f"trial in {b.retry_in_s():.1f}s"
        )

    def _attempt_record(
        self, rt: _RouteRuntime, c: _Call, att: _Attempt, outcome: str, detail: str
    ) -> CallRecord:
        """The ledger row of a provider call; adds its usage and cost to the call's totals."""
        result = att.result
        if result is not None:
            t_in, t_out, model = result.usage.input_tokens, result.usage.output_tokens, result.model
        else:
            t_in, t_out, model = 0, 0, rt.provider.model
        cost = t_in * rt.in_per_tok + t_out * rt.out_per_tok  # rt.cost(), without the call
        c.tokens_in += t_in
        c.tokens_out += t_out
        c.cost += cost
        if rt.cfg.metered:
            c.metered_tokens += t_in + t_out
            c.metered_usd += cost
        return CallRecord(
            c.call_id, self._clock.now_ns(), c.request.role, rt.name, model or rt.provider.model,
            t_in, t_out, cost, att.latency_ms, outcome, c.attempts, c.fp, False,
            _short(detail) if detail else "",
        )

    async def _skip(self, c: _Call, rt: _RouteRuntime, span: Span, outcome: str, why: str) -> None:
        """A route refused before any provider call (breaker, budget, throttling)."""
        await self._write(CallRecord(
            c.call_id, self._clock.now_ns(), c.request.role, rt.name, rt.provider.model,
            0, 0, 0.0, 0.0, outcome, 0, c.fp, False, _short(why),
        ))
        await self._give_up(rt, c, span, outcome, why)

    async def _give_up(
        self, rt: _RouteRuntime, c: _Call, span: Span, outcome: str, why: str
    ) -> None:
        why = _short(why)
        c.failures.append((rt.name, why))
        state = rt.breaker.state
        telemetry.route_event(span, rt.name, outcome, why, state)
        log.warning("llm %s: route %s gave no answer (%s; breaker %s)",
                    c.request.role, rt.name, why, state)

    async def _write(self, record: CallRecord) -> None:
        # The ledger is an audit trail, not a dependency: a failing sink is logged and
        # counted, and the answer still reaches the caller.
        ledger = self.ledger
        try:
            if type(ledger) is InMemoryLedger:
                ledger.add(record)  # all its write() does, without a coroutine per row
            else:
                await ledger.write(record)
        except Exception as exc:
            self.stats["ledger_errors"] += 1
            log.error("llm ledger write failed (%s): %s", type(exc).__name__, _short(str(exc)))

    def _finish(
        self, span: Span, c: _Call, rt: _RouteRuntime, response: LLMResponse, outcome: str
    ) -> None:
        telemetry.set_call_attributes(span, telemetry.CallFigures(
            role=c.request.role, route=rt.name, model=response.model, outcome=outcome,
            tokens_in=c.tokens_in, tokens_out=c.tokens_out, cost_usd=c.cost,
            retries=c.retries, attempts=c.attempts, breaker_state=rt.breaker.state,
        ))

    def _all_failed(self, c: _Call, span: Span) -> Exception:
        self.stats["failed"] += 1
        only_budget = bool(c.failures) and c.budget_refusals == len(c.failures)
        last = self._routes[-1]
        telemetry.set_call_attributes(span, telemetry.CallFigures(
            role=c.request.role, route=last.name, model=last.provider.model,
            outcome="budget" if only_budget else "failed",
            tokens_in=c.tokens_in, tokens_out=c.tokens_out, cost_usd=c.cost,
            retries=c.retries, attempts=c.attempts, breaker_state=last.breaker.state,
        ))
        if only_budget:
            return BudgetExceeded("; ".join(f"{route}: {why}" for route, why in c.failures))
        return AllRoutesFailed(c.request.role, c.failures)


def build_router(
    config: LLMConfig,
    providers: Mapping[str, Provider],
    *,
    ledger: LedgerSink | None = None,
    budget: Budget | SharedBudget | None = None,
    clock: Clock | None = None,
    sleep: Sleep | None = None,
    rng: random.Random | None = None,
    tracer: Tracer | None = None,
    similarity: Similarity | None = None,
) -> Router:
    """A router for ``config``'s routes, with ``providers`` by route name. ``budget``:
    default, ``config.budget`` in this process (pass a PgBudget to share it)."""
    missing = [r.name for r in config.routes if r.name not in providers]
    if missing:
        raise ValueError(f"llm.routes: no provider built for route {missing[0]!r}")
    clock = clock or SystemClock()
    routes = [Route(r.name, providers[r.name], r) for r in config.routes]
    return Router(
        routes,
        ledger=ledger,
        cache=ResponseCache.from_config(config.cache, clock, similarity=similarity),
        budget=budget if budget is not None else Budget(
            config.budget, clock, route_limits(config.routes)),
        clock=clock,
        sleep=sleep,
        rng=rng,
        tracer=tracer,
    )

