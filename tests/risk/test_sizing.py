"""Position sizing: risk budget, fractional Kelly, limit caps, signs and bad inputs."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tripwire.model import Side
from tripwire.risk.limits import PortfolioState, Position, RiskLimits
from tripwire.risk.sizing import kelly_multiplier, risk_budget_quantity, size_position

BUY, SELL = Side.BUY, Side.SELL
LIMITS = RiskLimits(
    max_order_notional=1e9, max_daily_orders=100, max_position_per_symbol=1e9,
    max_gross_exposure=1e9, allowed_symbols={"BTCUSDT"}, max_risk_per_trade_pct=1.0,
    max_drawdown_pct=20.0, quantity_step=0.001,
)
EQUITY = PortfolioState(equity=10_000.0)


def size(side: Side = BUY, price: float = 100.0, stop: float = 95.0,
         confidence: float = 1.0, portfolio: PortfolioState = EQUITY,
         limits: RiskLimits = LIMITS, **kw: float):
    return size_position("BTCUSDT", side, price=price, stop=stop, confidence=confidence,
                         portfolio=portfolio, limits=limits, **kw)


def test_hand_computed_buy_and_sell() -> None:
    # 1 % of 10 000 = 100 at risk; 5 per unit to the stop -> 20 units; half-Kelly at p=1.
    buy = size(BUY, stop=95.0)
    assert (buy.risk_quantity, buy.kelly_multiplier, buy.quantity) == (20.0, 0.5, 10.0)
    assert buy.signed_quantity == 10.0 and buy.decision is not None and buy.decision.approved
    sell = size(SELL, stop=105.0)
    assert (sell.quantity, sell.signed_quantity) == (10.0, -10.0)
    # p = 0.75, payoff 1: f* = 0.5, half of it = 0.25 -> 5 units
    assert size(confidence=0.75).quantity == 5.0
    # full Kelly with payoff 3: f* = 0.75 - 0.25/3 = 2/3 -> 13.333 floored to the step
    assert size(confidence=0.75, payoff_ratio=3.0, kelly_fraction=1.0).quantity == 13.333


def test_kelly_break_even_and_clamps() -> None:
    assert kelly_multiplier(0.5) == 0.0 and kelly_multiplier(0.2) == 0.0
    assert kelly_multiplier(1.0, kelly_fraction=1.0) == 1.0
    assert kelly_multiplier(math.nan) == 0.0 and kelly_multiplier(0.9, payoff_ratio=0.0) == 0.0
    result = size(confidence=0.5)
    assert result.quantity == 0.0 and "break-even" in result.reason and result.decision is None


def test_limits_cap_the_size_and_say_so() -> None:
    capped = size(limits=replace(LIMITS, max_order_notional=500.0))
    assert capped.quantity == 5.0 and "capped to 5 by limits" in capped.reason
    vetoed = size(portfolio=replace(EQUITY, orders_today=100))
    assert vetoed.quantity == 0.0 and vetoed.reason.startswith("vetoed by limits: daily_orders")
    # an existing long leaves room for only 3 more units under a 1 300 position cap
    held = PortfolioState(equity=10_000.0, positions={"BTCUSDT": Position(10.0, 100.0)})
    assert size(portfolio=held, limits=replace(LIMITS, max_position_per_symbol=1_300.0)
                ).quantity == 3.0


def test_shrinks_to_the_cap_when_the_step_is_below_float_resolution() -> None:
    # Regression (found by hypothesis): 9e7 units with a 1e-8 step is past 2**53 steps, so
    # stepping down by 1e-8 did not move the float and the order was vetoed, not shrunk.
    limits = replace(LIMITS, max_order_notional=900_720.296889761, quantity_step=1e-8)
    result = size(price=0.01, stop=0.01 * (1 - 0.001), portfolio=PortfolioState(equity=180_145.0),
                  limits=limits)
    assert 0 < result.quantity * 0.01 <= 900_720.296889761
    assert result.quantity == pytest.approx(900_720.296889761 / 0.01, rel=1e-12)


def test_size_below_one_step_is_zero() -> None:
    result = size(limits=replace(LIMITS, quantity_step=100.0))
    assert result.quantity == 0.0 and "below one quantity step" in result.reason


@pytest.mark.parametrize(("kw", "needle"), [
    ({"price": 0.0}, "price must be"), ({"price": -1.0}, "price must be"),
    ({"price": math.nan}, "price must be"), ({"stop": math.inf}, "stop must be"),
    ({"confidence": math.nan}, "confidence must be"), ({"confidence": 1.01}, "confidence must"),
    ({"payoff_ratio": 0.0}, "payoff_ratio"), ({"kelly_fraction": 1.5}, "kelly_fraction"),
    ({"kelly_fraction": 0.0}, "kelly_fraction"),
    ({"portfolio": PortfolioState(equity=0.0)}, "equity must be"),
    ({"portfolio": PortfolioState(equity=math.nan)}, "equity must be"),
    ({"stop": 100.0}, "stop must be below"), ({"stop": 101.0}, "stop must be below"),
    ({"side": SELL, "stop": 99.0}, "stop must be above"),
    ({"side": "BUY?"}, "side must be BUY or SELL"),
])
def test_bad_inputs_size_zero_with_a_reason(kw: dict, needle: str) -> None:
    result = size(**kw)
    assert result.quantity == 0.0 and result.signed_quantity == 0.0
    assert needle in result.reason


def test_risk_budget_rejects_bad_inputs() -> None:
    assert risk_budget_quantity(10_000.0, 100.0, 105.0, SELL, 1.0) == 20.0
    assert risk_budget_quantity(10_000.0, 100.0, 105.0, BUY, 1.0) == 0.0
    assert risk_budget_quantity(math.inf, 100.0, 95.0, BUY, 1.0) == 0.0


prices = st.floats(min_value=0.01, max_value=1e5)
fractions = st.floats(min_value=0.001, max_value=0.9)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([BUY, SELL]), prices, fractions, fractions, st.floats(0.0, 1.0),
       st.floats(min_value=100.0, max_value=1e7), st.sampled_from([1e-8, 0.001, 1.0]),
       st.floats(min_value=10.0, max_value=1e7))
def test_size_is_monotone_in_stop_distance_and_confidence(
        side: Side, price: float, d1: float, d2: float, confidence: float, equity: float,
        step: float, cap: float) -> None:
    limits = replace(LIMITS, quantity_step=step, max_order_notional=cap)
    portfolio = PortfolioState(equity=equity)
    near, far = sorted((d1, d2))
    stop = (lambda d: price * (1 - d)) if side is BUY else (lambda d: price * (1 + d))
    sized_near = size(side, price, stop(near), confidence, portfolio, limits)
    sized_far = size(side, price, stop(far), confidence, portfolio, limits)
    assert sized_far.quantity <= sized_near.quantity  # a wider stop never sizes bigger
    more_sure = size(side, price, stop(near), min(1.0, confidence + 0.1), portfolio, limits)
    assert sized_near.quantity <= more_sure.quantity  # more confidence never sizes smaller
    for r in (sized_near, sized_far, more_sure):
        assert r.quantity * price <= cap
        assert r.signed_quantity == (r.quantity if side is BUY else -r.quantity)
        # never above the risk budget
        assert r.quantity <= r.risk_quantity


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["price", "stop", "confidence", "equity"]),
       st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0]))
def test_any_bad_number_sizes_zero(field: str, bad: float) -> None:
    kw: dict = {"portfolio": PortfolioState(equity=bad)} if field == "equity" else {field: bad}
    result = size(**kw)
    assert result.quantity == 0.0 and result.reason
