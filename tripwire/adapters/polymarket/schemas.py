"""Polymarket market-channel messages (and data-API trades): wire -> rows, events, dead letters.

Pure functions, no I/O. The market channel (``wss://.../ws/market``) sends JSON objects, or
a JSON array of them (the initial book dump), each with an ``event_type``:

* ``last_trade_price`` -- a trade: ``asset_id``, ``market``, ``price`` and ``size`` (decimal
  strings), ``side`` (``BUY``/``SELL``, the taker's), ``timestamp`` (ms, a string),
  ``fee_rate_bps``, sometimes ``transaction_hash``. -> :class:`Trade` (a tick);
* ``book`` (a snapshot: ``bids``/``asks`` of ``{price, size}``), ``price_change``
  (``price_changes[]``, each with the asset's new ``best_bid``/``best_ask``) and
  ``best_bid_ask`` -> :class:`Quote`: **counted and kept as the asset's best bid/ask, never
  ticks** (a quote is not a trade; scoring it would double the activity);
* ``tick_size_change`` (``old_tick_size``/``new_tick_size``), ``market_resolved``
  (``assets_ids``, ``winning_asset_id``, ``winning_outcome``) and ``new_market`` ->
  :class:`VenueEvent`: events, never anomalies;
* the text ``PONG`` answers our ``PING`` keep-alive.

Prices are probabilities: a trade price outside [0, 1] is refused ``bad_price`` with the
value named (0 itself is left to the validator, which refuses prices <= 0 for every venue).

The data API's trades history (``GET /trades``) is a JSON array of ``{asset, conditionId,
side, price, size, timestamp (s), transactionHash, outcome, ...}`` (numbers, not strings):
:func:`parse_history_trade`.

>>> items = parse_frame('{"event_type":"last_trade_price","asset_id":"7","market":"0x1",'
...     '"price":"0.456","size":"219.2","side":"SELL","timestamp":"1750428146322"}', now_ns=1)
>>> t = items[0]; t.asset_id, t.price, t.qty, t.side, t.ts_ns
('7', 0.456, 219.2, -1, 1750428146322000000)
>>> bad = parse_frame('{"event_type":"last_trade_price","asset_id":"7","price":"1.2",'
...     '"size":"1","side":"BUY","timestamp":"1750428146322"}', now_ns=1)[0]
>>> bad.reason.value, bad.detail
('bad_price', 'price 1.2 is outside [0, 1]: a Polymarket price is a probability')
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tripwire.model import DeadLetter, DeadReason, Side

SOURCE = "polymarket-ws"
HISTORY_SOURCE = "polymarket-trades"

MIN_TS_NS = 1_577_836_800 * 1_000_000_000  # 2020-01-01: Polymarket did not exist before
MAX_TS_NS = 7_258_118_400 * 1_000_000_000  # 2200-01-01
_SIDES = {"BUY": int(Side.BUY), "SELL": int(Side.SELL)}
EVENT_KINDS = ("tick_size_change", "market_resolved", "new_market", "halt")


class Trade(NamedTuple):
    """One trade of an outcome token; ``key`` identifies it for de-duplication."""

    asset_id: str
    ts_ns: int
    price: float
    qty: float
    side: int
    key: int  # 63-bit digest of the trade's fields (asset, time, price, size, side, tx)


class Quote(NamedTuple):
    """An asset's best bid/ask after a book, price_change or best_bid_ask message."""

    asset_id: str
    kind: str
    best_bid: float | None
    best_ask: float | None
    ts_ns: int


@dataclass(frozen=True, slots=True)
class VenueEvent:
    """Something that happened to a market, not a price move: a tick size change, a market
    resolved (its tokens stop trading: a ``halt`` per token follows it) or a new market."""

    kind: str  # one of EVENT_KINDS
    ts_ns: int
    market: str = ""
    asset_ids: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


class Pong(NamedTuple):
    pass


Parsed = Trade | Quote | VenueEvent | Pong | DeadLetter


