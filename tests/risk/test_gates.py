"""Gates: rejection and PnL breakers on simulated time, and the fail-closed halt flag."""

from __future__ import annotations

import pytest

from tripwire.model import NS_PER_SECOND, SimClock
from tripwire.risk.gates import (
    NS_PER_DAY,
    HaltStatus,
    PnLBreaker,
    RejectionBreaker,
    StaticHaltFlag,
    check_halt,
    gate_open,
)

S = NS_PER_SECOND
DAY0 = 20_000 * NS_PER_DAY  # a midnight UTC in 2024


def rejections(clock: SimClock, threshold: int = 3) -> RejectionBreaker:
    return RejectionBreaker(clock, threshold=threshold, window_ns=60 * S, cooldown_ns=300 * S)


def test_rejection_breaker_trips_at_threshold_within_window() -> None:
    clock = SimClock(DAY0)
    breaker = rejections(clock)
    breaker.record_rejection("stale price")
    clock.advance(10 * S)
    breaker.record_rejection("stale price")
    assert breaker.check().passed  # 2 of 3
    clock.advance(10 * S)
    breaker.record_rejection("stale price")
    check = breaker.check()
    assert not check.passed and "(last: stale price)" in check.reason
    assert "closed for another 300 s" in check.reason


def test_rejection_breaker_window_boundary() -> None:
    clock = SimClock(DAY0)
    breaker = rejections(clock, threshold=2)
    breaker.record_rejection()
    clock.advance(60 * S)  # exactly one window later: the first no longer counts
    breaker.record_rejection()
    assert breaker.check().passed
    clock.advance(60 * S - 1)  # one ns inside the window of the second
    breaker.record_rejection()
    assert not breaker.check().passed


def test_rejection_breaker_reopens_after_cooldown_with_fresh_history() -> None:
    clock = SimClock(DAY0)
    breaker = rejections(clock, threshold=2)
    breaker.record_rejection()
    breaker.record_rejection()
    clock.advance(299 * S)
    breaker.record_rejection()  # while closed: does not extend the cooldown
    clock.advance(S - 1)
    assert not breaker.check().passed  # one ns before the end of the cooldown
    clock.advance(1)
    assert breaker.check().passed
    breaker.record_rejection()  # history was cleared: 1 of 2
    assert breaker.check().passed
    breaker.record_rejection()
    assert not breaker.check().passed


@pytest.mark.parametrize("bad", [{"threshold": 0}, {"window_ns": -1}, {"cooldown_ns": 1.5}])
def test_rejection_breaker_validates(bad: dict) -> None:
    args = {"threshold": 1, "window_ns": 1, "cooldown_ns": 1, **bad}
    with pytest.raises(ValueError, match=r"risk\.rejection_"):
        RejectionBreaker(SimClock(), **args)


@pytest.mark.parametrize(("pnl", "passed"), [(-99.99, True), (-100.0, False), (-100.01, False),
                                             (float("nan"), False), (float("-inf"), False),
                                             (250.0, True)])
def test_pnl_breaker_boundary(pnl: float, passed: bool) -> None:
    breaker = PnLBreaker(SimClock(DAY0), daily_loss_limit=100.0)
    breaker.observe(pnl)
    assert breaker.check().passed is passed


def test_pnl_breaker_latches_for_the_day_and_rolls_over_at_utc_midnight() -> None:
    clock = SimClock(DAY0 + 10 * 3600 * S)
    breaker = PnLBreaker(clock, daily_loss_limit=100.0)
    breaker.observe(-150.0)
    breaker.observe(+50.0)  # recovering intraday does not reopen it
    check = breaker.check()
    assert not check.passed and "-150" in check.reason and "00:00 UTC" in check.reason
    clock.set(DAY0 + NS_PER_DAY - 1)
    assert not breaker.check().passed
    clock.advance(1)  # midnight UTC
    assert breaker.check().passed
    breaker.observe(-100.0)
    assert not breaker.check().passed


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan"), float("inf"), True])
def test_pnl_breaker_validates(bad: float) -> None:
    with pytest.raises(ValueError, match=r"risk\.daily_loss_limit"):
        PnLBreaker(SimClock(), daily_loss_limit=bad)


def test_halt_flag_fails_closed() -> None:
    flag = StaticHaltFlag()
    assert check_halt(flag).passed
    flag.halt("drawdown cap", by="watchdog")
    assert check_halt(flag).reason == "halted by watchdog: drawdown cap"
    flag.resume()
    assert check_halt(flag).passed

    def broken() -> HaltStatus:
        raise ConnectionError("database gone")

    check = check_halt(broken)
    assert not check.passed and "ConnectionError: database gone" in check.reason
    assert not check_halt(lambda: False).passed  # a bare bool is malformed, not "clear"
    assert not check_halt(lambda: None).passed
    assert not check_halt(lambda: HaltStatus("no")).passed


def test_gate_open_combines_with_reasons() -> None:
    clock = SimClock(DAY0)
    rej, pnl, flag = rejections(clock, threshold=1), PnLBreaker(clock, daily_loss_limit=10.0), \
        StaticHaltFlag()
    decision = gate_open(rej, pnl, flag)
    assert decision.open and decision.reasons == ()
    assert [c.name for c in decision.checks] == ["halt", "rejections", "daily_pnl"]
    rej.record_rejection("bad")
    pnl.observe(-10.0)
    flag.halt("operator", by="alice")
    decision = gate_open(rej, pnl, flag)
    assert not decision.open
    assert [r.split(":")[0] for r in decision.reasons] == ["halt", "rejections", "daily_pnl"]
