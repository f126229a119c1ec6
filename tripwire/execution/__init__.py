"""Execution backends behind one protocol: paper (default) and backtest.

See :mod:`tripwire.execution.base` for the protocol, the order/fill/position values and the
typed errors; :mod:`.paper` for the fill rules; :mod:`.backtest` for deterministic replay.
"""

from tripwire.execution.backtest import BacktestBroker, BacktestResult, chunks_of, fills_digest
from tripwire.execution.base import (
    Account,
    Bracket,
    Broker,
    DuplicateClientOrderId,
    EquityPoint,
    ExecutionError,
    Fill,
    FillKind,
    Liquidity,
    Order,
    OrderNotOpen,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
    UnknownOrder,
    validate_request,
)
from tripwire.execution.paper import PaperBroker, PaperConfig

__all__ = [
    "Account",
    "BacktestBroker",
    "BacktestResult",
    "Bracket",
    "Broker",
    "DuplicateClientOrderId",
    "EquityPoint",
    "ExecutionError",
    "Fill",
    "FillKind",
    "Liquidity",
    "Order",
    "OrderNotOpen",
    "OrderRejected",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "PaperBroker",
    "PaperConfig",
    "Position",
    "Side",
    "UnknownOrder",
    "chunks_of",
    "fills_digest",
    "validate_request",
]
