"""Sizing a strategist's proposal: a pure function returning an explainable record.

The risk gate (graphs/signoff.py) only routes: it reads the portfolio and the latest price,
calls :func:`size_proposal` (first pass) or :func:`recheck` (a revision), and signs or vetoes
on the record. The record says what went in, which limit bound the quantity, and what came
out, so a decision can be explained without re-running it.

Order of the rules (each may only make the quantity smaller):

1. a reference price: the strategist's limit price, else the latest traded price, else the
   incident's price; none (or not > 0) means no order ("no reference price");
2. :func:`tripwire.risk.sizing.size_position` (risk budget to the stop, Kelly-scaled by the
   confidence, then every limit of :mod:`tripwire.risk.limits`);
3. the strategist's own ``size`` (a fraction of ``max_position_per_symbol``) as a cap, floored
   to the quantity step; when the cap binds, the limits are checked again at the smaller
   quantity (a smaller order can still fail a notional minimum);
4. no stop-loss means no proposal: every order carries a stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tripwire.decisions.proposal import Proposal
from tripwire.model import Side
from tripwire.risk.limits import (
    PortfolioState,
    ProposedOrder,
    RiskDecision,
    RiskLimits,
    check_all,
    floor_to_step,
)
from tripwire.risk.sizing import size_position


@dataclass(frozen=True, slots=True)
class Sizing:
    """What sizing did: its inputs, the rule that bound the quantity, and the result.

    ``proposal`` is None when nothing may be traded (``quantity`` 0); ``reason`` is the
    sentence the risk gate signs with; ``bound_by`` names the binding rule: ``"no reference
    price"``, ``"sizing"`` (the risk budget / Kelly / limits of size_position), ``"strategist
    size"``, ``"no stop-loss"``, or ``"limits"`` (a revision's re-check).
    """

    inputs: dict[str, Any]
    quantity: float
    bound_by: str
    reason: str
    decision: RiskDecision | None
    proposal: Proposal | None = None


@dataclass(frozen=True, slots=True)
class ProposalIds:
    """Who the proposal belongs to and when it is made (from the graph's state)."""

    decision_id: str
    incident_id: str
    verdict_id: str
    verdict_ts_ns: int
    created_ns: int


def reference_price(limit_price: float | None, latest_price: float | None,
                    incident_price: float | None) -> float | None:
    """The price sizing reasons from: the limit, else the latest trade, else the incident's.

    >>> reference_price(None, 101.0, 99.0), reference_price(100.0, 101.0, None)
    (101.0, 100.0)
    """
    return limit_price or (latest_price if latest_price is not None else incident_price)


def size_proposal(sp: Any, ids: ProposalIds, *, latest_price: float | None,
                  incident_price: float | None, portfolio: PortfolioState,
                  limits: RiskLimits, payoff_ratio: float, kelly_fraction: float) -> Sizing:
    """Size a :class:`~tripwire.llm.schemas.StrategistProposal` (BUY or SELL) into a
    :class:`Proposal` at revision 0, or say why nothing may be traded."""
    ref = reference_price(sp.limit_price, latest_price, incident_price)
    inputs = {"symbol": sp.symbol, "side": sp.action.value, "reference_price": ref,
              "stop_loss": sp.stop_loss, "confidence": sp.confidence,
              "strategist_size": sp.size, "equity": portfolio.equity}
    if ref is None or not ref > 0:
        return Sizing(inputs, 0.0, "no reference price", "no reference price", None)
    side = sp.action.side
    sized = size_position(sp.symbol, side, price=ref, stop=sp.stop_loss,
                          confidence=sp.confidence, portfolio=portfolio, limits=limits,
                          payoff_ratio=payoff_ratio, kelly_fraction=kelly_fraction)
    cap = floor_to_step(sp.size * limits.max_position_per_symbol / ref, limits.quantity_step)
    qty = min(sized.quantity, cap)
    capped = 0 < cap < sized.quantity
    bound_by = "strategist size" if capped else "sizing"
    reason = sized.reason + (f"; capped to {qty:.10g} by the strategist's size {sp.size:g}"
                             if capped else "")
    decision = sized.decision
    if qty > 0 and decision is not None and qty < decision.quantity:
        decision = check_all(ProposedOrder(sp.symbol, side, qty, ref, sp.stop_loss,
                                           sp.confidence), portfolio, limits)
        qty = decision.quantity if decision.approved else 0.0
    if qty <= 0:
        return Sizing(inputs, 0.0, bound_by, reason, decision)
    if sp.stop_loss is None:
        return Sizing(inputs, 0.0, "no stop-loss", reason, decision)
    p = Proposal(
        ids.decision_id, ids.incident_id, ids.verdict_id, sp.symbol, sp.action.value, qty,
        "limit" if sp.limit_price else "market", sp.limit_price, sp.stop_loss,
        sp.take_profit, reference_price=ref, position_qty=portfolio.position_qty(sp.symbol),
        verdict_ts_ns=ids.verdict_ts_ns, created_ns=ids.created_ns, confidence=sp.confidence)
    return Sizing(inputs, qty, bound_by, reason, decision, p)


REVISION_REASON = "revision: limits re-checked only"
MAX_REVISIONS = 3  # shrinks per decision; each is strictly smaller, this bounds the loop
_CAP_EPS = 1e-9  # relative: a revision sized exactly at the cap passes despite float error


def size_fraction(p: Proposal, limits: RiskLimits) -> float:
    """The proposal's notional as a fraction of ``max_position_per_symbol`` (what the
    double-checker sees and caps)."""
    return p.notional / limits.max_position_per_symbol


def within_cap(fraction: float, cap: float) -> bool:
    """Whether a revision respects the size cap the double-checker set."""
    return fraction <= cap * (1 + _CAP_EPS)


def shrink_to_cap(p: Proposal, fraction: float, cap: float, limits: RiskLimits) -> Sizing:
    """The double-checker's "at most ``cap``": ``p`` scaled down to it, floored to the
    quantity step, as the next revision; nothing when that leaves no quantity or the
    revisions (:data:`MAX_REVISIONS`) are used up."""
    qty = floor_to_step(p.quantity * cap / fraction, limits.quantity_step)
    inputs = {"symbol": p.symbol, "quantity": p.quantity, "size_seen": fraction, "cap": cap,
              "revision": p.revision}
    if qty <= 0:
        return Sizing(inputs, 0.0, "double-checker cap", f"cap {cap:g} leaves nothing to trade",
                      None)
    if p.revision + 1 > MAX_REVISIONS:
        return Sizing(inputs, 0.0, "revisions", "too many revisions", None)
    return Sizing(inputs, qty, "double-checker cap",
                  f"AGREE at most size {cap:g} (proposal {fraction:.4g}): {qty:.10g}", None,
                  p.shrunk(qty))


def recheck(p: Proposal, portfolio: PortfolioState, limits: RiskLimits) -> Sizing:
    """A revision (already sized, then shrunk) against the limits only; never larger.

    The proposal in the record is ``p`` shrunk to what the limits allow (itself when they
    allow all of it, None when they allow nothing).
    """
    order = ProposedOrder(p.symbol, Side.of(p.side), p.quantity,
                          p.limit_price or p.reference_price, p.stop_loss, p.confidence)
    decision = check_all(order, portfolio, limits)
    qty = decision.quantity if decision.approved else 0.0
    inputs = {"symbol": p.symbol, "side": p.side, "quantity": p.quantity,
              "reference_price": order.price, "stop_loss": p.stop_loss,
              "revision": p.revision}
    if qty <= 0:
        return Sizing(inputs, 0.0, "limits", REVISION_REASON, decision, p)
    return Sizing(inputs, qty, "limits", REVISION_REASON, decision,
                  p.shrunk(qty) if qty < p.quantity else p)


__all__ = [
    "MAX_REVISIONS",
    "REVISION_REASON",
    "ProposalIds",
    "Sizing",
    "recheck",
    "reference_price",
    "shrink_to_cap",
    "size_fraction",
    "size_proposal",
    "within_cap",
]
