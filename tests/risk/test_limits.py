"""Risk limits: every limit at its boundary, validation errors, and properties."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tripwire.risk import SafetyMode, parse_safety_mode
from tripwire.risk.limits import (
    LIMIT_CHECKS,
    PortfolioState,
    Position,
    ProposedOrder,
    RiskLimits,
    Side,
    check_all,
    check_allowed_symbol,
    check_daily_orders,
    check_drawdown,
    check_gross_exposure,
    check_order_notional,
    check_position,
    check_risk_per_trade,
)

BUY, SELL = Side.BUY, Side.SELL
STEP = 0.01  # one quantity tick

LIMITS = RiskLimits(
    max_order_notional=1_000.0,
    max_daily_orders=5,
    max_position_per_symbol=2_000.0,
    max_gross_exposure=5_000.0,
    allowed_symbols=frozenset({"BTCUSDT", "ETHUSDT"}),
    max_risk_per_trade_pct=2.0,
    max_drawdown_pct=10.0,
    quantity_step=STEP,
)
BIG = replace(LIMITS, max_order_notional=1e12, max_position_per_symbol=1e12,
              max_gross_exposure=1e12, max_risk_per_trade_pct=100.0)
FLAT = PortfolioState(equity=10_000.0)


def order(qty: float, side: Side = BUY, price: float = 100.0, stop: float | None = None,
          symbol: str = "BTCUSDT") -> ProposedOrder:
    if stop is None:
        stop = price - 1.0 if side is BUY else price + 1.0
    return ProposedOrder(symbol, side, qty, price, stop)


def holding(qty: float, gross: float | None = None, price: float = 100.0) -> PortfolioState:
    gross = abs(qty) * price if gross is None else gross
    return PortfolioState(equity=10_000.0, positions={"BTCUSDT": Position(qty, price)},
                          gross_exposure=gross)


# ----------------------------------------------------------------------------- config


def test_limits_validate_with_key_named_errors() -> None:
    with pytest.raises(ValueError, match=r"risk\.max_order_notional must be a finite number > 0"):
        replace(LIMITS, max_order_notional=0.0)
    with pytest.raises(ValueError, match=r"risk\.max_gross_exposure must be a finite number"):
        replace(LIMITS, max_gross_exposure=math.nan)
    with pytest.raises(ValueError, match=r"risk\.max_drawdown_pct must be <= 100"):
        replace(LIMITS, max_drawdown_pct=100.5)
    with pytest.raises(ValueError, match=r"risk\.max_daily_orders must be an integer >= 1"):
        replace(LIMITS, max_daily_orders=0)
    with pytest.raises(ValueError, match=r"risk\.max_daily_orders must be an integer"):
        replace(LIMITS, max_daily_orders=True)
    with pytest.raises(ValueError, match=r"risk\.allowed_symbols must be a list"):
        replace(LIMITS, allowed_symbols="BTCUSDT")
    with pytest.raises(ValueError, match=r"risk\.allowed_symbols must name at least one"):
        replace(LIMITS, allowed_symbols=[])
    with pytest.raises(ValueError, match=r"risk\.max_risk_per_trade_pct must be a number"):
        replace(LIMITS, max_risk_per_trade_pct="2")


def test_limits_from_mapping_names_unknown_and_missing_keys() -> None:
    good = {"max_order_notional": 1, "max_daily_orders": 1, "max_position_per_symbol": 1,
            "max_gross_exposure": 1, "allowed_symbols": ["A"], "max_risk_per_trade_pct": 1,
            "max_drawdown_pct": 1}
    limits = RiskLimits.from_mapping(good)
    assert limits.allowed_symbols == frozenset({"A"}) and limits.max_order_notional == 1.0
    with pytest.raises(ValueError, match=r"risk\.max_order_notionl is not a known limit"):
        RiskLimits.from_mapping({**good, "max_order_notionl": 5})
    missing = dict(good)
    del missing["max_drawdown_pct"]
    with pytest.raises(ValueError, match=r"risk\.max_drawdown_pct is required"):
        RiskLimits.from_mapping(missing)


def test_safety_modes() -> None:
    assert parse_safety_mode(" direct ") is SafetyMode.DIRECT
    assert parse_safety_mode("two-phase") is SafetyMode.TWO_PHASE
    assert [m.sends_orders for m in SafetyMode] == [False, True, True]
    assert [m.needs_human_approval for m in SafetyMode] == [False, True, False]
    with pytest.raises(ValueError, match=r"risk\.mode must be one of"):
        parse_safety_mode("LIVE")


# ----------------------------------------------------------------------------- boundaries


@pytest.mark.parametrize(("qty", "passed", "allowed"), [
    (9.99, True, 9.99),     # one tick below
    (10.0, True, 10.0),     # exactly 1000 notional
    (10.01, False, 10.0),   # one tick above: shrunk to the limit
    (500.0, False, 10.0),
])
def test_order_notional_boundary(qty: float, passed: bool, allowed: float) -> None:
    check = check_order_notional(order(qty), FLAT, LIMITS)
    assert (check.passed, check.allowed_quantity) == (passed, pytest.approx(allowed))
    assert check.allowed_quantity * 100.0 <= LIMITS.max_order_notional
    assert check.name == "order_notional" and check.limit == 1_000.0


@pytest.mark.parametrize(("orders_today", "passed"), [(3, True), (4, True), (5, False), (9, False)])
def test_daily_orders_boundary(orders_today: int, passed: bool) -> None:
    state = replace(FLAT, orders_today=orders_today)
    check = check_daily_orders(order(1.0), state, LIMITS)
    assert check.passed is passed
    assert check.allowed_quantity == (1.0 if passed else 0.0)
    assert check.value == orders_today + 1 and check.limit == 5


@pytest.mark.parametrize(("equity", "passed"), [
    (9_001.0, True),   # 9.99 % below the peak
    (9_000.0, True),   # exactly 10 %
    (8_999.0, False),  # 10.01 %
])
def test_drawdown_boundary(equity: float, passed: bool) -> None:
    state = PortfolioState(equity=equity, peak_equity=10_000.0)
    check = check_drawdown(order(1.0), state, LIMITS)
    assert check.passed is passed and check.vetoed is not passed
    assert "drawdown" in check.reason


def test_drawdown_peak_below_equity_counts_as_no_drawdown() -> None:
    assert check_drawdown(order(1.0), PortfolioState(equity=500.0, peak_equity=100.0),
                          LIMITS).value == 0.0


def test_allowed_symbol() -> None:
    assert check_allowed_symbol(order(1.0), FLAT, LIMITS).passed
    check = check_allowed_symbol(order(1.0, symbol="DOGEUSDT"), FLAT, LIMITS)
    assert not check.passed and check.vetoed and "'DOGEUSDT' is not in allowed_symbols" in check.reason


@pytest.mark.parametrize(("held", "side", "qty", "passed", "allowed"), [
    (0.0, BUY, 19.99, True, 19.99),    # one tick below 2000 notional
    (0.0, BUY, 20.0, True, 20.0),      # exactly at the limit
    (0.0, BUY, 20.01, False, 20.0),    # one tick above
    (15.0, BUY, 6.0, False, 5.0),      # adds to a long: room for 5
    (0.0, SELL, 20.01, False, 20.0),   # short side is capped the same way
    (-20.0, SELL, 0.01, False, 0.0),   # full short: no room at all, vetoed
    (10.0, SELL, 30.0, True, 30.0),    # flips to -20: exactly at the limit
    (10.0, SELL, 30.01, False, 30.0),  # flips past the limit: closes 10, opens 20
    (50.0, SELL, 10.0, True, 10.0),    # reduces an oversized long: always fits
    (50.0, BUY, 0.01, False, 0.0),     # adds to an oversized long: vetoed
])
def test_position_boundary(held: float, side: Side, qty: float, passed: bool,
                           allowed: float) -> None:
    check = check_position(order(qty, side), holding(held, gross=0.0), LIMITS)
    assert (check.passed, check.allowed_quantity) == (passed, pytest.approx(allowed))


@pytest.mark.parametrize(("held", "gross", "side", "qty", "passed", "allowed"), [
    (0.0, 3_000.0, BUY, 19.99, True, 19.99),
    (0.0, 3_000.0, BUY, 20.0, True, 20.0),      # 5000 exactly
    (0.0, 3_000.0, BUY, 20.01, False, 20.0),
    (0.0, 5_000.0, BUY, 0.01, False, 0.0),      # no headroom: vetoed
    (10.0, 5_000.0, SELL, 20.0, True, 20.0),    # close 10, open 10: gross unchanged
    (10.0, 5_000.0, SELL, 20.01, False, 20.0),
    (10.0, 6_000.0, SELL, 5.0, True, 5.0),      # already over: reducing still fits
])
def test_gross_exposure_boundary(held: float, gross: float, side: Side, qty: float,
                                 passed: bool, allowed: float) -> None:
    check = check_gross_exposure(order(qty, side), holding(held, gross=gross), LIMITS)
    assert (check.passed, check.allowed_quantity) == (passed, pytest.approx(allowed))


@pytest.mark.parametrize(("qty", "passed", "allowed"), [
    (39.99, True, 39.99),
    (40.0, True, 40.0),     # 40 x 5 = 200 = 2 % of 10 000
    (40.01, False, 40.0),
])
def test_risk_per_trade_boundary(qty: float, passed: bool, allowed: float) -> None:
    for side, stop in ((BUY, 95.0), (SELL, 105.0)):
        check = check_risk_per_trade(order(qty, side, stop=stop), FLAT, LIMITS)
        assert (check.passed, check.allowed_quantity) == (passed, pytest.approx(allowed))


@pytest.mark.parametrize(("side", "stop"), [(BUY, 100.0), (BUY, 101.0), (SELL, 100.0),
                                            (SELL, 99.0)])
def test_stop_on_the_wrong_side_vetoes(side: Side, stop: float) -> None:
    check = check_risk_per_trade(order(1.0, side, stop=stop), FLAT, LIMITS)
    assert check.vetoed and "stop must be" in check.reason


# ----------------------------------------------------------------------------- check_all


def test_check_all_takes_the_smallest_allowance_and_explains_it() -> None:
    decision = check_all(order(15.0), FLAT, LIMITS)
    assert decision.approved and decision.quantity == pytest.approx(10.0)
    assert decision.requested_quantity == 15.0
    assert [c.name for c in decision.checks] == ["facts"] + [
        f.__name__.removeprefix("check_") for f in LIMIT_CHECKS]
    assert decision.reasons == ("order_notional: notional 1500 over the limit of 1000: "
                                "quantity shrunk from 15 to 10",)


def test_check_all_any_veto_rejects() -> None:
    decision = check_all(order(1.0), replace(FLAT, orders_today=5), LIMITS)
    assert not decision.approved and decision.quantity == 0.0
    assert decision.reasons == ("daily_orders: order #6 of the day, over the limit of 5",)


@pytest.mark.parametrize("bad", [
    {"quantity": math.nan}, {"quantity": 0.0}, {"quantity": -1.0}, {"price": math.inf},
    {"price": 0.0}, {"stop": math.nan}, {"confidence": 1.5}, {"confidence": math.nan},
])
def test_bad_order_facts_veto(bad: dict) -> None:
    decision = check_all(replace(order(1.0), **bad), FLAT, LIMITS)
    assert not decision.approved and decision.quantity == 0.0
    assert decision.checks[0].name == "facts" and len(decision.checks) == 1
    assert next(iter(bad)) in decision.reasons[0]


def test_a_side_that_is_not_an_order_side_vetoes() -> None:
    decision = check_all(replace(order(1.0), side="BUY?"), FLAT, LIMITS)
    assert not decision.approved and "order.side must be BUY or SELL" in decision.reasons[0]


@pytest.mark.parametrize("bad", [
    {"equity": math.nan}, {"equity": 0.0}, {"gross_exposure": -math.inf},
    {"gross_exposure": -1.0}, {"pnl_today": math.nan}, {"peak_equity": math.inf},
    {"orders_today": -1}, {"positions": {"BTCUSDT": Position(math.nan, 1.0)}},
])
def test_bad_portfolio_facts_veto(bad: dict) -> None:
    decision = check_all(order(1.0), replace(FLAT, **bad), LIMITS)
    assert not decision.approved and decision.reasons[0].startswith("facts: portfolio.")


# ----------------------------------------------------------------------------- properties

finite = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)
sides = st.sampled_from([BUY, SELL])


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ProposedOrder, PortfolioState, RiskLimits]:
    side, price = draw(sides), draw(finite)
    distance = draw(st.floats(min_value=1e-3, max_value=0.9)) * price
    stop = price - distance if side is BUY else price + distance
    o = ProposedOrder(draw(st.sampled_from(["BTCUSDT", "XRPUSDT"])), side, draw(finite),
                      price, stop, draw(st.floats(0.0, 1.0)))
    held = draw(st.floats(min_value=-1e4, max_value=1e4))
    equity = draw(finite)
    p = PortfolioState(equity=equity, positions={"BTCUSDT": Position(held, price)},
                       gross_exposure=draw(st.floats(0.0, 1e7)),
                       orders_today=draw(st.integers(0, 6)),
                       peak_equity=equity * draw(st.floats(1.0, 1.2)))
    limits = replace(LIMITS, max_order_notional=draw(finite), max_position_per_symbol=draw(finite),
                     max_gross_exposure=draw(finite),
                     max_risk_per_trade_pct=draw(st.floats(0.01, 100.0)),
                     quantity_step=draw(st.sampled_from([1e-8, 1e-3, 0.01, 1.0])))
    return o, p, limits


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_checks_never_enlarge_and_the_result_fits_every_limit(
        case: tuple[ProposedOrder, PortfolioState, RiskLimits]) -> None:
    o, p, limits = case
    decision = check_all(o, p, limits)
    for check in decision.checks:
        assert 0.0 <= check.allowed_quantity <= o.quantity
        if check.passed:
            assert check.allowed_quantity == o.quantity
    assert 0.0 <= decision.quantity <= o.quantity
    if decision.approved:
        again = check_all(replace(o, quantity=decision.quantity), p, limits)
        assert again.approved and again.quantity == decision.quantity
        assert all(c.passed for c in again.checks), again.reasons


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.sampled_from(["quantity", "price", "stop", "confidence", "equity",
                                     "gross_exposure", "pnl_today", "peak_equity", "held"]),
       st.sampled_from([math.nan, math.inf, -math.inf]))
def test_any_non_finite_input_vetoes(case: tuple[ProposedOrder, PortfolioState, RiskLimits],
                                     field: str, bad: float) -> None:
    o, p, limits = case
    if field in {"quantity", "price", "stop", "confidence"}:
        o = replace(o, **{field: bad})
    elif field == "held":
        p = replace(p, positions={"BTCUSDT": Position(bad, 1.0)})
    else:
        p = replace(p, **{field: bad})
    decision = check_all(o, p, limits)
    assert not decision.approved and decision.quantity == 0.0
    assert decision.checks[0].name == "facts" and not decision.checks[0].passed


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.floats(min_value=1e-3, max_value=1.0))
def test_anything_below_an_allowed_quantity_is_allowed_in_full(
        case: tuple[ProposedOrder, PortfolioState, RiskLimits], shrink: float) -> None:
    """What a limit allows is an interval [0, cap]: shrinking further never trips a limit."""
    o, p, limits = case
    decision = check_all(o, p, limits)
    if not decision.approved:
        return
    smaller = replace(o, quantity=decision.quantity * shrink)
    again = check_all(smaller, p, limits)
    assert again.approved and again.quantity == smaller.quantity
