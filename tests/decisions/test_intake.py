"""tripwire.decisions.intake: one incident per symbol per cool-down, bounded, counted."""

from __future__ import annotations

import pytest

from tripwire.decisions.intake import ACCEPTED, COALESCED, OVERLOAD, IncidentIntake


def test_a_trip_inside_the_cooldown_joins_the_open_incident():
    intake = IncidentIntake(cooldown_ns=60, max_pending=10)
    assert intake.offer("a", "BTC", 0).status == ACCEPTED
    joined = intake.offer("b", "BTC", 59)
    assert (joined.status, joined.into) == (COALESCED, "a")
    assert intake.offer("c", "BTC", 60).status == ACCEPTED  # the window is half-open
    assert intake.offer("d", "ETH", 1).status == ACCEPTED  # per symbol
    assert [intake.take() for _ in range(4)] == ["a", "c", "d", None]


def test_a_full_queue_refuses_as_overload_and_counts_everything():
    intake = IncidentIntake(cooldown_ns=0, max_pending=2)
    statuses = [intake.offer(str(i), f"S{i}", i).status for i in range(4)]
    assert statuses == [ACCEPTED, ACCEPTED, OVERLOAD, OVERLOAD]
    assert len(intake) == 2
    assert intake.counts == {ACCEPTED: 2, OVERLOAD: 2}
    intake.take()
    assert intake.offer("4", "S4", 4).status == ACCEPTED  # room again


def test_an_earlier_event_time_is_not_inside_the_cooldown():
    intake = IncidentIntake(cooldown_ns=60, max_pending=10)
    intake.offer("a", "BTC", 100)
    assert intake.offer("b", "BTC", 50).status == ACCEPTED  # out of order: not coalesced


@pytest.mark.parametrize(("cooldown", "pending"), [(-1, 1), (0, 0)])
def test_bad_bounds_are_refused(cooldown, pending):
    with pytest.raises(ValueError, match="cooldown_ns must be >= 0 and max_pending >= 1"):
        IncidentIntake(cooldown_ns=cooldown, max_pending=pending)
