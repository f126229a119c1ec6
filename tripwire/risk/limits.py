"""Risk limits as plain arithmetic: one small pure check per named limit.

Every check has the same shape, ``check_x(order, portfolio, limits) -> LimitCheck``, and
returns a record that explains itself: the limit's name, whether the requested order fits,
the measured value, the limit, a sentence of reason, and the largest quantity the limit
allows. A limit may only shrink an order or veto it (allow 0), never enlarge it.
:func:`check_all` runs every check and keeps the smallest allowed quantity.

Units and conventions (what a reviewer needs to check the arithmetic):

* ``quantity`` is in base units (coins, shares) and always > 0; the side carries the sign:
  a BUY adds ``+quantity`` to the position, a SELL ``-quantity``.
* ``price`` is the reference entry price (limit price, or the latest price for a market
  order). Notional = quantity x price, in the quote currency.
* ``max_position_per_symbol`` is a notional (quote currency) cap on the *absolute* position
  after the trade, valued at the order's price: units are not comparable across symbols,
  money is. A trade that shrinks an oversized position without flipping it always fits.
* ``max_gross_exposure`` caps sum(|position notional|); a trade that does not raise the
  gross exposure always fits. ``PortfolioState.gross_exposure`` is taken as given (marked
  to market by the caller); the trade's change is valued at the order's price.
* ``*_pct`` limits are percentages (1.0 means 1 %), in (0, 100].
* A value *equal* to its limit passes; one tick above it does not.
* The individual checks assume the facts are sane (finite, positive, a real side);
  :func:`check_all` runs :func:`check_facts` first and vetoes before they run otherwise.
* Rounding: a shrunk quantity is floored to ``limits.quantity_step`` (never rounded up)
  and re-checked, so float error can cost at most one step and never breaks a limit.

>>> limits = RiskLimits(max_order_notional=1_000.0, max_daily_orders=10,
...     max_position_per_symbol=5_000.0, max_gross_exposure=20_000.0,
...     allowed_symbols={"BTCUSDT"}, max_risk_per_trade_pct=1.0, max_drawdown_pct=10.0,
...     quantity_step=0.001)
>>> order = ProposedOrder("BTCUSDT", Side.BUY, quantity=0.05, price=50_000.0,
...     stop=49_000.0)
>>> decision = check_all(order, PortfolioState(equity=10_000.0), limits)
>>> decision.approved, decision.quantity, [c.name for c in decision.checks if not c.passed]
(True, 0.02, ['order_notional'])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from tripwire.model import Side

# Headroom for float error when flooring to a step: 0.3 / 0.1 is 2.9999999999999996.
_STEP_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class ProposedOrder:
    """The facts of one proposed order, independent of who proposed it."""

    symbol: str
    side: Side
    quantity: float  # base units, > 0
    price: float  # reference entry price, > 0
    stop: float  # stop-loss price: below price for a BUY, above for a SELL
    confidence: float = 1.0  # 0..1, used by sizing; checked here only for sanity

    @property
    def notional(self) -> float:
        return self.quantity * self.price


@dataclass(frozen=True, slots=True)
class Position:
    """A signed position: ``qty`` > 0 long, < 0 short."""

    qty: float
    avg_price: float


@dataclass(frozen=True, slots=True)
class PortfolioState:
    """The portfolio facts the limits need, as the caller saw them at one instant.

    ``peak_equity`` of 0 (the default) means "the peak is the current equity".
    """

    equity: float
    positions: Mapping[str, Position] = field(default_factory=dict)
    gross_exposure: float = 0.0
    orders_today: int = 0
    pnl_today: float = 0.0  # realised + unrealised, since 00:00 UTC
    peak_equity: float = 0.0

    def position_qty(self, symbol: str) -> float:
        pos = self.positions.get(symbol)
        return 0.0 if pos is None else pos.qty


def _require_number(key: str, value: Any, *, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"risk.{key} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"risk.{key} must be a finite number > 0, got {value!r}")
    if upper is not None and value > upper:
        raise ValueError(f"risk.{key} must be <= {upper:g}, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Hard limits, validated on construction; a bad value raises ValueError naming its key."""

    max_order_notional: float
    max_daily_orders: int
    max_position_per_symbol: float  # notional, absolute, after the trade
    max_gross_exposure: float
    allowed_symbols: frozenset[str]
    max_risk_per_trade_pct: float  # % of equity lost if the stop is hit
    max_drawdown_pct: float  # % below peak equity at which new orders stop
    quantity_step: float = 1e-8  # shrunk sizes are floored to a multiple of this

    def __post_init__(self) -> None:
        for key in ("max_order_notional", "max_position_per_symbol", "max_gross_exposure",
                    "quantity_step"):
            object.__setattr__(self, key, _require_number(key, getattr(self, key)))
        for key in ("max_risk_per_trade_pct", "max_drawdown_pct"):
            object.__setattr__(self, key, _require_number(key, getattr(self, key), upper=100.0))
        orders = self.max_daily_orders
        if isinstance(orders, bool) or not isinstance(orders, int) or orders < 1:
            raise ValueError(f"risk.max_daily_orders must be an integer >= 1, got {orders!r}")
        object.__setattr__(self, "allowed_symbols", _symbol_set(self.allowed_symbols))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RiskLimits:
        """Build from a config table; unknown or missing keys are errors naming the key.

        >>> RiskLimits.from_mapping({"max_order_notional": 1})
        Traceback (most recent call last):
        ...
        ValueError: risk.max_daily_orders is required
        """
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ValueError(f"risk.{key} is not a known limit ({', '.join(sorted(known))})")
        for f in fields(cls):
            if f.name not in values and f.name != "quantity_step":
                raise ValueError(f"risk.{f.name} is required")
        return cls(**values)


