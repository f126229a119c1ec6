"""The Binance WebSocket feed's conformance kit (subscribing by message, as after a reconnect)."""

from __future__ import annotations

from tests.adapters.binance.server import BinanceReplayServer, combined, trade_frames, trade_payload
from tests.adapters.conformance import TS0_MS, VenueKit
from tripwire.adapters.binance.websocket import BinanceWebSocketFeed


def _feed(url: str, **options) -> BinanceWebSocketFeed:
    return BinanceWebSocketFeed(
        ["btcusdt@trade"], base_url=url, subscribe=True, proxy=None, ping_interval=0.2,
        ping_timeout=2.0, close_timeout=0.5, **options,
    )


KIT = VenueKit(
    name="binance",
    symbol="BTCUSDT",
    server=lambda frames, sessions: BinanceReplayServer(frames, sessions, require_subscribe=True),
    trades=lambda ids: trade_frames("BTCUSDT", ids, ts0=TS0_MS),
    feed=_feed,
    url=lambda server: server.url,
    garbage=(
        "not json at all",
        b"\xff\xfe binary junk",
        combined(trade_payload("BTCUSDT", 9_999, price="abc")),
        '{"e":"trade","s":"BTCUSDT"}',
        '{"stream":"btcusdt@trade","data":[1,2]}',
    ),
)