class _Refused(Exception):
    def __init__(self, reason: DeadReason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def parse_frame(frame: str | bytes, *, now_ns: int, source: str = SOURCE) -> list[Parsed]:
    """One WebSocket frame -> its items in order (an array frame gives several)."""
    text = frame if isinstance(frame, str) else frame.decode("utf-8", errors="replace")
    if text.strip() == "PONG":
        return [Pong()]
    try:
        payload = json.loads(text)
    except ValueError as exc:
        return [DeadLetter.make(source, DeadReason.MALFORMED, text, now_ns, None,
                                f"not JSON: {exc}")]
    messages = payload if isinstance(payload, list) else [payload]
    out: list[Parsed] = []
    for msg in messages:
        try:
            out.extend(_message(msg))
        except _Refused as refused:
            raw = text if len(messages) == 1 else _dump(msg)
            out.append(DeadLetter.make(source, refused.reason, raw, now_ns, _asset(msg),
                                       refused.detail))
    return out


def _message(msg: object) -> list[Parsed]:
    if not isinstance(msg, dict):
        raise _Refused(DeadReason.MALFORMED, f"expected a JSON object, got {_kind(msg)}")
    kind = msg.get("event_type")
    if kind == "last_trade_price":
        return [_trade(msg)]
    if kind == "book":
        bids, asks = _levels(msg, "bids"), _levels(msg, "asks")
        return [Quote(_str(msg, "asset_id"), "book", max(bids, default=None),
                      min(asks, default=None), _ts(msg.get("timestamp")))]
    if kind == "price_change":
        changes = msg.get("price_changes")
        if not isinstance(changes, list):
            raise _Refused(DeadReason.MALFORMED, "price_change has no price_changes[] array "
                                                 "(the format before September 2025?)")
        ts = _ts(msg.get("timestamp"))
        return [Quote(_str(c, "asset_id"), "price_change", _opt_price(c, "best_bid"),
                      _opt_price(c, "best_ask"), ts) for c in changes if _is_obj(c)]
    if kind == "best_bid_ask":
        return [Quote(_str(msg, "asset_id"), "best_bid_ask", _opt_price(msg, "best_bid"),
                      _opt_price(msg, "best_ask"), _ts(msg.get("timestamp")))]
    if kind == "tick_size_change":
        old = _price(msg.get("old_tick_size"), "old_tick_size")
        new = _price(msg.get("new_tick_size"), "new_tick_size")
        return [VenueEvent("tick_size_change", _ts(msg.get("timestamp")),
                           str(msg.get("market", "")), (_str(msg, "asset_id"),),
                           {"old_tick_size": old, "new_tick_size": new})]
    if kind in ("market_resolved", "new_market"):
        assets = msg.get("assets_ids")
        if not isinstance(assets, list) or not all(isinstance(a, str) for a in assets):
            raise _Refused(DeadReason.MALFORMED, f"{kind} needs assets_ids, a list of strings")
        detail = {k: msg[k] for k in ("winning_asset_id", "winning_outcome", "question", "slug")
                  if isinstance(msg.get(k), str)}
        return [VenueEvent(kind, _ts(msg.get("timestamp")), str(msg.get("market", "")),
                           tuple(assets), detail)]
    if kind is None:
        raise _Refused(DeadReason.MALFORMED, "no event_type")
    raise _Refused(DeadReason.MALFORMED, f"unsupported event_type {kind!r}")


def _trade(msg: dict) -> Trade:
    asset = _str(msg, "asset_id")
    price = _price(msg.get("price"), "price")
    qty = _number(msg.get("size"), "size")
    side = _SIDES.get(msg.get("side"))  # type: ignore[arg-type]
    if side is None:
        raise _Refused(DeadReason.MALFORMED, f"side must be BUY or SELL, got {msg.get('side')!r}")
    ts = _ts(msg.get("timestamp"))
    tx = msg.get("transaction_hash", "")
    # The digest reads the wire text of price and size (cheaper than formatting floats).
    key = trade_key(asset, ts, msg["price"], msg["size"], side, tx)
    return Trade(asset, ts, price, qty, side, key)


def parse_history_trade(row: object) -> Trade:
    """One row of the data API's ``/trades`` answer; raises ValueError naming the problem."""
    try:
        if not isinstance(row, dict):
            raise _Refused(DeadReason.MALFORMED, f"expected a JSON object, got {_kind(row)}")
        asset = _str(row, "asset")
        price = _price(row.get("price"), "price")
        qty = _number(row.get("size"), "size")
        side = _SIDES.get(row.get("side"))  # type: ignore[arg-type]
        if side is None:
            raise _Refused(DeadReason.MALFORMED, f"side must be BUY or SELL, got "
                                                 f"{row.get('side')!r}")
        seconds = row.get("timestamp")
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise _Refused(DeadReason.MALFORMED, f"timestamp must be integer seconds, got "
                                                 f"{seconds!r}")
        ts = _ts(seconds * 1000)
        tx = str(row.get("transactionHash", ""))
        return Trade(asset, ts, price, qty, side, trade_key(asset, ts, price, qty, side, tx))
    except _Refused as refused:
        raise HistoryRowError(refused.reason, refused.detail) from None


class HistoryRowError(ValueError):
    def __init__(self, reason: DeadReason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def trade_key(asset: str, ts_ns: int, price: object, qty: object, side: int, tx: object) -> int:
    """A deterministic 63-bit id of a trade's content (Polymarket sends no trade id)."""
    text = f"{asset}|{ts_ns}|{price}|{qty}|{side}|{tx}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


def subscribe_message(asset_ids: list[str] | tuple[str, ...], custom_features: bool) -> str:
    """The market channel's subscription, sent on every (re)connect.

    >>> subscribe_message(["1", "2"], True)
    '{"assets_ids": ["1", "2"], "type": "market", "custom_feature_enabled": true}'
    """
    return json.dumps({"assets_ids": list(asset_ids), "type": "market",
                       "custom_feature_enabled": custom_features})


# ----------------------------------------------------------------------------- fields


def _is_obj(value: object) -> bool:
    if not isinstance(value, dict):
        raise _Refused(DeadReason.MALFORMED, f"price_changes entries must be objects, got "
                                             f"{_kind(value)}")
    return True


def _str(msg: dict, key: str) -> str:
    value = msg.get(key)
    if not isinstance(value, str) or not value:
        raise _Refused(DeadReason.MALFORMED, f"{key} must be a non-empty string, got {value!r}")
    return value


def _number(value: object, name: str) -> float:
    if isinstance(value, str) and "_" not in value:
        try:
            return float(value)
        except ValueError:
            pass
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _Refused(DeadReason.MALFORMED, f"{name} {value!r} is not a number")


def _price(value: object, name: str) -> float:
    p = _number(value, name)
    if not 0.0 <= p <= 1.0:  # NaN fails this too
        raise _Refused(DeadReason.BAD_PRICE,
                       f"{name} {p!r} is outside [0, 1]: a Polymarket price is a probability")
    return p


def _opt_price(msg: dict, key: str) -> float | None:
    value = msg.get(key)
    return None if value in (None, "") else _price(value, key)


def _levels(msg: dict, key: str) -> list[float]:
    levels = msg.get(key, [])
    if not isinstance(levels, list):
        raise _Refused(DeadReason.MALFORMED, f"book {key} must be a list, got {_kind(levels)}")
    out = []
    for lvl in levels:
        if not isinstance(lvl, dict):
            raise _Refused(DeadReason.MALFORMED, f"book {key} levels must be objects")
        out.append(_price(lvl.get("price"), f"{key} price"))
    return out


def _ts(value: object) -> int:
    """Milliseconds (an integer or a string of digits) -> ns, within 2020..2200."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Refused(DeadReason.MALFORMED, f"timestamp must be integer milliseconds, got "
                                             f"{value!r}")
    ts = value * 1_000_000
    if not MIN_TS_NS <= ts < MAX_TS_NS:
        raise _Refused(DeadReason.BAD_TIME, f"timestamp {value} ms is outside 2020..2200")
    return ts


def _asset(msg: object) -> str | None:
    if isinstance(msg, dict):
        value = msg.get("asset_id") or msg.get("asset")
        return value if isinstance(value, str) else None
    return None


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _dump(value: object) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
