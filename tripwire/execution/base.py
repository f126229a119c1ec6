"""The execution protocol: what every backend (paper, backtest, ccxt) offers.

One protocol, synchronous on purpose: the paper and backtest engines are in-memory arithmetic
with no I/O, and determinism is easiest to keep without an event loop. A network backend
(ccxt) implements the same methods and is called from async code in a worker thread
(``DecisionDeps.blocking_broker``). tests/execution/test_conformance.py holds every backend
to the same behaviour.

Identity: an order's id *is* its client order id (``tripwire.model.client_order_id(decision,
leg)``). Placing the same client order id twice is idempotent: the second call returns the
order that already exists, so a retry or a restart never doubles an order. Placing it again
with *different* parameters is a bug upstream and raises :class:`DuplicateClientOrderId`.

Bad input raises :class:`OrderRejected` naming the field; nothing is stored.

>>> req = OrderRequest("tw-1", "BTCUSDT", Side.BUY, 0.5, stop_loss=90.0, take_profit=120.0)
>>> req.order_type.value, validate_request(req, {"BTCUSDT"}) == req
('market', True)
>>> validate_request(OrderRequest("tw-2", "BTCUSDT", Side.BUY, 0.0), {"BTCUSDT"})
Traceback (most recent call last):
...
tripwire.execution.base.OrderRejected: order rejected: qty: must be a finite number > 0, got 0.0
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Container, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from tripwire.model import Side

__all__ = [
    "Account",
    "AuthenticationFailed",
    "BackendUnavailable",
    "Bracket",
    "Broker",
    "DuplicateClientOrderId",
    "EquityPoint",
    "ExecutionError",
    "Fill",
    "FillKind",
    "InsufficientFunds",
    "Liquidity",
    "Order",
    "OrderNotOpen",
    "OrderRejected",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Position",
    "RateLimited",
    "Side",
    "UnknownOrder",
    "amend_request",
    "validate_request",
]

# ----------------------------------------------------------------------------- errors


class ExecutionError(Exception):
    """Base of every error an execution backend raises."""


class OrderRejected(ExecutionError):
    """The backend refused the order; ``field`` names the offending input."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"order rejected: {field}: {reason}")
        self.field = field
        self.reason = reason


class UnknownOrder(ExecutionError):
    """No order with that id exists on this backend."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"unknown order {order_id!r}")
        self.order_id = order_id


class OrderNotOpen(ExecutionError):
    """Cancel or replace of an order that is already filled or cancelled."""

    def __init__(self, order_id: str, status: OrderStatus) -> None:
        super().__init__(f"order {order_id!r} is {status.value}; only working orders can change")
        self.order_id = order_id
        self.status = status


class DuplicateClientOrderId(ExecutionError):
    """The client order id exists already with different parameters (an upstream bug)."""

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"client order id {order_id!r} already used for a different order; refusing"
        )
        self.order_id = order_id


class BackendUnavailable(ExecutionError):
    """The venue could not be reached or failed transiently (network, timeout, 5xx, overload).

    ``retryable`` is True: the same call may succeed later. For ``place`` that is safe because
    orders are idempotent by client order id.
    """

    retryable = True

    def __init__(self, message: str, *, venue: str = "", operation: str = "") -> None:
        super().__init__(message)
        self.venue = venue
        self.operation = operation


class RateLimited(BackendUnavailable):
    """The venue throttled us (HTTP 429/418 or its own rate-limit code), even after retries."""


class AuthenticationFailed(ExecutionError):
    """Credentials missing, malformed or refused. Never retried; never carries the secret."""

    retryable = False

    def __init__(self, message: str, *, venue: str = "", operation: str = "") -> None:
        super().__init__(message)
        self.venue = venue
        self.operation = operation


class InsufficientFunds(OrderRejected):
    """The venue refused the order for lack of balance or margin (``field`` is ``qty``)."""

    def __init__(self, reason: str) -> None:
        super().__init__("qty", reason)


# ----------------------------------------------------------------------------- values


class OrderType(StrEnum):
    MARKET = "market"  # fills fully at the next eligible tick's price, plus slippage
    LIMIT = "limit"  # fills fully at its limit price when a tick touches or crosses it


class OrderStatus(StrEnum):
    PENDING = "pending"  # placed, not yet active (latency has not elapsed in tick time)
    OPEN = "open"  # active, waiting for a tick to fill it
    FILLED = "filled"
    CANCELLED = "cancelled"

    @property
    def working(self) -> bool:
        return self in (OrderStatus.PENDING, OrderStatus.OPEN)


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class FillKind(StrEnum):
    ORDER = "order"  # the order itself filled
    STOP_LOSS = "stop_loss"  # its attached stop closed (part of) the position
    TAKE_PROFIT = "take_profit"  # its attached take-profit closed (part of) the position


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a caller asks for. ``qty`` is positive; the direction is ``side``.

    ``stop_loss``/``take_profit`` are trigger prices attached to the order: once it fills,
    a later tick at or beyond them closes the filled quantity at market.
    """

    client_order_id: str
    symbol: str
    side: Side
    qty: float
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the backend knows it now (a snapshot; later changes make new snapshots)."""

    id: str  # the client order id
    request: OrderRequest  # as currently in force (after any replace)
    status: OrderStatus
    placed_ns: int  # when it was placed (the injected clock)
    active_ns: int  # from this tick time on it can fill (placement or last replace + latency)
    filled_qty: float = 0.0
    avg_fill_price: float = math.nan
    updated_ns: int = 0


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution. ``qty`` is positive; ``fee`` is in quote currency and always >= 0."""

    fill_id: str
    order_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    fee: float
    liquidity: Liquidity
    kind: FillKind
    ts_ns: int  # the tick time it filled at


