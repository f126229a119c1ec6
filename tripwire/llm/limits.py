"""Load and spend bounds in front of a provider: token bucket, concurrency limit, budgets.

* :class:`TokenBucket` paces calls to ``rate_per_s`` with bursts of ``burst``. A caller
  *reserves* a slot and is told how long to wait for it, so the pacing holds with an
  injected clock and an instant test ``sleep`` alike; a wait longer than the caller can
  afford is refused and nothing is taken.
* :class:`ConcurrencyLimit` bounds calls in flight; a caller waits at most a given time.
* :class:`Budget` refuses a call *before it is sent* when its estimate would exceed the
  per-call or per-day token or USD ceiling. Estimates are reserved while a call is in
  flight (so concurrent calls cannot overshoot together) and settled with the real usage.
  The day rolls over at UTC midnight of the injected clock.

>>> from tripwire.model import SimClock
>>> bucket = TokenBucket(rate_per_s=2, burst=1, clock=SimClock())
>>> bucket.reserve(max_wait_s=1.0), bucket.reserve(max_wait_s=1.0), bucket.reserve(0.5)
(0.0, 0.5, None)
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from tripwire.llm.base import BudgetExceeded, LLMRequest
from tripwire.llm.config import BudgetConfig
from tripwire.model import NS_PER_SECOND, Clock, SystemClock

NS_PER_DAY = 86_400 * NS_PER_SECOND


def estimate_tokens(request: LLMRequest) -> tuple[int, int]:
    """(input, output) token estimate: prompt characters / 4, and ``max_tokens``.

    >>> from pydantic import BaseModel
    >>> from tripwire.llm.base import Message
    >>> class A(BaseModel):
    ...     x: int
    >>> estimate_tokens(LLMRequest("r", "12345678", (Message("user", "abcd"),), A, 100))
    (3, 100)
    """
    chars = len(request.system)
    for m in request.messages:
        chars += len(m.content)
    return chars // 4, request.max_tokens


class TokenBucket:
    """Reservation-based token bucket (a slot taken may lie in the future)."""

    __slots__ = ("_clock", "_last_ns", "_tokens", "burst", "rate_per_s")

    def __init__(self, rate_per_s: float, burst: int, clock: Clock | None = None) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be > 0, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock or SystemClock()
        self._tokens = float(burst)
        self._last_ns = self._clock.now_ns()

    def reserve(self, max_wait_s: float) -> float | None:
        """Take one slot; return the seconds to wait for it, or None (nothing taken)."""
        if math.isinf(self.rate_per_s):
            return 0.0
        now = self._clock.now_ns()
        elapsed = now - self._last_ns
        if elapsed > 0:
            self._tokens = min(
                float(self.burst), self._tokens + elapsed * self.rate_per_s / NS_PER_SECOND
            )
            self._last_ns = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        wait = (1.0 - self._tokens) / self.rate_per_s
        if wait > max_wait_s:
            return None
        self._tokens -= 1.0
        return wait

    def cancel(self) -> None:
        """Give back a reserved slot that was not used."""
        self._tokens = min(float(self.burst), self._tokens + 1.0)

    @property
    def available(self) -> float:
        return self._tokens


class ConcurrencyLimit:
    """At most ``limit`` holders; :meth:`acquire` waits up to ``max_wait_s``."""

    __slots__ = ("_sem", "in_flight", "limit", "refused")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self._sem = asyncio.Semaphore(limit)
        self.refused = 0
        self.in_flight = 0

    async def acquire(self, max_wait_s: float) -> bool:
        if self._sem.locked():
            try:
                async with asyncio.timeout(max_wait_s):
                    await self._sem.acquire()
            except TimeoutError:
                self.refused += 1
                return False
        else:
            await self._sem.acquire()  # returns at once: a free slot never suspends
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1
        self._sem.release()


@dataclass(slots=True)
class Reservation:
    """An estimate held against the budget while its call is in flight."""

    tokens: int
    usd: float
    settled: bool = False


class Budget:
    """Per-call and per-UTC-day ceilings on tokens and USD (None: unlimited).

    >>> from tripwire.model import SimClock
    >>> b = Budget(BudgetConfig(per_call_tokens=None, per_call_usd=None,
    ...                         per_day_tokens=1000, per_day_usd=None), SimClock())
    >>> r = b.reserve(800, 0.0); b.settle(r, 700, 0.0); b.spent_today()
    (700, 0.0)
    >>> try:
    ...     b.reserve(400, 0.0)
    ... except BudgetExceeded as exc:
    ...     print(exc)
    per-day token budget: 700 spent of 1000, this call needs up to 400 (resets at 00:00 UTC)
    """

    def __init__(self, config: BudgetConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config or BudgetConfig()
        self._clock = clock or SystemClock()
        self._day = self._clock.now_ns() // NS_PER_DAY
        self._day_tokens = 0
        self._day_usd = 0.0
        self._held_tokens = 0
        self._held_usd = 0.0
        self.refusals = 0

    def _roll(self) -> None:
        day = self._clock.now_ns() // NS_PER_DAY
        if day != self._day:
            self._day, self._day_tokens, self._day_usd = day, 0, 0.0

    def spent_today(self) -> tuple[int, float]:
        """(tokens, USD) settled today, not counting calls in flight."""
        self._roll()
        return self._day_tokens, self._day_usd

    def reserve(
        self, tokens: int, usd: float, *, call_tokens: int = 0, call_usd: float = 0.0
    ) -> Reservation:
        """Hold an estimate, or raise BudgetExceeded. ``call_*``: spent earlier in this call."""
        self._roll()
        why = self._refusal(tokens, usd, call_tokens, call_usd)
        if why is not None:
            self.refusals += 1
            raise BudgetExceeded(why)
        self._held_tokens += tokens
        self._held_usd += usd
        return Reservation(tokens, usd)

    def settle(self, reservation: Reservation, tokens: int, usd: float) -> None:
        """Replace a reservation by what the call really used (0, 0 if it used nothing)."""
        if reservation.settled:
            return
        reservation.settled = True
        self._held_tokens -= reservation.tokens
        self._held_usd -= reservation.usd
        self._roll()
        self._day_tokens += tokens
        self._day_usd += usd

    def _refusal(self, tokens: int, usd: float, call_tokens: int, call_usd: float) -> str | None:
        c = self.config
        if c.per_call_tokens is not None and call_tokens + tokens > c.per_call_tokens:
            return (
                f"per-call token budget: {call_tokens} spent of {c.per_call_tokens}, "
                f"this attempt needs up to {tokens}"
            )
        if c.per_call_usd is not None and call_usd + usd > c.per_call_usd:
            return (
                f"per-call USD budget: {call_usd:.4f} spent of {c.per_call_usd:.4f}, "
                f"this attempt needs up to {usd:.4f}"
            )
        day_tokens = self._day_tokens + self._held_tokens
        if c.per_day_tokens is not None and day_tokens + tokens > c.per_day_tokens:
            return (
                f"per-day token budget: {day_tokens} spent of {c.per_day_tokens}, "
                f"this call needs up to {tokens} (resets at 00:00 UTC)"
            )
        day_usd = self._day_usd + self._held_usd
        if c.per_day_usd is not None and day_usd + usd > c.per_day_usd:
            return (
                f"per-day USD budget: {day_usd:.4f} spent of {c.per_day_usd:.4f}, "
                f"this call needs up to {usd:.4f} (resets at 00:00 UTC)"
            )
        return None
