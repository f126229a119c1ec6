"""The ccxt feed beyond the conformance suite: its settings, ccxt's trade dicts, non-integer ids."""

from __future__ import annotations

import asyncio

import pytest

from tests.adapters.ccxt.kit import okx_config
from tests.adapters.ccxt.okx_server import OkxReplayServer, push, trade
from tests.adapters.conformance import collect, options
from tests.adapters.loopback import Session, Then
from tripwire.adapters.ccxt.config import CcxtFeedConfig, parse_source
from tripwire.adapters.ccxt.schemas import Refusal, parse_trade
from tripwire.adapters.ccxt.websocket import CcxtTradeFeed
from tripwire.model import DeadReason


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: CcxtFeedConfig("nope", ("BTC/USDT",)), "no WebSocket"),
        (lambda: CcxtFeedConfig("okx", ()), "needs symbols"),
        (lambda: CcxtFeedConfig("okx", ("BTCUSDT",)), "unified 'BASE/QUOTE'"),
        (lambda: CcxtFeedConfig("okx", ("BTC/USDT", "BTC/USDT")), "listed twice"),
        (lambda: CcxtFeedConfig("okx", ("BTC/USDT",), ws_url="http://x"), "ws_url"),
        (lambda: parse_source("ccxt:", ["BTC/USDT"]), "ccxt:<exchange id>"),
    ],
)
def test_bad_settings_are_refused_naming_them(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("trade", "reason"),
    [
        ({"symbol": None, "timestamp": 1_700_000_000_000}, DeadReason.UNKNOWN_SYMBOL),
        ({"timestamp": 10}, DeadReason.BAD_TIME),
        ({"timestamp": True}, DeadReason.BAD_TIME),
        ({"price": "abc"}, DeadReason.BAD_PRICE),
        ({"price": None}, DeadReason.BAD_PRICE),
        ({"amount": [1]}, DeadReason.BAD_QTY),
    ],
)
def test_unified_trades_that_cannot_be_ticks_are_refused_with_a_reason(trade, reason):
    good = {"id": "7", "timestamp": 1_700_000_000_000, "symbol": "BTC/USDT", "side": "buy",
            "price": 1.0, "amount": 2.0}
    got = parse_trade(good | trade, "trades")
    assert isinstance(got, Refusal) and got.reason is reason and got.detail


def test_ids_that_are_not_integers_keep_no_trade_id_and_repeats_are_dropped():
    """Bybit-style UUID ids: no gap detection, but a replayed trade is still not doubled."""
    frames = [push("BTC-USDT", [trade("BTC-USDT", f"uuid-{i}", ts=1_700_000_000_000 + i)])
              for i in range(5)]
    sessions = [Session(0, 3, Then.CLOSE), Session(1, None)]

    async def run():
        async with OkxReplayServer(frames, sessions) as server:
            feed = CcxtTradeFeed(okx_config(server.url), **options())
            return feed, await collect(feed, lambda c: sum(len(x.dead) for x in c) >= 2
                                       and sum(len(x.ticks) for x in c) >= 5)

    _feed, chunks = asyncio.run(run())
    assert [t for c in chunks for t in c.ticks.trade_id.tolist()] == [-1] * 5
    dups = [d for c in chunks for d in c.dead]
    assert [d.reason for d in dups] == [DeadReason.DUPLICATE] * 2
    assert "uuid-1" in dups[0].detail


def test_a_symbol_the_exchange_does_not_list_stops_the_feed_naming_it():
    config = CcxtFeedConfig("okx", ("ETH/USDT",), ws_url="ws://127.0.0.1:1/ws/v5",
                            markets=okx_config("ws://x").markets)
    with pytest.raises(ValueError, match="okx has no market ETH/USDT"):
        CcxtTradeFeed(config)._build_exchange()
