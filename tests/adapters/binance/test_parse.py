"""Parsing Binance trade/aggTrade frames: values, units, sides, and the dead letters of bad input."""

import json

import pytest

from tests.adapters.binance.server import combined, trade_payload
from tripwire.adapters.binance.schemas import (
    Reply,
    StreamName,
    TimeUnit,
    TradeRow,
    combined_stream_url,
    parse_frame,
    parse_payload,
    parse_stream,
    subscribe_message,
    subscribe_url,
)
from tripwire.model import DeadLetter, DeadReason, Side

TRADE = (
    '{"e":"trade","E":1700000000123,"s":"BNBBTC","t":12345,"p":"0.001","q":"100",'
    '"T":1700000000100,"m":true,"M":true}'
)
AGG = (
    '{"e":"aggTrade","E":1700000000123,"s":"ETHUSDT","a":777,"p":"2000.50","q":"0.25",'
    '"f":100,"l":105,"T":1700000000100,"m":false,"M":true}'
)


def test_trade_payload_values():
    row = parse_frame(TRADE, now_ns=1)
    assert row == TradeRow("BNBBTC", 1_700_000_000_100_000_000, 0.001, 100.0, -1, 12345, "trade")


def test_agg_trade_uses_the_aggregate_id():
    row = parse_frame(AGG, now_ns=1)
    assert (row.symbol, row.trade_id, row.price, row.qty, row.kind) == (
        "ETHUSDT",
        777,
        2000.5,
        0.25,
        "aggTrade",
    )


def test_combined_stream_frame_is_unwrapped():
    frame = json.dumps({"stream": "bnbbtc@trade", "data": json.loads(TRADE)})
    assert parse_frame(frame, now_ns=1) == parse_frame(TRADE, now_ns=1)


def test_bytes_frames_parse_like_text():
    assert parse_frame(AGG.encode(), now_ns=1) == parse_frame(AGG, now_ns=1)


@pytest.mark.parametrize(("buyer_maker", "side"), [(True, Side.SELL), (False, Side.BUY)])
def test_buyer_maker_means_the_taker_sold(buyer_maker, side):
    frame = combined(trade_payload("btcusdt", 1, buyer_maker=buyer_maker))
    assert parse_frame(frame, now_ns=1).side == side


@pytest.mark.parametrize(
    ("unit", "t", "ts_ns"),
    [
        (TimeUnit.MILLISECOND, 1_700_000_000_100, 1_700_000_000_100_000_000),
        (TimeUnit.MICROSECOND, 1_700_000_000_100_123, 1_700_000_000_100_123_000),
    ],
)
def test_time_units(unit, t, ts_ns):
    frame = combined(trade_payload("btcusdt", 1, ts=t))
    assert parse_frame(frame, now_ns=1, time_unit=unit).ts_ns == ts_ns


@pytest.mark.parametrize(
    ("unit", "t"),
    [
        (TimeUnit.MILLISECOND, 1_700_000_000_100_123),  # µs read as ms: far future
        (TimeUnit.MICROSECOND, 1_700_000_000_100),  # ms read as µs: January 1970
        (TimeUnit.MILLISECOND, 0),
        (TimeUnit.MILLISECOND, -5),
    ],
)
def test_implausible_times_are_bad_time(unit, t):
    dead = parse_frame(combined(trade_payload("btcusdt", 1, ts=t)), now_ns=9, time_unit=unit)
    assert isinstance(dead, DeadLetter)
    assert dead.reason is DeadReason.BAD_TIME
    assert f"T={t}" in dead.detail and dead.symbol == "BTCUSDT"


def test_time_unit_aliases():
    assert TimeUnit("ms") is TimeUnit.MILLISECOND
    assert TimeUnit("us") is TimeUnit.MICROSECOND is TimeUnit("microsecond")
    with pytest.raises(ValueError):
        TimeUnit("s")