@dataclass(frozen=True, slots=True)
class Position:
    """Signed quantity (long > 0) with its average entry price and PnL in quote currency."""

    symbol: str
    qty: float
    avg_price: float  # nan when flat
    realised_pnl: float  # price PnL of closed quantity, fees excluded
    mark_price: float  # last tick price seen; nan before any
    unrealised_pnl: float  # qty * (mark - avg); 0 when flat or unmarked


@dataclass(frozen=True, slots=True)
class Bracket:
    """A live stop-loss/take-profit guarding quantity filled by ``order_id``."""

    order_id: str
    symbol: str
    side: Side  # side of the position it protects (BUY = long)
    qty: float
    stop_loss: float | None
    take_profit: float | None
    armed_ns: int  # the fill's tick time; only later ticks can trigger it


@dataclass(frozen=True, slots=True)
class EquityPoint:
    ts_ns: int
    cash: float
    equity: float  # cash + sum(qty * mark)


@dataclass(frozen=True, slots=True)
class Account:
    """Totals in quote currency: equity = initial_cash + realised + unrealised - fees."""

    initial_cash: float
    cash: float
    equity: float
    realised_pnl: float
    unrealised_pnl: float
    fees: float


# ----------------------------------------------------------------------------- protocol


class Broker(Protocol):
    """What the sign-off graph's execute node and the watchdog need from a backend."""

    def place(self, request: OrderRequest) -> Order:
        """Place (idempotently by client order id); raises OrderRejected on bad input."""
        ...

    def cancel(self, order_id: str) -> Order:
        """Cancel a working order; UnknownOrder / OrderNotOpen otherwise."""
        ...

    def replace(
        self,
        order_id: str,
        *,
        qty: float | None = None,
        limit_price: float | None = None,
        stop_loss: float | None = None,
        take_profit: float | None = None,
    ) -> Order:
        """Amend a working order (None keeps a field); it re-activates after the latency."""
        ...

    def get_order(self, order_id: str) -> Order: ...

    def orders(self, symbol: str | None = None, *, working_only: bool = False) -> list[Order]: ...

    def positions(self) -> dict[str, Position]: ...

    def fills(self, order_id: str | None = None) -> list[Fill]: ...

    def account(self) -> Account: ...


# ----------------------------------------------------------------------------- validation


def _is_positive(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _check_positive(field: str, value: object) -> None:
    if not _is_positive(value):
        raise OrderRejected(field, f"must be a finite number > 0, got {value!r}")


def validate_request(request: OrderRequest, symbols: Container[str],
                     closed: Mapping[str, str] | None = None) -> OrderRequest:
    """Return ``request`` (side and type as enums) when well formed, else raise OrderRejected.

    The error's ``field`` names the offending input. ``closed``: symbols whose market is
    closed (a resolved or halted prediction market: symbol -> why); a new order on one is
    refused (fail closed), whatever else it says.
    """
    if not isinstance(request.client_order_id, str) or not request.client_order_id:
        raise OrderRejected("client_order_id", "must be a non-empty string")
    if request.symbol not in symbols:
        raise OrderRejected("symbol", f"unknown symbol {request.symbol!r}")
    if closed and request.symbol in closed:
        raise OrderRejected("symbol", f"{request.symbol}'s market is closed "
                            f"({closed[request.symbol]}): no new orders")
    if request.side not in (Side.BUY, Side.SELL):
        raise OrderRejected("side", f"must be BUY or SELL, got {request.side!r}")
    if request.order_type not in (OrderType.MARKET, OrderType.LIMIT):
        raise OrderRejected("order_type", f"must be market or limit, got {request.order_type!r}")
    # Plain 1 / "limit" compare equal to the enums; storing the enums keeps `is` checks true.
    request = dataclasses.replace(
        request, side=Side(request.side), order_type=OrderType(request.order_type)
    )
    _check_positive("qty", request.qty)
    if request.order_type is OrderType.LIMIT:
        _check_positive("limit_price", request.limit_price)
    elif request.limit_price is not None:
        raise OrderRejected("limit_price", "a market order takes no limit price")
    for field in ("stop_loss", "take_profit"):
        if getattr(request, field) is not None:
            _check_positive(field, getattr(request, field))
    _check_bracket_order(request)
    return request


def amend_request(
    request: OrderRequest,
    symbols: Container[str],
    *,
    qty: float | None = None,
    limit_price: float | None = None,
    stop_loss: float | None = None,
    take_profit: float | None = None,
) -> OrderRequest:
    """``request`` with the given fields replaced (None keeps a field), validated."""
    changes = {"qty": qty, "limit_price": limit_price, "stop_loss": stop_loss,
               "take_profit": take_profit}
    amended = dataclasses.replace(request, **{k: v for k, v in changes.items() if v is not None})
    return validate_request(amended, symbols)


def _check_bracket_order(request: OrderRequest) -> None:
    """A long's stop is below its entry and target above it; a short's the other way round."""
    sign = 1 if request.side is Side.BUY else -1
    levels = [
        ("stop_loss", request.stop_loss, -1),
        ("limit_price", request.limit_price, 0),
        ("take_profit", request.take_profit, 1),
    ]
    present = [(name, price * sign, rank) for name, price, rank in levels if price is not None]
    for (_, low, _), (name, high, _) in itertools.pairwise(present):
        if not low < high:
            side = "BUY" if sign == 1 else "SELL"
            order = "stop_loss < limit_price < take_profit"
            if sign == -1:
                order = "take_profit < limit_price < stop_loss"
            raise OrderRejected(name, f"a {side} needs {order}")
