"""Circuit breaker: stop calling a route that keeps failing, probe it again after a cooldown.

closed -> open after ``failure_threshold`` consecutive failed provider calls; open ->
half-open once ``cooldown_s`` has passed on the injected clock; half-open lets exactly ONE
trial call through (concurrent callers are refused and fail over); the trial's success
closes the breaker, its failure reopens it for another cooldown.

A caller asks :meth:`CircuitBreaker.acquire` before each provider call and then reports
:meth:`record_success` or :meth:`record_failure`; a caller that got the half-open trial but
never made the call (refused by a budget, throttled, cancelled) gives it back with
:meth:`release`, so the route is not stuck half-open.

>>> from tripwire.model import SimClock
>>> clock = SimClock()
>>> b = CircuitBreaker(failure_threshold=2, cooldown_s=10, clock=clock)
>>> b.record_failure(); b.record_failure(); b.state
'open'
>>> b.acquire()
False
>>> clock.advance(10 * 10**9); b.state
'half_open'
>>> b.acquire(), b.acquire()  # one trial only
(True, False)
>>> b.record_success(); b.state
'closed'
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Literal

from tripwire.model import NS_PER_SECOND, Clock, SystemClock

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """One route's breaker. Not thread-safe: used from one event loop, without awaits inside."""

    __slots__ = (
        "_clock",
        "_cooldown_ns",
        "_failures",
        "_on_change",
        "_opened_ns",
        "_state",
        "_trial_out",
        "failure_threshold",
        "name",
        "transitions",
    )

    def __init__(
        self,
        failure_threshold: int,
        cooldown_s: float,
        clock: Clock | None = None,
        *,
        name: str = "",
        on_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if not cooldown_s > 0:
            raise ValueError(f"cooldown_s must be > 0, got {cooldown_s}")
        self.failure_threshold = failure_threshold
        self._cooldown_ns = int(cooldown_s * NS_PER_SECOND)
        self._clock = clock or SystemClock()
        self.name = name
        self._on_change = on_change
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_ns = 0
        self._trial_out = False
        # The last transitions (ts_ns, from, to), for operators and tests; bounded.
        self.transitions: deque[tuple[int, BreakerState, BreakerState]] = deque(maxlen=64)

    @property
    def state(self) -> BreakerState:
        """The state the next caller sees (an open breaker past its cooldown is half-open)."""
        self._tick()
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_in_s(self) -> float:
        """Seconds until an open breaker allows a trial (0 when not open)."""
        if self.state != "open":
            return 0.0
        return (self._opened_ns + self._cooldown_ns - self._clock.now_ns()) / NS_PER_SECOND

    def acquire(self) -> bool:
        """May a provider call go through now? In half-open, grants the single trial."""
        if self._state == "closed":
            return True
        self._tick()
        if self._state == "half_open" and not self._trial_out:
            self._trial_out = True
            return True
        return False

    def release(self) -> None:
        """Give back an unused half-open trial (the call was never made)."""
        self._trial_out = False

    def record_success(self) -> None:
        self._failures = 0
        self._trial_out = False
        if self._state != "closed":
            self._move("closed")

    def record_failure(self) -> None:
        self._failures += 1
        if self._state == "half_open":
            self._trial_out = False
            self._open()
        elif self._state == "closed" and self._failures >= self.failure_threshold:
            self._open()

    def _open(self) -> None:
        self._opened_ns = self._clock.now_ns()
        self._move("open")

    def _tick(self) -> None:
        if (
            self._state == "open"
            and self._clock.now_ns() - self._opened_ns >= self._cooldown_ns
        ):
            self._trial_out = False
            self._move("half_open")

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        self.transitions.append((self._clock.now_ns(), old, new))
        level = logging.WARNING if new == "open" else logging.INFO
        log.log(level, "llm breaker %s: %s -> %s (consecutive failures %d)",
                self.name or "?", old, new, self._failures)
        if self._on_change is not None:
            self._on_change(self.name, old, new)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, {self.state}, failures={self._failures})"
