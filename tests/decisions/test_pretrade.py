"""tripwire.decisions.pretrade: the rules before an order leaves, fail closed."""

from __future__ import annotations

from tripwire.decisions.factcheck import Fact, FactCheck
from tripwire.decisions.pretrade import (
    check_approval,
    check_facts,
    check_halt,
    needs_approval,
)
from tripwire.risk.gates import HaltStatus
from tripwire.store.decisions import Approval


def test_halt_refuses_and_an_unreadable_flag_reads_as_halted():
    assert check_halt(HaltStatus(False)).passed
    halted = check_halt(HaltStatus(True, "WD_DRAWDOWN: 6 %"))
    assert (halted.rule, halted.reason) == ("halt", "halted: WD_DRAWDOWN: 6 %")
    assert check_halt(None).reason == "halt flag unreadable"


def test_only_two_phase_needs_an_approval():
    assert needs_approval("TWO_PHASE")
    assert not needs_approval("DIRECT") and not needs_approval("DRY_RUN")


def approval(status: str, h: str) -> Approval:
    return Approval("d1", status, h, "BUY 1 BTCUSDT", 0, 10)


def test_the_approval_must_be_approved_and_of_this_exact_hash():
    assert check_approval(approval("approved", "h1"), "h1").passed
    for a in (None, approval("pending", "h1"), approval("approved", "h0"),
              approval("rejected", "h1")):
        c = check_approval(a, "h1")
        assert c.reason == "no approval of this proposal hash", a


def test_changed_facts_refuse_naming_each():
    ok = FactCheck(True, (Fact("price", True, "fine"),))
    assert check_facts(ok).passed
    bad = FactCheck(False, (Fact("price", False, "moved 3 %"), Fact("halt", True, "clear")))
    c = check_facts(bad)
    assert c.reason == "facts changed since signing: price: moved 3 %"
    assert c.saw == {"facts": ["price", "halt"]}
