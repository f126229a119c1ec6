"""ccxt's unified trade -> a tick row, or why it is refused.

``watch_trades`` yields ccxt's unified trade structures (``{"id", "timestamp", "symbol",
"side", "price", "amount", "info", ...}``), already parsed from the exchange's wire format by
ccxt. What is judged here is what tripwire needs of them: a known symbol, an exchange time
in milliseconds inside 2009..2200, a price and an amount that are numbers, a side. Values
(NaN, <= 0 prices, repeats) are the :class:`~tripwire.feeds.validate.TickValidator`'s call.

Trade ids: an id of decimal digits (OKX, Coinbase, Kraken, Binance) becomes ``trade_id``, so
duplicates and gaps are caught by id; any other id (Bybit's UUIDs) gives ``trade_id = -1``,
and the feed drops repeats of it by a bounded memory of recent ids (no gap detection).

>>> row = parse_trade({"id": "42", "timestamp": 1700000000000, "symbol": "BTC/USDT",
...                    "side": "sell", "price": 37000.5, "amount": 0.01}, "trades")
>>> row.symbol, row.trade_id, row.side, row.ts_ns
('BTCUSDT', 42, -1, 1700000000000000000)
>>> parse_trade({"id": "1", "timestamp": None, "symbol": "BTC/USDT", "side": "buy",
...              "price": 1.0, "amount": 1.0}, "trades")
Refusal(reason=<DeadReason.BAD_TIME: 'bad_time'>, detail='trade has no timestamp (ms)')
"""

from __future__ import annotations

from typing import Any, NamedTuple

from tripwire.adapters.ccxt.instruments import symbol_name
from tripwire.adapters.live import TradeRow
from tripwire.model import DeadReason, Side

MIN_TS_MS = 1_230_768_000_000  # 2009-01-01: before any crypto exchange
MAX_TS_MS = 7_258_118_400_000  # 2200-01-01: keeps nanoseconds inside int64
MAX_TRADE_ID = 2**63 - 1
NO_TRADE_ID = -1
KEEPALIVES = frozenset({"ping", "pong"})  # text frames that are heartbeats, not data

_SIDES = {"buy": int(Side.BUY), "sell": int(Side.SELL)}


class Refusal(NamedTuple):
    reason: DeadReason
    detail: str


def parse_trade(trade: Any, kind: str) -> TradeRow | Refusal:
    """One unified trade -> a row (symbol as tripwire's name), or the reason it is refused."""
    if not isinstance(trade, dict):
        return Refusal(DeadReason.MALFORMED, f"trade is not an object: {type(trade).__name__}")
    symbol = trade.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        return Refusal(DeadReason.UNKNOWN_SYMBOL, f"trade has no symbol: {symbol!r}")
    ts = trade.get("timestamp")
    if ts is None:
        return Refusal(DeadReason.BAD_TIME, "trade has no timestamp (ms)")
    if not isinstance(ts, int) or isinstance(ts, bool) or not MIN_TS_MS <= ts < MAX_TS_MS:
        return Refusal(DeadReason.BAD_TIME, f"timestamp {ts!r} ms is outside 2009..2200")
    price = _number(trade.get("price"))
    if price is None:
        return Refusal(DeadReason.BAD_PRICE, f"price {trade.get('price')!r} is not a number")
    qty = _number(trade.get("amount"))
    if qty is None:
        return Refusal(DeadReason.BAD_QTY, f"amount {trade.get('amount')!r} is not a number")
    side = _SIDES.get(trade.get("side"), int(Side.UNKNOWN))
    return TradeRow(symbol_name(symbol), ts * 1_000_000, price, qty, side, trade_id(trade), kind)


def trade_id(trade: dict) -> int:
    """The integer trade id, or -1 when the exchange's id is not one (then see module doc)."""
    raw = trade.get("id")
    if isinstance(raw, str) and raw.isdigit() and len(raw) <= 19:
        value = int(raw)
        return value if value <= MAX_TRADE_ID else NO_TRADE_ID
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= MAX_TRADE_ID:
        return raw
    return NO_TRADE_ID


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number  # NaN and inf are the validator's to refuse, with their own reason
    return None
