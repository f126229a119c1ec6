"""Mapping between ccxt's unified order/trade dicts and tripwire's values (no I/O).

* Status: ccxt ``open``/``canceling`` -> OPEN, ``closed`` -> FILLED, ``canceled``/``expired``/
  ``rejected`` -> CANCELLED; an unknown or missing status counts as OPEN (still working),
  which is the cautious reading.
* Replace legs: a replace is cancel + new on the venue; the new leg's client id is
  ``<id>.r<n>``, hashed when it would pass :data:`MAX_CLIENT_ID` characters.
* Fills: fill id = trade id; the fee is converted to the quote currency by the caller's
  ``convert`` (fees in the base asset at the trade price). A venue rebate stays negative.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

from tripwire.execution.base import (
    ExecutionError,
    Fill,
    FillKind,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
)

__all__ = [
    "MAX_CLIENT_ID",
    "avg_price",
    "ccxt_side",
    "derived_client_id",
    "guess_field",
    "map_status",
    "num",
    "quote_fee",
    "request_from",
    "to_fill",
    "with_context",
]

MAX_CLIENT_ID = 36  # binance's limit and a common one elsewhere; derived ids must fit

_STATUS = {
    "open": OrderStatus.OPEN,
    "canceling": OrderStatus.OPEN,  # still working until the venue confirms the cancel
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.CANCELLED,
    "rejected": OrderStatus.CANCELLED,
}


def map_status(status: str | None) -> OrderStatus:
    """ccxt order status -> OrderStatus; unknown counts as OPEN (assume it may still trade)."""
    return _STATUS.get(status or "", OrderStatus.OPEN)


def ccxt_side(side: Side) -> str:
    return "buy" if side is Side.BUY else "sell"


def derived_client_id(order_id: str, leg: int) -> str:
    """Client id of a replace leg: ``<id>.r<leg>``, hashed when it would exceed 36 chars.

    >>> derived_client_id("tw-1", 1), len(derived_client_id("tw-" + "a" * 33, 2))
    ('tw-1.r1', 30)
    """
    candidate = f"{order_id}.r{leg}"
    if len(candidate) <= MAX_CLIENT_ID:
        return candidate
    digest = hashlib.sha256(order_id.encode()).hexdigest()[:24]
    return f"tw-{digest}.r{leg}"


def request_from(order_id: str, name: str, raw: dict) -> OrderRequest:
    """The request a venue order stands for (an order found there, not placed here), with
    the stop-loss/take-profit attached to it where the venue reports them (ccxt's unified
    ``stopLossPrice``/``takeProfitPrice``): a restarted broker must still see a position's
    stop, or the watchdog would call it unprotected."""
    limit = raw.get("type") == "limit"
    return OrderRequest(
        client_order_id=order_id,
        symbol=name,
        side=Side.BUY if raw.get("side") == "buy" else Side.SELL,
        qty=num(raw.get("amount"), math.nan),
        order_type=OrderType.LIMIT if limit else OrderType.MARKET,
        limit_price=num(raw.get("price"), math.nan) if limit else None,
        stop_loss=_level(raw.get("stopLossPrice")),
        take_profit=_level(raw.get("takeProfitPrice")),
    )


def _level(value: object) -> float | None:
    level = num(value, math.nan)
    return level if math.isfinite(level) and level > 0 else None


def to_fill(trade: dict, owner: str, name: str, fee: float) -> Fill:
    """A ccxt trade as a Fill of order ``owner`` (fee already in the quote currency)."""
    return Fill(
        fill_id=str(trade.get("id")),
        order_id=owner,
        symbol=name,
        side=Side.BUY if trade.get("side") == "buy" else Side.SELL,
        qty=num(trade.get("amount"), 0.0),
        price=num(trade.get("price"), math.nan),
        fee=fee,
        liquidity=Liquidity.MAKER if trade.get("takerOrMaker") == "maker" else Liquidity.TAKER,
        kind=FillKind.ORDER,
        ts_ns=int(trade.get("timestamp") or 0) * 1_000_000,
    )


def quote_fee(trade: dict, market: dict, convert: Callable[[str, str], float]) -> float:
    """The trade's fees in the market's quote currency; ``convert(currency, quote)`` prices
    a third currency (NaN when it cannot)."""
    price = num(trade.get("price"), math.nan)
    fees = trade.get("fees") or ([trade["fee"]] if trade.get("fee") else [])
    total = 0.0
    for fee in fees:
        cost, currency = num(fee.get("cost"), 0.0), fee.get("currency")
        if not cost or currency == market["quote"]:
            total += cost
        elif currency == market["base"]:
            total += cost * price
        else:
            total += cost * convert(currency, market["quote"])
    return total


def with_context(error: ExecutionError, context: str) -> ExecutionError:
    # The base class fixes the message; the venue and operation still belong in it.
    error.args = (f"{error.args[0]} ({context})",)
    return error


def guess_field(message: str) -> str:
    """Which request field a venue's rejection is about, for OrderRejected.field."""
    text = message.lower()
    if any(k in text for k in ("quantity", "lot_size", "notional", "amount", "qty")):
        return "qty"
    if "price" in text:
        return "limit_price"
    if "symbol" in text:
        return "symbol"
    return "order"


def num(value: object, default: float) -> float:
    try:
        return default if value is None else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def avg_price(raw: dict) -> float:
    average = num(raw.get("average"), math.nan)
    if math.isfinite(average):
        return average
    filled, cost = num(raw.get("filled"), 0.0), num(raw.get("cost"), 0.0)
    return cost / filled if filled and cost else math.nan
