"""Gates: stateful circuit breakers and the halt flag, combined into one open/closed answer.

* :class:`RejectionBreaker`: ``threshold`` rejections within ``window_ns`` close the gate
  for ``cooldown_ns`` (a run of rejections means something upstream is wrong).
* :class:`PnLBreaker`: once today's PnL (realised + unrealised) reaches ``-daily_loss_limit``
  the gate stays closed until the next UTC day, even if the PnL recovers.
* :class:`HaltReader`: anything callable that returns a :class:`HaltStatus`. A read that
  raises, or returns anything else, counts as halted: fail closed.

Every answer is a :class:`GateCheck` with a reason; :func:`gate_open` combines them.
Time comes from an injected :class:`tripwire.model.Clock` (int64 ns UTC).

>>> from tripwire.model import SimClock, NS_PER_SECOND
>>> clock = SimClock()
>>> breaker = RejectionBreaker(clock, threshold=2, window_ns=60 * NS_PER_SECOND,
...     cooldown_ns=300 * NS_PER_SECOND)
>>> breaker.record_rejection(); breaker.record_rejection()
>>> gate_open(breaker, PnLBreaker(clock, daily_loss_limit=100.0), StaticHaltFlag()).open
False
>>> clock.advance(300 * NS_PER_SECOND); breaker.check().passed
True
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from tripwire.model import NS_PER_SECOND, Clock

NS_PER_DAY = 86_400 * NS_PER_SECOND


@dataclass(frozen=True, slots=True)
class GateCheck:
    """One gate's answer: ``passed`` means it lets orders through."""

    name: str
    passed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class GateDecision:
    """All gates' answers; ``open`` only when every gate passed."""

    open: bool
    checks: tuple[GateCheck, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f"{c.name}: {c.reason}" for c in self.checks if not c.passed)


def _positive_int(key: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"risk.{key} must be an integer >= 1, got {value!r}")
    return value


class RejectionBreaker:
    """Closed for ``cooldown_ns`` after ``threshold`` rejections within ``window_ns``.

    A rejection at time t counts while ``now - t < window_ns``. The gate reopens when
    ``now >= tripped_at + cooldown_ns``, with an empty history (the old rejections have
    been answered by the cooldown).
    """

    def __init__(self, clock: Clock, *, threshold: int, window_ns: int, cooldown_ns: int) -> None:
        self._clock = clock
        self.threshold = _positive_int("rejection_threshold", threshold)
        self.window_ns = _positive_int("rejection_window_ns", window_ns)
        self.cooldown_ns = _positive_int("rejection_cooldown_ns", cooldown_ns)
        # Bounded by the threshold: more than that many never matter at once.
        self._times: deque[int] = deque(maxlen=self.threshold)
        self._closed_until: int | None = None
        self._last_reason = ""

    def record_rejection(self, reason: str = "") -> None:
        """Count one rejection now; trips the breaker at the threshold."""
        now = self._clock.now_ns()
        self._reopen_if_cooled(now)
        if self._closed_until is not None:
            return  # already closed: a rejection while closed does not extend the cooldown
        self._forget_old(now)
        self._times.append(now)
        if len(self._times) >= self.threshold:
            self._closed_until = now + self.cooldown_ns
            self._last_reason = reason
            self._times.clear()

    def check(self) -> GateCheck:
        now = self._clock.now_ns()
        self._reopen_if_cooled(now)
        if self._closed_until is None:
            self._forget_old(now)
            return GateCheck("rejections", True,
                             f"{len(self._times)} of {self.threshold} rejections in the window")
        left_s = (self._closed_until - now) / NS_PER_SECOND
        last = f" (last: {self._last_reason})" if self._last_reason else ""
        return GateCheck("rejections", False,
                         f"{self.threshold} rejections within {self.window_ns / NS_PER_SECOND:g}"
                         f" s{last}; closed for another {left_s:g} s")

    def _forget_old(self, now: int) -> None:
        while self._times and now - self._times[0] >= self.window_ns:
            self._times.popleft()

    def _reopen_if_cooled(self, now: int) -> None:
        if self._closed_until is not None and now >= self._closed_until:
            self._closed_until = None
            self._last_reason = ""