def _symbol_set(value: Any) -> frozenset[str]:
    # A bare string is iterable too: "BTCUSDT" would silently become {"B", "T", ...}.
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"risk.allowed_symbols must be a list of symbols, got {value!r}")
    symbols = frozenset(value)
    if not symbols or not all(isinstance(s, str) and s.strip() == s and s for s in symbols):
        raise ValueError(
            f"risk.allowed_symbols must name at least one symbol, each a non-blank string "
            f"without spaces around it, got {sorted(map(repr, symbols))}"
        )
    return symbols


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """One limit's verdict on one order.

    ``passed``: the requested quantity fits. ``allowed_quantity``: the most this limit lets
    through (the requested quantity when it passed, a smaller one when it shrank the order,
    0 when it vetoed it).
    """

    name: str
    passed: bool
    value: float
    limit: float
    reason: str
    allowed_quantity: float

    @property
    def vetoed(self) -> bool:
        return not self.allowed_quantity > 0

    @property
    def shrunk(self) -> bool:
        return not self.passed and not self.vetoed


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """All checks on one order and the quantity they jointly allow (0 unless approved)."""

    approved: bool
    quantity: float
    requested_quantity: float
    checks: tuple[LimitCheck, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        """The reasons of the checks that did not pass, in check order."""
        return tuple(f"{c.name}: {c.reason}" for c in self.checks if not c.passed)


def floor_to_step(quantity: float, step: float) -> float:
    """Round a quantity down to a multiple of ``step``; non-positive or NaN gives 0.

    Never returns more than ``quantity``: where ``n * step`` lands an ulp above it
    (3 * 0.1 is 0.30000000000000004), the quantity itself is the multiple.

    >>> floor_to_step(0.3, 0.1), floor_to_step(0.29, 0.1), floor_to_step(float("nan"), 0.1)
    (0.3, 0.2, 0.0)
    """
    if not quantity > 0:
        return 0.0
    if math.isinf(quantity):
        return quantity
    return min(quantity, math.floor(quantity / step + _STEP_EPS) * step)


def _largest_fitting(requested: float, capacity: float, step: float,
                     fits: Callable[[float], bool]) -> float:
    """The requested quantity if it fits, else the largest step multiple under ``capacity``
    that fits (re-checked, because ``capacity`` came from a float division), else 0."""
    if fits(requested):
        return requested
    quantity = floor_to_step(min(requested, capacity), step)
    for _ in range(8):  # float error is a few ulps: a few steps (or ulps) down suffice
        if not quantity > 0 or math.isinf(quantity):
            return 0.0
        if fits(quantity):
            return quantity
        lower = floor_to_step(quantity - step, step)
        # A step below the float resolution at this magnitude does not move: go one ulp down.
        quantity = lower if lower < quantity else math.nextafter(quantity, 0.0)
    return 0.0


def _veto_check(name: str, passed: bool, value: float, limit: float, reason: str,
                requested: float) -> LimitCheck:
    return LimitCheck(name, passed, value, limit, reason, requested if passed else 0.0)


# ----------------------------------------------------------------------------- the checks


def check_facts(order: ProposedOrder, portfolio: PortfolioState,
                limits: RiskLimits) -> LimitCheck:
    """Veto on any non-finite or out-of-domain input: a NaN compares False with everything,
    so without this an order with a NaN price would pass every other check."""
    problems = _fact_problems(order, portfolio)
    reason = "all inputs finite and in range" if not problems else "; ".join(problems)
    return _veto_check("facts", not problems, float(len(problems)), 0.0, reason,
                       order.quantity)


def _fact_problems(order: ProposedOrder, portfolio: PortfolioState) -> list[str]:
    positive = {"order.quantity": order.quantity, "order.price": order.price,
                "order.stop": order.stop, "portfolio.equity": portfolio.equity}
    finite = {"order.confidence": order.confidence,
              "portfolio.gross_exposure": portfolio.gross_exposure,
              "portfolio.pnl_today": portfolio.pnl_today,
              "portfolio.peak_equity": portfolio.peak_equity}
    for symbol, pos in portfolio.positions.items():
        finite[f"portfolio.positions[{symbol}].qty"] = pos.qty
        finite[f"portfolio.positions[{symbol}].avg_price"] = pos.avg_price
    problems = [f"{k} is not finite ({v!r})" for k, v in {**positive, **finite}.items()
                if not _is_finite_number(v)]
    problems += [f"{k} must be > 0 ({v!r})" for k, v in positive.items()
                 if _is_finite_number(v) and not v > 0]
    if _is_finite_number(order.confidence) and not 0.0 <= order.confidence <= 1.0:
        problems.append(f"order.confidence must be in [0, 1] ({order.confidence!r})")
    if _is_finite_number(portfolio.gross_exposure) and portfolio.gross_exposure < 0:
        problems.append(f"portfolio.gross_exposure must be >= 0 ({portfolio.gross_exposure!r})")
    if not (isinstance(order.side, Side) and order.side.is_order_side):
        problems.append(f"order.side must be BUY or SELL ({order.side!r})")
    if isinstance(portfolio.orders_today, bool) or not isinstance(portfolio.orders_today, int) \
            or portfolio.orders_today < 0:
        problems.append(f"portfolio.orders_today must be an integer >= 0 "
                        f"({portfolio.orders_today!r})")
    return problems


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_allowed_symbol(order: ProposedOrder, portfolio: PortfolioState,
                         limits: RiskLimits) -> LimitCheck:
    """Veto a symbol that is not on the allow-list (value 1 = not allowed)."""
    passed = order.symbol in limits.allowed_symbols
    reason = (f"{order.symbol} is allowed" if passed
              else f"{order.symbol!r} is not in allowed_symbols")
    return _veto_check("allowed_symbol", passed, 0.0 if passed else 1.0, 0.0, reason,
                       order.quantity)


def check_daily_orders(order: ProposedOrder, portfolio: PortfolioState,
                       limits: RiskLimits) -> LimitCheck:
    """Veto when this order would be number ``max_daily_orders + 1`` of the UTC day."""
    value = portfolio.orders_today + 1
    passed = value <= limits.max_daily_orders
    verb = "within" if passed else "over"
    reason = f"order #{value} of the day, {verb} the limit of {limits.max_daily_orders}"
    return _veto_check("daily_orders", passed, float(value), float(limits.max_daily_orders),
                       reason, order.quantity)


def drawdown_pct(portfolio: PortfolioState) -> float:
    """Percent below the peak; a peak under the current equity counts as the equity.

    >>> drawdown_pct(PortfolioState(equity=90.0, peak_equity=100.0))
    10.0
    """
    peak = max(portfolio.peak_equity, portfolio.equity)
    return (peak - portfolio.equity) / peak * 100.0


def check_drawdown(order: ProposedOrder, portfolio: PortfolioState,
                   limits: RiskLimits) -> LimitCheck:
    """Veto every new order once equity is more than ``max_drawdown_pct`` below its peak."""
    value = drawdown_pct(portfolio)
    passed = value <= limits.max_drawdown_pct
    reason = (f"drawdown {value:.4g}% {'within' if passed else 'over'} the limit of "
              f"{limits.max_drawdown_pct:g}%")
    return _veto_check("drawdown", passed, value, limits.max_drawdown_pct, reason,
                       order.quantity)


def check_order_notional(order: ProposedOrder, portfolio: PortfolioState,
                         limits: RiskLimits) -> LimitCheck:
    """Shrink an order whose notional is over ``max_order_notional``."""
    cap = limits.max_order_notional

    def fits(q: float) -> bool:
        return q * order.price <= cap

    allowed = _largest_fitting(order.quantity, cap / order.price, limits.quantity_step, fits)
    value = order.notional
    return LimitCheck("order_notional", fits(order.quantity), value, cap,
                      _shrink_reason("notional", value, cap, order.quantity, allowed), allowed)


def check_position(order: ProposedOrder, portfolio: PortfolioState,
                   limits: RiskLimits) -> LimitCheck:
    """Shrink an order whose resulting |position| x price is over ``max_position_per_symbol``.

    Reducing a position without flipping its sign always fits, even an oversized one.
    """
    held, sign, price = portfolio.position_qty(order.symbol), order.side.sign, order.price
    cap = limits.max_position_per_symbol
    reducible = max(0.0, -sign * held)  # units this side can close before flipping

    def fits(q: float) -> bool:
        return q <= reducible or abs(held + sign * q) * price <= cap

    capacity = max(0.0, cap / price - sign * held)
    allowed = _largest_fitting(order.quantity, capacity, limits.quantity_step, fits)
    value = abs(held + sign * order.quantity) * price
    reason = _shrink_reason("position notional after the trade", value, cap, order.quantity,
                            allowed)
    return LimitCheck("position", fits(order.quantity), value, cap, reason, allowed)


def check_gross_exposure(order: ProposedOrder, portfolio: PortfolioState,
                         limits: RiskLimits) -> LimitCheck:
    """Shrink an order that would take gross exposure over ``max_gross_exposure``.

    A trade that does not raise the gross exposure (it closes at least as much as it opens)
    always fits.
    """
    held, sign, price = portfolio.position_qty(order.symbol), order.side.sign, order.price
    cap, gross = limits.max_gross_exposure, portfolio.gross_exposure
    reducible = max(0.0, -sign * held)

    def after(q: float) -> float:
        return gross + (abs(held + sign * q) - abs(held)) * price

    def fits(q: float) -> bool:
        return after(q) <= gross or after(q) <= cap

    capacity = 2.0 * reducible + max(0.0, (cap - gross) / price)
    allowed = _largest_fitting(order.quantity, capacity, limits.quantity_step, fits)
    value = after(order.quantity)
    reason = _shrink_reason("gross exposure after the trade", value, cap, order.quantity,
                            allowed)
    return LimitCheck("gross_exposure", fits(order.quantity), value, cap, reason, allowed)


def check_risk_per_trade(order: ProposedOrder, portfolio: PortfolioState,
                         limits: RiskLimits) -> LimitCheck:
    """Shrink an order that loses more than ``max_risk_per_trade_pct`` of equity at its stop;
    veto one whose stop is on the wrong side of the price (BUY: below, SELL: above)."""
    cap = limits.max_risk_per_trade_pct / 100.0 * portfolio.equity
    distance = stop_distance(order.side, order.price, order.stop)
    if not distance > 0:
        side = "below" if order.side is Side.BUY else "above"
        reason = f"a {order.side.name}'s stop must be {side} the price ({order.stop!r} vs " \
                 f"{order.price!r})"
        return _veto_check("risk_per_trade", False, math.inf, cap, reason, order.quantity)

    def fits(q: float) -> bool:
        return q * distance <= cap

    allowed = _largest_fitting(order.quantity, cap / distance, limits.quantity_step, fits)
    value = order.quantity * distance
    reason = _shrink_reason("loss at the stop", value, cap, order.quantity, allowed)
    return LimitCheck("risk_per_trade", fits(order.quantity), value, cap, reason, allowed)


def stop_distance(side: Side, price: float, stop: float) -> float:
    """Price distance to the stop, positive when the stop is on the protective side.

    >>> stop_distance(Side.BUY, 100.0, 95.0), stop_distance(Side.SELL, 100.0, 95.0)
    (5.0, -5.0)
    """
    return (price - stop) * side.sign


def _shrink_reason(what: str, value: float, cap: float, requested: float,
                   allowed: float) -> str:
    if value <= cap:
        return f"{what} {value:.6g} within the limit of {cap:.6g}"
    if allowed > 0 and allowed == requested:
        return f"{what} {value:.6g} over the limit of {cap:.6g}, but the trade reduces it"
    if allowed > 0:
        return (f"{what} {value:.6g} over the limit of {cap:.6g}: "
                f"quantity shrunk from {requested:.10g} to {allowed:.10g}")
    return f"{what} {value:.6g} over the limit of {cap:.6g}, no room left: vetoed"


LIMIT_CHECKS: tuple[Callable[[ProposedOrder, PortfolioState, RiskLimits], LimitCheck], ...] = (
    check_allowed_symbol,
    check_daily_orders,
    check_drawdown,
    check_order_notional,
    check_position,
    check_gross_exposure,
    check_risk_per_trade,
)


def check_all(order: ProposedOrder, portfolio: PortfolioState,
              limits: RiskLimits) -> RiskDecision:
    """Run every limit; approve the smallest quantity they all allow, if it is above 0.

    Bad facts (NaN, inf, non-positive price...) veto before any arithmetic runs on them.
    """
    facts = check_facts(order, portfolio, limits)
    if not facts.passed:
        return RiskDecision(False, 0.0, _requested(order), (facts,))
    checks = (facts, *(check(order, portfolio, limits) for check in LIMIT_CHECKS))
    quantity = min(c.allowed_quantity for c in checks)
    approved = quantity > 0 and not any(c.vetoed for c in checks)
    return RiskDecision(approved, quantity if approved else 0.0, order.quantity, checks)


def _requested(order: ProposedOrder) -> float:
    return order.quantity if _is_finite_number(order.quantity) else math.nan