def test_replies_are_neither_ticks_nor_errors():
    assert parse_frame('{"result":null,"id":1}', now_ns=1) == Reply(1, None, None)
    err = parse_frame('{"error":{"code":2,"msg":"Invalid request"},"id":4}', now_ns=1)
    assert isinstance(err, Reply) and not err.ok and err.error["code"] == 2


def _trade_with(**changes):
    p = json.loads(TRADE)
    for key, value in changes.items():
        if value is ...:
            del p[key]
        else:
            p[key] = value
    return json.dumps(p)


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"stream":"x@trade","data":[1]}', "'data' must be an object"),
        ('{"foo":1}', "no event type 'e'"),
        ('{"e":"kline","s":"BTCUSDT"}', "unsupported event type 'kline'"),
        (_trade_with(p=...), "no 'p' (price)"),
        (_trade_with(q=...), "no 'q' (quantity)"),
        (_trade_with(T=...), "no 'T' (trade time)"),
        (_trade_with(t=...), "no 't' (trade id)"),
        (_trade_with(m=...), "no 'm'"),
        (_trade_with(s=...), "no 's' (symbol)"),
        (_trade_with(s=""), "symbol 's' must be a non-empty string"),
        (_trade_with(p="abc"), "price 'abc' is not a number"),
        (_trade_with(p="1_000"), "price '1_000' is not a number"),
        (_trade_with(q=[1]), "quantity must be a decimal string, got list"),
        (_trade_with(t=-1), "trade id 't' must be a non-negative 64-bit integer"),
        (_trade_with(t="7"), "trade id 't' must be a non-negative 64-bit integer"),
        (_trade_with(t=2**63), "trade id 't' must be a non-negative 64-bit integer"),
        (_trade_with(T="1700000000100"), "trade time 'T' must be an integer"),
        (_trade_with(T=True), "trade time 'T' must be an integer"),
        (_trade_with(m="true"), "buyer-is-maker 'm' must be a boolean"),
    ],
)
def test_malformed_frames_become_dead_letters_naming_the_problem(frame, detail):
    dead = parse_frame(frame, now_ns=42, source="unit")
    assert isinstance(dead, DeadLetter)
    assert dead.reason is DeadReason.MALFORMED
    assert detail in dead.detail
    assert (dead.raw, dead.ts_ns, dead.source) == (frame, 42, "unit")


def test_field_errors_name_the_symbol():
    assert parse_frame(_trade_with(p="x"), now_ns=1).symbol == "BNBBTC"


@pytest.mark.parametrize("price", ["NaN", "inf", "-1", "0"])
def test_bad_values_are_left_to_the_validator(price):
    # Well-formed but unacceptable values parse; TickValidator refuses them with one rule set.
    row = parse_frame(_trade_with(p=price), now_ns=1)
    assert isinstance(row, TradeRow)
    assert repr(row.price) == repr(float(price))  # repr: NaN != NaN


def test_parse_payload_reencodes_the_raw_when_not_given():
    dead = parse_payload({"e": "trade"}, now_ns=1)
    assert dead.raw == '{"e": "trade"}' and "no 's'" in dead.detail


def test_stream_names():
    assert parse_stream("btcusdt@trade") == StreamName("BTCUSDT", "trade")
    assert parse_stream("ETHUSDT@AGGTRADE").name == "ethusdt@aggTrade"
    for bad in ["btcusdt", "btcusdt@depth", "btc-usdt@trade", "a@b@trade", "@trade"]:
        with pytest.raises(ValueError, match="stream"):
            parse_stream(bad)


def test_urls_and_subscribe_message():
    url = combined_stream_url("wss://x:9443", ["btcusdt@trade", "ethusdt@aggTrade"])
    assert url == "wss://x:9443/stream?streams=btcusdt@trade/ethusdt@aggTrade"
    assert (
        subscribe_url("ws://h:1/", TimeUnit.MICROSECOND) == "ws://h:1/stream?timeUnit=MICROSECOND"
    )
    assert subscribe_url("ws://h:1") == "ws://h:1/stream"
    msg = json.loads(subscribe_message(["btcusdt@trade"], 9))
    assert msg == {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 9}
