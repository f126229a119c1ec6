"""Execution backends behind one protocol: paper (default), backtest and exchange (ccxt).

``[execution] broker`` (:mod:`.config`) chooses one; :func:`.factory.build_broker` builds it
for every driver. See :mod:`tripwire.execution.base` for the protocol, the order/fill/position
values and the typed errors; :mod:`.paper` for the fill rules; :mod:`.backtest` for
deterministic replay; :mod:`.exchange` for real venues through ccxt (its client in
:mod:`.ccxt_session`, its value mapping in :mod:`.ccxt_mapping`; imported from there, so ccxt
loads only on use).
"""

from tripwire.execution.backtest import BacktestBroker, BacktestResult, chunks_of, fills_digest
from tripwire.execution.base import (
    Account,
    AuthenticationFailed,
    BackendUnavailable,
    Bracket,
    Broker,
    DuplicateClientOrderId,
    EquityPoint,
    ExecutionError,
    Fill,
    FillKind,
    InsufficientFunds,
    Liquidity,
    Order,
    OrderNotOpen,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    RateLimited,
    Side,
    UnknownOrder,
    validate_request,
)
from tripwire.execution.paper import PaperBroker, PaperConfig

__all__ = [
    "Account",
    "AuthenticationFailed",
    "BackendUnavailable",
    "BacktestBroker",
    "BacktestResult",
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
    "PaperBroker",
    "PaperConfig",
    "Position",
    "RateLimited",
    "Side",
    "UnknownOrder",
    "chunks_of",
    "fills_digest",
    "validate_request",
]
