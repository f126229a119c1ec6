"""How a decision ends. Only EXECUTED sent an order; every other outcome sent none.

>>> Outcome.EXECUTED.sent_order, Outcome.REJECTED.sent_order
(True, False)
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    EXECUTED = "EXECUTED"  # three signatures (and an approval in TWO_PHASE): order sent
    DRY_RUN = "DRY_RUN"  # signed, but the safety mode sends no orders
    HOLD = "HOLD"  # the strategist proposed nothing
    REJECTED = "REJECTED"  # a signer vetoed, a check failed, or anything went wrong
    DECLINED = "DECLINED"  # a person rejected it (TWO_PHASE)
    EXPIRED = "EXPIRED"  # the approval came too late (TWO_PHASE)

    @property
    def sent_order(self) -> bool:
        return self is Outcome.EXECUTED


AWAITING_APPROVAL = "AWAITING_APPROVAL"  # the status of a decision paused for a person
