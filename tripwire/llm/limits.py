"""Load, time and spend bounds in front of a provider: token bucket, concurrency limit,
deadlines, budgets.

* :class:`TokenBucket` paces calls to ``rate_per_s`` with bursts of ``burst``. A caller
  *reserves* a slot and is told how long to wait for it, so the pacing holds with an
  injected clock and an instant test ``sleep`` alike; a wait longer than the caller can
  afford is refused and nothing is taken.
* :class:`ConcurrencyLimit` bounds calls in flight; a caller waits at most a given time.
* :class:`Deadlines` gives each call in flight a hard deadline, as ``asyncio.timeout`` does,
  on one event-loop timer for all of them instead of one per call.
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
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from tripwire.llm.base import BudgetExceeded, LLMRequest
from tripwire.llm.config import BudgetConfig, RouteConfig
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
    """At most ``limit`` holders, first come first served: :meth:`try_acquire` takes a free
    slot without waiting (the router's every-call path: no coroutine), :meth:`acquire` waits
    up to ``max_wait_s`` for one, :meth:`release` hands the slot to the longest waiter.
    ``in_flight`` counts the holders (a waiter once it has resumed with its slot).

    >>> limit = ConcurrencyLimit(1)
    >>> limit.try_acquire(), limit.try_acquire(), limit.in_flight
    (True, False, 1)
    >>> limit.release(); limit.try_acquire()
    True
    """

    __slots__ = ("_handed", "_waiters", "in_flight", "limit", "refused")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._handed = 0  # slots released to a waiter that has not resumed yet
        self.refused = 0
        self.in_flight = 0

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody queues for it; never waits."""
        if self.in_flight + self._handed < self.limit and not self._waiters:
            self.in_flight += 1
            return True
        return False

    async def acquire(self, max_wait_s: float) -> bool:
        if self.try_acquire():
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(max_wait_s):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._handed -= 1  # handed a slot just as we gave up: pass it on
                self._hand_over()
            else:
                waiter.cancel()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                self.refused += 1
                return False
            raise
        self._handed -= 1
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1
        self._hand_over()

    def _hand_over(self) -> None:
        """Give a free slot to the longest waiter still waiting (if any)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._handed += 1
                waiter.set_result(None)
                return


class Deadlines:
    """Hard deadlines on the calls in flight, with one event-loop timer for all of them.

    ``with deadlines.within(timeout_s):`` in a task does what ``async with
    asyncio.timeout(timeout_s):`` does (at the deadline the task is cancelled and the block
    raises TimeoutError; a cancellation from elsewhere passes through), but
    ``asyncio.timeout`` arms and then cancels a loop timer on every entry, Python work on
    every call. Here an entry only registers itself; one timer stands at the earliest
    deadline registered and, when it fires, cancels the overdue tasks and moves on to the
    next deadline. Used from one event loop at a time, like the router that owns it (a new
    loop takes over: the entries of a loop that is gone have nothing left to cancel).

    >>> async def slow(deadlines):
    ...     with deadlines.within(0.01):
    ...         await asyncio.sleep(5)
    >>> try:
    ...     asyncio.run(slow(Deadlines()))
    ... except TimeoutError:
    ...     print("timed out")
    timed out
    """

    __slots__ = ("_at", "_handle", "_loop", "_open")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._at = math.inf  # when the timer fires (inf: no timer)
        self._open: set[Deadline] = set()

    def within(self, timeout_s: float) -> Deadline:
        """The context manager (the same as ``Deadline(self, timeout_s)``)."""
        return Deadline(self, timeout_s)

    def _take_over(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._loop, self._handle, self._at = loop, None, math.inf
        self._open.clear()  # entries of a loop that is gone: nothing left to cancel

    def _arm(self, when: float) -> None:
        assert self._loop is not None
        if self._handle is not None:
            self._handle.cancel()
        self._at = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        assert self._loop is not None
        # The loop runs a timer up to its clock resolution early: everything due by the time
        # this one was set for is due now.
        due = max(self._at, self._loop.time())
        self._handle, self._at = None, math.inf
        upcoming = math.inf
        for entry in self._open:
            if entry.expired:
                continue
            if entry.when <= due:
                entry.expired = True
                entry.task.cancel()
            elif entry.when < upcoming:
                upcoming = entry.when
        if upcoming < math.inf:
            self._arm(upcoming)


class Deadline:
    """One entry of :class:`Deadlines` (a context manager, see there)."""

    __slots__ = ("_cancelling", "_owner", "expired", "task", "timeout_s", "when")

    def __init__(self, owner: Deadlines, timeout_s: float) -> None:
        self._owner = owner
        self.timeout_s = timeout_s
        self.expired = False

    def __enter__(self) -> Deadline:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline must be used inside a task")
        self.task = task
        self._cancelling = task.cancelling()
        self.when = when = loop.time() + self.timeout_s
        owner = self._owner
        if loop is not owner._loop:
            owner._take_over(loop)
        owner._open.add(self)
        if when < owner._at:
            owner._arm(when)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._owner._open.discard(self)
        # As asyncio.timeout: the cancellation is ours to turn into a timeout only when no
        # other cancel request came in meanwhile.
        if (
            self.expired
            and self.task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc


@dataclass(slots=True)
class Reservation:
    """An estimate held against the budget while its call is in flight."""

    tokens: int
    usd: float
    settled: bool = False
    route: str | None = None


DayLimit = tuple[int | None, float | None]  # (tokens, USD) per UTC day; None: no limit


def route_limits(routes: Iterable[RouteConfig]) -> dict[str, DayLimit]:
    """Route name -> its own (per_day_tokens, per_day_usd), for routes that set either."""
    out: dict[str, DayLimit] = {}
    for r in routes:
        if r.per_day_tokens is not None or r.per_day_usd is not None:
            out[r.name] = (r.per_day_tokens, r.per_day_usd)
    return out


def call_refusal(
    config: BudgetConfig, tokens: int, usd: float, call_tokens: int, call_usd: float
) -> str | None:
    """Why one more attempt of ``tokens``/``usd`` would break a per-call ceiling, or None."""
    c = config
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
    return None


def day_refusal(
    scope: str, measure: str, used: float, limit: float, needs: float
) -> str:
    """The message of a per-day refusal (the same text in-process and from PostgreSQL).

    >>> print(day_refusal("total", "usd", 4.5, 5.0, 0.75))
    per-day USD budget: 4.5000 spent of 5.0000, this call needs up to 0.7500 (resets at 00:00 UTC)
    >>> day_refusal("route:claude", "tokens", 10, 12, 5)[:60]
    "route 'claude' per-day token budget: 10 spent of 12, this ca"
    """
    who = "" if scope == "total" else f"route {scope.removeprefix('route:')!r} "
    if measure == "tokens":
        figures = f"{int(used)} spent of {int(limit)}, this call needs up to {int(needs)}"
        return f"{who}per-day token budget: {figures} (resets at 00:00 UTC)"
    figures = f"{used:.4f} spent of {limit:.4f}, this call needs up to {needs:.4f}"
    return f"{who}per-day USD budget: {figures} (resets at 00:00 UTC)"


@runtime_checkable
class SharedBudget(Protocol):
    """Day budgets kept outside the process (:class:`tripwire.llm.spend.PgBudget`): the
    router awaits a reservation before each metered attempt and its settlement after."""

    async def reserve_attempt(
        self, *, route: str, model: str, role: str, call_id: str, tokens_in: int,
        tokens_out: int, usd: float, call_tokens: int, call_usd: float, route_timeout_s: float,
    ) -> Any: ...

    async def settle_attempt(self, reservation: Any, tokens: int, usd: float) -> None: ...


class _Day:
    __slots__ = ("held_tokens", "held_usd", "tokens", "usd")

    def __init__(self) -> None:
        self.tokens = self.held_tokens = 0
        self.usd = self.held_usd = 0.0


class Budget:
    """Per-call and per-UTC-day ceilings on tokens and USD (None: unlimited), in one process.

    The embedded default when no database is configured; with PostgreSQL the router uses
    :class:`tripwire.llm.spend.PgBudget`, the same ceilings shared by every process.
    ``routes``: a route's own day limits (``[[llm.routes]] per_day_usd``), on top of the total.

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

    def __init__(self, config: BudgetConfig | None = None, clock: Clock | None = None,
                 routes: Mapping[str, DayLimit] | None = None) -> None:
        self.config = config or BudgetConfig()
        self.routes = dict(routes or {})
        self._clock = clock or SystemClock()
        self._day = self._clock.now_ns() // NS_PER_DAY
        self._total = _Day()
        self._by_route: dict[str, _Day] = {}
        self.refusals = 0

    def _roll(self) -> None:
        day = self._clock.now_ns() // NS_PER_DAY
        if day != self._day:
            self._day = day
            for d in (self._total, *self._by_route.values()):
                d.tokens, d.usd = 0, 0.0

    def spent_today(self, route: str | None = None) -> tuple[int, float]:
        """(tokens, USD) settled today (of one route, or in total), not counting calls in
        flight."""
        self._roll()
        d = self._total if route is None else self._by_route.get(route, _Day())
        return d.tokens, d.usd

    def reserve(
        self, tokens: int, usd: float, *, call_tokens: int = 0, call_usd: float = 0.0,
        route: str | None = None,
    ) -> Reservation:
        """Hold an estimate, or raise BudgetExceeded. ``call_*``: spent earlier in this call."""
        self._roll()
        why = call_refusal(self.config, tokens, usd, call_tokens, call_usd)
        days = [("total", self._total, (self.config.per_day_tokens, self.config.per_day_usd))]
        if route is not None and route in self.routes:
            d = self._by_route.get(route)
            if d is None:
                d = self._by_route[route] = _Day()
            days.append((f"route:{route}", d, self.routes[route]))
        for scope, d, (max_tokens, max_usd) in days:
            if why is not None:
                break
            used_t = d.tokens + d.held_tokens
            used_u = d.usd + d.held_usd
            if max_tokens is not None and used_t + tokens > max_tokens:
                why = day_refusal(scope, "tokens", used_t, max_tokens, tokens)
            elif max_usd is not None and used_u + usd > max_usd:
                why = day_refusal(scope, "usd", used_u, max_usd, usd)
        if why is not None:
            self.refusals += 1
            raise BudgetExceeded(why)
        for _, d, _ in days:
            d.held_tokens += tokens
            d.held_usd += usd
        return Reservation(tokens, usd, route=route if len(days) > 1 else None)

    def settle(self, reservation: Reservation, tokens: int, usd: float) -> None:
        """Replace a reservation by what the call really used (0, 0 if it used nothing)."""
        if reservation.settled:
            return
        reservation.settled = True
        days = [self._total]
        if reservation.route is not None:
            days.append(self._by_route[reservation.route])
        for d in days:
            d.held_tokens -= reservation.tokens
            d.held_usd -= reservation.usd
        self._roll()
        for d in days:
            d.tokens += tokens
            d.usd += usd
