"""tripwire.decisions.sizing: the risk gate's sizing, as a pure function with a record."""

from __future__ import annotations

import pytest

from tripwire.decisions.proposal import Proposal
from tripwire.decisions.sizing import (
    MAX_REVISIONS,
    REVISION_REASON,
    ProposalIds,
    recheck,
    shrink_to_cap,
    size_fraction,
    size_proposal,
    within_cap,
)
from tripwire.llm.schemas import Action, StrategistProposal
from tripwire.model import Side
from tripwire.risk.limits import PortfolioState, RiskLimits

LIMITS = RiskLimits(max_order_notional=10_000.0, max_daily_orders=10,
                    max_position_per_symbol=5_000.0, max_gross_exposure=20_000.0,
                    allowed_symbols=frozenset({"BTCUSDT"}), max_risk_per_trade_pct=1.0,
                    max_drawdown_pct=10.0, quantity_step=0.001)
BOOK = PortfolioState(equity=10_000.0)
IDS = ProposalIds("d1", "i1", "v1", verdict_ts_ns=5, created_ns=7)


def strategist(action="BUY", size=1.0, stop=95.0, limit=None, confidence=0.8):
    return StrategistProposal(action=Action(action), symbol="BTCUSDT", size=size,
                              limit_price=limit, stop_loss=stop, take_profit=None,
                              rationale="test", confidence=confidence, source="rules")


def size(sp, latest=100.0, incident=None, book=BOOK):
    return size_proposal(sp, IDS, latest_price=latest, incident_price=incident,
                         portfolio=book, limits=LIMITS, payoff_ratio=1.0, kelly_fraction=0.5)


def test_a_sized_buy_is_a_revision_0_proposal_with_the_ids_and_the_record():
    r = size(strategist())
    assert r.quantity > 0 and r.proposal is not None
    p = r.proposal
    assert (p.decision_id, p.incident_id, p.verdict_id, p.verdict_ts_ns, p.created_ns) == \
        ("d1", "i1", "v1", 5, 7)
    assert (p.side, p.quantity, p.order_type, p.reference_price, p.revision) == \
        ("BUY", r.quantity, "market", 100.0, 0)
    assert r.inputs["reference_price"] == 100.0 and r.inputs["side"] == "BUY"
    assert r.bound_by == "sizing" and r.decision is not None and r.decision.approved


def test_the_strategists_size_caps_and_is_named_as_the_bound():
    small = size(strategist(size=0.01))  # 1 % of 5,000 at 100 = 0.5 units
    assert small.quantity == pytest.approx(0.5)
    assert small.bound_by == "strategist size"
    assert "capped to 0.5 by the strategist's size 0.01" in small.reason


def test_no_reference_price_means_no_order():
    r = size(strategist(), latest=None, incident=None)
    assert (r.quantity, r.proposal, r.bound_by, r.reason) == \
        (0.0, None, "no reference price", "no reference price")


def test_the_reference_price_is_the_limit_then_the_latest_then_the_incident():
    assert size(strategist(limit=99.0, stop=94.0)).inputs["reference_price"] == 99.0
    assert size(strategist(), latest=None, incident=98.0).inputs["reference_price"] == 98.0


def test_a_sell_is_sized_on_its_own_side():
    r = size(strategist(action="SELL", stop=105.0))
    assert r.proposal is not None and r.proposal.side == "SELL"
    assert Side.of(r.proposal.side) is Side.SELL


def test_a_stop_on_the_wrong_side_sizes_to_nothing():
    r = size(strategist(stop=105.0))  # a BUY's stop above the price
    assert r.quantity == 0.0 and r.proposal is None


def proposal(qty: float) -> Proposal:
    return Proposal("d1", "i1", "v1", "BTCUSDT", "BUY", qty, "market", None, 95.0, None,
                    reference_price=100.0, position_qty=0.0, verdict_ts_ns=5, created_ns=7,
                    revision=1)


def test_recheck_passes_a_revision_within_the_limits_unchanged():
    p = proposal(1.0)
    r = recheck(p, BOOK, LIMITS)
    assert (r.quantity, r.proposal, r.bound_by, r.reason) == (1.0, p, "limits", REVISION_REASON)


def test_recheck_shrinks_a_revision_the_limits_cut_and_never_grows_it():
    r = recheck(proposal(200.0), BOOK, LIMITS)  # 20,000 notional > 5,000 per symbol
    assert 0 < r.quantity < 200.0
    assert r.proposal is not None and r.proposal.quantity == r.quantity
    assert r.proposal.revision == 2  # shrunk: a new revision, signed again


def test_the_double_checkers_cap_shrinks_to_a_new_revision():
    p = proposal(10.0)  # 1,000 notional = 0.2 of the 5,000 per symbol
    frac = size_fraction(p, LIMITS)
    assert frac == pytest.approx(0.2)
    r = shrink_to_cap(p, frac, 0.1, LIMITS)
    assert r.quantity == pytest.approx(5.0) and r.bound_by == "double-checker cap"
    assert r.proposal is not None and r.proposal.revision == p.revision + 1
    assert r.reason == "AGREE at most size 0.1 (proposal 0.2): 5"
    assert within_cap(size_fraction(r.proposal, LIMITS), 0.1)
    assert not within_cap(0.2, 0.1)


def test_a_cap_that_leaves_nothing_or_too_many_revisions_is_no_proposal():
    p = proposal(10.0)
    nothing = shrink_to_cap(p, 0.2, 1e-9, LIMITS)
    assert (nothing.proposal, nothing.reason) == (None, "cap 1e-09 leaves nothing to trade")
    last = Proposal.from_dict({**p.to_dict(), "revision": MAX_REVISIONS})
    spent = shrink_to_cap(last, 0.2, 0.1, LIMITS)
    assert (spent.proposal, spent.bound_by, spent.reason) == (None, "revisions",
                                                              "too many revisions")
