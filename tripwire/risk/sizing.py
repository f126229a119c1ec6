"""Position sizing: risk budget from the stop distance, scaled by fractional Kelly, capped
by every limit.

1. Risk budget: the quantity that loses ``max_risk_per_trade_pct`` of equity if the stop is
   hit, ``equity x pct / 100 / |price - stop|``.
2. Confidence: full Kelly for a bet won with probability ``p = confidence`` that pays
   ``payoff_ratio`` times what it risks is ``f* = p - (1 - p) / payoff_ratio``; the budget is
   scaled by ``kelly_fraction x f*``, clamped to [0, 1]. So a confidence at or below
   break-even sizes 0, and even certainty uses only ``kelly_fraction`` of the budget
   (half-Kelly by default: full Kelly is too aggressive when ``p`` is an estimate).
3. The result is floored to ``limits.quantity_step`` and passed through
   :func:`tripwire.risk.limits.check_all`, which may only shrink or veto it.

Signs: ``quantity`` is always >= 0; ``signed_quantity`` is +quantity for a BUY and
-quantity for a SELL. A BUY's stop must be below the price, a SELL's above it.
Any zero, negative, NaN or infinite input gives size 0 with a reason, never an exception.

>>> from tripwire.model import Side
>>> from tripwire.risk.limits import RiskLimits, PortfolioState
>>> limits = RiskLimits(max_order_notional=1e6, max_daily_orders=10,
...     max_position_per_symbol=1e6, max_gross_exposure=1e6, allowed_symbols={"ETHUSDT"},
...     max_risk_per_trade_pct=1.0, max_drawdown_pct=20.0, quantity_step=0.001)
>>> r = size_position("ETHUSDT", Side.SELL, price=2_000.0, stop=2_050.0,
...     confidence=0.75, portfolio=PortfolioState(equity=50_000.0), limits=limits)
>>> r.risk_quantity, r.kelly_multiplier, r.quantity, r.signed_quantity
(10.0, 0.25, 2.5, -2.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tripwire.model import Side
from tripwire.risk.limits import (
    PortfolioState,
    ProposedOrder,
    RiskDecision,
    RiskLimits,
    check_all,
    floor_to_step,
    stop_distance,
)

DEFAULT_KELLY_FRACTION = 0.5


@dataclass(frozen=True, slots=True)
class SizeResult:
    """A position size and how it was reached; ``decision`` is None when sizing stopped
    before the limits ran (bad inputs, or a size of 0 already)."""

    quantity: float
    side: Side
    risk_quantity: float
    kelly_multiplier: float
    reason: str
    decision: RiskDecision | None = None

    @property
    def signed_quantity(self) -> float:
        return self.quantity * self.side.sign


def kelly_multiplier(confidence: float, payoff_ratio: float = 1.0,
                     kelly_fraction: float = DEFAULT_KELLY_FRACTION) -> float:
    """Fractional Kelly stake in [0, 1]; non-finite or out-of-range inputs give 0.

    >>> kelly_multiplier(0.5), kelly_multiplier(1.0), kelly_multiplier(0.8, payoff_ratio=4.0)
    (0.0, 0.5, 0.375)
    """
    if not (_finite(confidence) and _finite(payoff_ratio) and _finite(kelly_fraction)):
        return 0.0
    if not (0.0 <= confidence <= 1.0 and payoff_ratio > 0 and 0.0 < kelly_fraction <= 1.0):
        return 0.0
    full = confidence - (1.0 - confidence) / payoff_ratio
    return min(1.0, max(0.0, kelly_fraction * full))


def risk_budget_quantity(equity: float, price: float, stop: float, side: Side,
                         risk_pct: float) -> float:
    """Units that lose ``risk_pct`` % of equity at the stop; 0 for any invalid input.

    >>> risk_budget_quantity(10_000.0, 100.0, 95.0, Side.BUY, 1.0)
    20.0
    """
    if not all(_finite(x) and x > 0 for x in (equity, price, stop, risk_pct)):
        return 0.0
    distance = stop_distance(side, price, stop)
    if not distance > 0:
        return 0.0
    return equity * risk_pct / 100.0 / distance


def size_position(symbol: str, side: Side, *, price: float, stop: float,
                  confidence: float, portfolio: PortfolioState, limits: RiskLimits,
                  payoff_ratio: float = 1.0,
                  kelly_fraction: float = DEFAULT_KELLY_FRACTION) -> SizeResult:
    """The quantity to trade, after the risk budget, fractional Kelly and every limit."""
    problem = _input_problem(side, price, stop, confidence, portfolio.equity, payoff_ratio,
                             kelly_fraction)
    if problem:
        return SizeResult(0.0, _side_or_buy(side), 0.0, 0.0, problem)
    budget = risk_budget_quantity(portfolio.equity, price, stop, side,
                                  limits.max_risk_per_trade_pct)
    multiplier = kelly_multiplier(confidence, payoff_ratio, kelly_fraction)
    if multiplier <= 0:
        return SizeResult(0.0, side, budget, multiplier,
                          f"confidence {confidence:g} is at or below Kelly break-even for "
                          f"payoff ratio {payoff_ratio:g}")
    quantity = floor_to_step(budget * multiplier, limits.quantity_step)
    if quantity <= 0:
        return SizeResult(0.0, side, budget, multiplier,
                          f"size {budget * multiplier:.6g} is below one quantity step "
                          f"({limits.quantity_step:g})")
    order = ProposedOrder(symbol, side, quantity, price, stop, confidence)
    decision = check_all(order, portfolio, limits)
    if not decision.approved:
        return SizeResult(0.0, side, budget, multiplier,
                          "vetoed by limits: " + "; ".join(decision.reasons), decision)
    reason = (f"risk budget {budget:.6g} x Kelly {multiplier:.4g} = {quantity:.10g}"
              + (f", capped to {decision.quantity:.10g} by limits" if decision.quantity < quantity
                 else ""))
    return SizeResult(decision.quantity, side, budget, multiplier, reason, decision)


def _input_problem(side: object, price: float, stop: float, confidence: float, equity: float,
                   payoff_ratio: float, kelly_fraction: float) -> str:
    if not (isinstance(side, Side) and side.is_order_side):
        return f"side must be BUY or SELL, got {side!r}"
    named = {"price": price, "stop": stop, "equity": equity, "payoff_ratio": payoff_ratio,
             "kelly_fraction": kelly_fraction}
    for name, value in named.items():
        if not (_finite(value) and value > 0):
            return f"{name} must be a finite number > 0, got {value!r}"
    if not (_finite(confidence) and 0.0 <= confidence <= 1.0):
        return f"confidence must be in [0, 1], got {confidence!r}"
    if kelly_fraction > 1.0:
        return f"kelly_fraction must be <= 1, got {kelly_fraction!r}"
    if not stop_distance(side, price, stop) > 0:
        where = "below" if side is Side.BUY else "above"
        return f"a {side.name}'s stop must be {where} the price ({stop!r} vs {price!r})"
    return ""


def _side_or_buy(side: object) -> Side:
    # SizeResult needs a side even when the given one was bogus; its quantity is 0 anyway.
    return side if isinstance(side, Side) and side.is_order_side else Side.BUY


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
