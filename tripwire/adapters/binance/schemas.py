"""Binance trade and aggTrade messages: wire text -> tick row values, or a dead letter.

Pure functions, no I/O, shared by the WebSocket feed and anything else that reads Binance
frames (recordings, tests). The wire format:

* a payload is ``{"e": "trade", "s": "BNBBTC", "t": 12345, "p": "0.001", "q": "100",
  "T": trade_ms, "m": true, ...}`` or the same with ``"e": "aggTrade"`` and the aggregate
  id in ``"a"``; combined streams wrap it as ``{"stream": "bnbbtc@trade", "data": {...}}``;
* prices and quantities are decimal strings; times are integer milliseconds, or microseconds
  when the connection asked for ``timeUnit=MICROSECOND``;
* ``"m"`` means "the buyer is the market maker", so the *taker* sold: ``Side.SELL``;
* replies to requests (``{"result": null, "id": 1}``, ``{"error": {...}, "id": 1}``) are
  neither ticks nor bad ticks: they parse to a :class:`Reply`.

The parser judges only the form of a message (missing fields, wrong types, a price that is
not a number, a time that cannot be right for the configured unit). Whether a well-formed
value is acceptable (NaN, inf, <= 0 prices, negative quantities, repeats) is the
:class:`~tripwire.feeds.validate.TickValidator`'s call, so every feed applies one rule set.

>>> frame = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1700000000001,"s":"BTCUSDT",'
...          '"t":42,"p":"37000.5","q":"0.01","T":1700000000000,"m":true,"M":true}}')
>>> row = parse_frame(frame, now_ns=5)
>>> row.symbol, row.trade_id, row.price, row.qty, row.side, row.ts_ns
('BTCUSDT', 42, 37000.5, 0.01, -1, 1700000000000000000)
>>> parse_frame('{"result":null,"id":1}', now_ns=5)
Reply(id=1, result=None, error=None)
>>> bad = parse_frame('{"e":"trade","s":"BTCUSDT","t":1,"p":"abc","q":"1","T":1,"m":false}',
...                   now_ns=5)
>>> bad.reason.value, bad.detail
('malformed', "price 'abc' is not a number")
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, NamedTuple

from tripwire.adapters.binance.config import MAX_TS_NS, MIN_TS_NS
from tripwire.adapters.live import TradeRow
from tripwire.model import DeadLetter, DeadReason, Side

SOURCE = "binance-ws"

SIDE_BUY = int(Side.BUY)
SIDE_SELL = int(Side.SELL)

MAX_TRADE_ID = 2**63 - 1

STREAM_KINDS = {"trade": "trade", "aggtrade": "aggTrade"}  # lower-cased -> Binance spelling
_SYMBOL_RE = re.compile(r"[A-Za-z0-9]+")

_FIELD_NAMES = {
    "s": "symbol",
    "p": "price",
    "q": "quantity",
    "T": "trade time",
    "m": "buyer-is-maker flag",
    "t": "trade id",
    "a": "aggregate trade id",
}
_ID_FIELD = {"trade": "t", "aggTrade": "a"}


class TimeUnit(StrEnum):
    """Unit of Binance's times; the value is what the ``timeUnit`` URL parameter takes."""

    MILLISECOND = "MILLISECOND"
    MICROSECOND = "MICROSECOND"

    @classmethod
    def _missing_(cls, value: object) -> TimeUnit | None:
        """Also accept "ms", "us", "µs" and any letter case: config files spell it freely."""
        if not isinstance(value, str):
            return None
        aliases = {"ms": "MILLISECOND", "us": "MICROSECOND", "µs": "MICROSECOND"}
        name = aliases.get(value.lower(), value.upper())
        return cls.__members__.get(name)

    @property
    def ns(self) -> int:
        """Nanoseconds per unit."""
        return 1_000_000 if self is TimeUnit.MILLISECOND else 1_000


class Reply(NamedTuple):
    """The server's answer to a request (SUBSCRIBE, LIST_SUBSCRIPTIONS, ...)."""

    id: Any
    result: Any = None
    error: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None