def utc_day(ns: int) -> int:
    """Days since 1970-01-01 UTC of an int64 ns timestamp.

    >>> utc_day(NS_PER_DAY - 1), utc_day(NS_PER_DAY)
    (0, 1)
    """
    return ns // NS_PER_DAY


class PnLBreaker:
    """Closed for the rest of the UTC day once today's PnL is at or below -daily_loss_limit.

    Feed it with :meth:`observe` (whenever the PnL is known). A NaN or infinite PnL trips it:
    a loss we cannot measure is treated as a loss over the limit.
    """

    def __init__(self, clock: Clock, *, daily_loss_limit: float) -> None:
        if isinstance(daily_loss_limit, bool) or not isinstance(daily_loss_limit, int | float) \
                or not (daily_loss_limit > 0 and daily_loss_limit != float("inf")):
            raise ValueError(
                f"risk.daily_loss_limit must be a finite number > 0, got {daily_loss_limit!r}")
        self._clock = clock
        self.daily_loss_limit = float(daily_loss_limit)
        self._tripped_day: int | None = None
        self._tripped_pnl = 0.0

    def observe(self, pnl_today: float) -> None:
        """Record today's PnL (realised + unrealised since 00:00 UTC)."""
        day = utc_day(self._clock.now_ns())
        if self._tripped_day == day:
            return  # latched for the day: recovering intraday does not reopen it
        if not pnl_today > -self.daily_loss_limit:  # NaN lands here too
            self._tripped_day = day
            self._tripped_pnl = pnl_today

    def check(self) -> GateCheck:
        if self._tripped_day == utc_day(self._clock.now_ns()):
            return GateCheck("daily_pnl", False,
                             f"today's PnL reached {self._tripped_pnl:.6g}, limit is a loss of "
                             f"{self.daily_loss_limit:.6g}; closed until 00:00 UTC")
        return GateCheck("daily_pnl", True, f"daily loss limit {self.daily_loss_limit:.6g} "
                                            "not reached")


@dataclass(frozen=True, slots=True)
class HaltStatus:
    """What the halt flag says: halted or not, why, and who set it."""

    halted: bool
    reason: str = ""
    by: str = ""


HaltReader = Callable[[], HaltStatus]


class StaticHaltFlag:
    """An in-memory halt flag (tests, DRY_RUN demos); the store provides the durable one."""

    def __init__(self) -> None:
        self._status = HaltStatus(False)

    def __call__(self) -> HaltStatus:
        return self._status

    def halt(self, reason: str, by: str) -> None:
        self._status = HaltStatus(True, reason, by)

    def resume(self) -> None:
        self._status = HaltStatus(False)


def check_halt(read: HaltReader) -> GateCheck:
    """Read the halt flag; an error or a malformed answer counts as halted."""
    try:
        status = read()
    except Exception as exc:  # fail closed on anything the reader raises
        return GateCheck("halt", False, f"halt flag unreadable ({type(exc).__name__}: {exc}); "
                                        "treated as halted")
    if not isinstance(status, HaltStatus) or not isinstance(status.halted, bool):
        return GateCheck("halt", False, f"halt flag returned {status!r}; treated as halted")
    if status.halted:
        who = f" by {status.by}" if status.by else ""
        return GateCheck("halt", False, f"halted{who}: {status.reason or 'no reason given'}")
    return GateCheck("halt", True, "halt flag clear")


def gate_open(rejections: RejectionBreaker, pnl: PnLBreaker, halt: HaltReader) -> GateDecision:
    """Every gate's answer; open only when all pass. The halt flag is always read, so the
    decision records its state even when a breaker has already closed the gate."""
    checks = (check_halt(halt), rejections.check(), pnl.check())
    return GateDecision(all(c.passed for c in checks), checks)
