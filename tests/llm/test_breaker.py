"""Circuit breaker transitions on an injected clock."""

from __future__ import annotations

import pytest

from tripwire.llm.breaker import CircuitBreaker
from tripwire.model import NS_PER_SECOND, SimClock


def breaker(threshold: int = 3, cooldown_s: float = 30.0):
    clock = SimClock(1_000 * NS_PER_SECOND)
    changes: list[tuple[str, str, str]] = []
    b = CircuitBreaker(threshold, cooldown_s, clock, name="r",
                       on_change=lambda *t: changes.append(t))
    return b, clock, changes


def test_opens_after_n_consecutive_failures_only():
    b, _, _ = breaker(threshold=3)
    b.record_failure()
    b.record_failure()
    b.record_success()  # a success resets the count
    b.record_failure()
    b.record_failure()
    assert b.state == "closed" and b.acquire()
    b.record_failure()
    assert b.state == "open" and not b.acquire()
    assert b.consecutive_failures == 3


def test_open_becomes_half_open_after_the_cooldown_on_the_injected_clock():
    b, clock, changes = breaker(threshold=1, cooldown_s=30)
    b.record_failure()
    clock.advance(29 * NS_PER_SECOND)
    assert b.state == "open" and b.retry_in_s() == pytest.approx(1.0)
    clock.advance(NS_PER_SECOND)
    assert b.state == "half_open" and b.retry_in_s() == 0.0
    assert changes == [("r", "closed", "open"), ("r", "open", "half_open")]


def test_half_open_grants_exactly_one_trial():
    b, clock, _ = breaker(threshold=1, cooldown_s=1)
    b.record_failure()
    clock.advance(NS_PER_SECOND)
    assert [b.acquire() for _ in range(4)] == [True, False, False, False]


def test_trial_success_closes():
    b, clock, changes = breaker(threshold=1, cooldown_s=1)
    b.record_failure()
    clock.advance(NS_PER_SECOND)
    assert b.acquire()
    b.record_success()
    assert b.state == "closed" and b.consecutive_failures == 0
    assert [c[1:] for c in changes] == [
        ("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert all(b.acquire() for _ in range(3))


def test_trial_failure_reopens_for_a_fresh_cooldown():
    b, clock, _ = breaker(threshold=1, cooldown_s=10)
    b.record_failure()
    clock.advance(10 * NS_PER_SECOND)
    assert b.acquire()
    clock.advance(3 * NS_PER_SECOND)  # the trial took 3 s and failed
    b.record_failure()
    assert b.state == "open"
    clock.advance(9 * NS_PER_SECOND)
    assert b.state == "open"  # the cooldown restarted at the failure
    clock.advance(NS_PER_SECOND)
    assert b.state == "half_open" and b.acquire()


def test_released_trial_can_be_taken_again():
    b, clock, _ = breaker(threshold=1, cooldown_s=1)
    b.record_failure()
    clock.advance(NS_PER_SECOND)
    assert b.acquire() and not b.acquire()
    b.release()  # e.g. the budget refused the call before it was sent
    assert b.state == "half_open" and b.acquire()


def test_transitions_are_timestamped_and_bounded():
    b, clock, _ = breaker(threshold=1, cooldown_s=1)
    for _ in range(100):
        b.record_failure()
        clock.advance(NS_PER_SECOND)
        b.acquire()
        b.record_success()
    assert len(b.transitions) == 64
    ts = [t[0] for t in b.transitions]
    assert ts == sorted(ts)
    assert "closed" in repr(b)


@pytest.mark.parametrize("threshold,cooldown", [(0, 1.0), (1, 0.0), (1, -5.0)])
def test_bad_settings_are_refused(threshold, cooldown):
    with pytest.raises(ValueError):
        CircuitBreaker(threshold, cooldown, SimClock())
