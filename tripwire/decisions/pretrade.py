"""The last rules before an order leaves: pure checks returning an explainable record.

The sign-off graph's ``execute`` node reads the halt flag, the approval and the facts (in
that order, each only if the rule before passed: a halted system asks nothing more) and
asks these functions whether the order may go; it never decides itself. Each returns a
:class:`PreTrade` naming the rule, what it saw, and why it refused ("" when it passed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tripwire.decisions.factcheck import FactCheck
from tripwire.risk.modes import SafetyMode

HALT, APPROVAL, FACTS = "halt", "approval", "facts"


@dataclass(frozen=True, slots=True)
class PreTrade:
    """One pre-trade rule's answer: ``rule``, what it ``saw``, and ``reason`` ("" = pass)."""

    rule: str
    saw: dict[str, Any]
    reason: str = ""

    @property
    def passed(self) -> bool:
        return not self.reason


def check_halt(halt: Any) -> PreTrade:
    """No order while halted; an unreadable flag (None) reads as halted (fail closed).

    >>> check_halt(None).reason
    'halt flag unreadable'
    """
    if halt is None:
        return PreTrade(HALT, {"halt": None}, "halt flag unreadable")
    saw = {"halted": halt.halted, "reason": halt.reason}
    return PreTrade(HALT, saw, ("halted: " + halt.reason) if halt.halted else "")


def needs_approval(mode: str | SafetyMode) -> bool:
    """TWO_PHASE orders need an operator's approval of the exact proposal hash."""
    return SafetyMode(mode) is SafetyMode.TWO_PHASE


def check_approval(approval: Any, proposal_hash: str) -> PreTrade:
    """A TWO_PHASE order needs an *approved* approval of *this* proposal hash."""
    saw = {"status": getattr(approval, "status", None),
           "approved_hash": getattr(approval, "proposal_hash", None), "hash": proposal_hash}
    ok = (approval is not None and approval.status == "approved"
          and approval.proposal_hash == proposal_hash)
    return PreTrade(APPROVAL, saw, "" if ok else "no approval of this proposal hash")


def check_facts(fc: FactCheck) -> PreTrade:
    """The facts the proposal was signed on must still hold at the moment of sending."""
    saw = {"facts": [f.name for f in fc.facts]}
    return PreTrade(FACTS, saw,
                    "" if fc.passed else "facts changed since signing: " + "; ".join(fc.reasons))


__all__ = ["APPROVAL", "FACTS", "HALT", "PreTrade", "check_approval", "check_facts",
           "check_halt", "needs_approval"]