class StreamName(NamedTuple):
    """A trade stream, e.g. ``btcusdt@aggTrade``: symbol upper-case, name as Binance wants it."""

    symbol: str
    kind: str  # "trade" or "aggTrade"

    @property
    def name(self) -> str:
        return f"{self.symbol.lower()}@{self.kind}"


class _Refused(Exception):
    def __init__(self, reason: DeadReason, detail: str, symbol: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.symbol = symbol


# ----------------------------------------------------------------------------- frames


def parse_frame(
    frame: str | bytes,
    *,
    now_ns: int,
    source: str = SOURCE,
    time_unit: TimeUnit = TimeUnit.MILLISECOND,
) -> TradeRow | Reply | DeadLetter:
    """Parse one WebSocket text frame (raw or combined-stream format).

    ``now_ns`` stamps a dead letter's refusal time. A frame that is not JSON, or not a trade,
    becomes a ``malformed`` dead letter carrying the frame text and what was wrong.
    """
    try:
        payload = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        text = frame_text(frame)
        return DeadLetter.make(source, DeadReason.MALFORMED, text, now_ns, None, f"not JSON: {exc}")
    return parse_payload(payload, now_ns=now_ns, source=source, time_unit=time_unit, raw=frame)


def parse_payload(
    payload: object,
    *,
    now_ns: int,
    source: str = SOURCE,
    time_unit: TimeUnit = TimeUnit.MILLISECOND,
    raw: str | bytes | None = None,
) -> TradeRow | Reply | DeadLetter:
    """Parse an already decoded message; ``raw`` is kept in a dead letter (else re-encoded)."""
    try:
        return _parse(payload, time_unit.ns)
    except _Refused as refused:
        text = frame_text(raw) if raw is not None else _dump(payload)
        return DeadLetter.make(source, refused.reason, text, now_ns, refused.symbol, refused.detail)


def frame_text(frame: str | bytes) -> str:
    """A frame as text for a dead letter (binary frames decoded leniently)."""
    return frame if isinstance(frame, str) else frame.decode("utf-8", errors="replace")


def _dump(payload: object) -> str:
    try:
        return json.dumps(payload)
    except (TypeError, ValueError):
        return repr(payload)


def _parse(payload: object, unit_ns: int) -> TradeRow | Reply:
    if not isinstance(payload, dict):
        raise _Refused(DeadReason.MALFORMED, f"expected a JSON object, got {_kind(payload)}")
    if "stream" in payload and "data" in payload:
        payload = payload["data"]
        if not isinstance(payload, dict):
            detail = f"combined-stream 'data' must be an object, got {_kind(payload)}"
            raise _Refused(DeadReason.MALFORMED, detail)
    event = payload.get("e")
    if event is None:
        if "id" in payload and ("result" in payload or "error" in payload):
            return Reply(payload["id"], payload.get("result"), payload.get("error"))
        raise _Refused(DeadReason.MALFORMED, "no event type 'e' and not a reply to a request")
    if event not in _ID_FIELD:
        raise _Refused(DeadReason.MALFORMED, f"unsupported event type {event!r}")
    return _trade(payload, event, unit_ns)


def _trade(p: dict, event: str, unit_ns: int) -> TradeRow:
    symbol = _field(p, "s", event)
    if not isinstance(symbol, str) or not symbol:
        raise _Refused(DeadReason.MALFORMED, f"symbol 's' must be a non-empty string: {symbol!r}")
    try:
        price = _decimal(_field(p, "p", event), "price")
        qty = _decimal(_field(p, "q", event), "quantity")
        trade_id = _trade_id(_field(p, _ID_FIELD[event], event), _ID_FIELD[event])
        ts_ns = _time_ns(_field(p, "T", event), unit_ns)
        maker = _field(p, "m", event)
        if not isinstance(maker, bool):
            raise _Refused(DeadReason.MALFORMED, f"buyer-is-maker 'm' must be a boolean: {maker!r}")
    except _Refused as refused:
        refused.symbol = symbol
        raise
    side = SIDE_SELL if maker else SIDE_BUY
    return TradeRow(symbol, ts_ns, price, qty, side, trade_id, event)


def _field(p: dict, key: str, event: str) -> Any:
    try:
        return p[key]
    except KeyError:
        detail = f"{event} message has no {key!r} ({_FIELD_NAMES[key]})"
        raise _Refused(DeadReason.MALFORMED, detail) from None


def _decimal(value: object, name: str) -> float:
    if isinstance(value, str):
        # float() also takes "1_000"; Binance never sends that, so it means a corrupt frame.
        if "_" not in value:
            try:
                return float(value)
            except ValueError:
                pass
        raise _Refused(DeadReason.MALFORMED, f"{name} {value!r} is not a number")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _Refused(DeadReason.MALFORMED, f"{name} must be a decimal string, got {_kind(value)}")


def _trade_id(value: object, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TRADE_ID:
        return value
    detail = f"{_FIELD_NAMES[key]} {key!r} must be a non-negative 64-bit integer: {value!r}"
    raise _Refused(DeadReason.MALFORMED, detail)


def _time_ns(value: object, unit_ns: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Refused(DeadReason.MALFORMED, f"trade time 'T' must be an integer: {value!r}")
    ts_ns = value * unit_ns
    if not MIN_TS_NS <= ts_ns < MAX_TS_NS:
        unit = "ms" if unit_ns == TimeUnit.MILLISECOND.ns else "us"
        detail = f"trade time T={value} ({unit}) is outside 2017..2200: wrong time unit?"
        raise _Refused(DeadReason.BAD_TIME, detail)
    return ts_ns


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


# ----------------------------------------------------------------------------- streams


def parse_stream(stream: str) -> StreamName:
    """``"btcusdt@trade"`` -> ``StreamName("BTCUSDT", "trade")``; ValueError naming the stream.

    >>> parse_stream("ETHUSDT@aggtrade").name
    'ethusdt@aggTrade'
    """
    if not isinstance(stream, str) or stream.count("@") != 1:
        raise ValueError(f"stream {stream!r} is not '<symbol>@trade' or '<symbol>@aggTrade'")
    symbol, kind = stream.split("@")
    if not _SYMBOL_RE.fullmatch(symbol):
        raise ValueError(f"stream {stream!r}: symbol {symbol!r} must be letters and digits")
    if kind.lower() not in STREAM_KINDS:
        raise ValueError(f"stream {stream!r}: only 'trade' and 'aggTrade' streams carry ticks")
    return StreamName(symbol.upper(), STREAM_KINDS[kind.lower()])


def combined_stream_url(
    base_url: str, streams: Sequence[str], time_unit: TimeUnit = TimeUnit.MILLISECOND
) -> str:
    """The combined-stream URL: ``{base}/stream?streams=a@trade/b@aggTrade[&timeUnit=...]``.

    >>> combined_stream_url("ws://h:1/", ["a@trade", "b@aggTrade"], TimeUnit.MICROSECOND)
    'ws://h:1/stream?streams=a@trade/b@aggTrade&timeUnit=MICROSECOND'
    """
    url = f"{base_url.rstrip('/')}/stream?streams={'/'.join(streams)}"
    return url + _time_unit_param("&", time_unit)


def subscribe_url(base_url: str, time_unit: TimeUnit = TimeUnit.MILLISECOND) -> str:
    """The URL to connect to before subscribing with :func:`subscribe_message`."""
    return f"{base_url.rstrip('/')}/stream" + _time_unit_param("?", time_unit)


def _time_unit_param(sep: str, time_unit: TimeUnit) -> str:
    # Milliseconds are Binance's default; leave the URL as Binance documents it.
    return "" if time_unit is TimeUnit.MILLISECOND else f"{sep}timeUnit={time_unit.value}"


def subscribe_message(streams: Sequence[str], request_id: int) -> str:
    """The SUBSCRIBE request for ``streams``.

    >>> subscribe_message(["btcusdt@trade"], 3)
    '{"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 3}'
    """
    return json.dumps({"method": "SUBSCRIBE", "params": list(streams), "id": request_id})
