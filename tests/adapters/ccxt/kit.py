"""The ccxt feed's conformance kit: ccxt.pro's OKX client against a loopback OKX server."""

from __future__ import annotations

from tests.adapters.ccxt.okx_server import OkxReplayServer, push, trade, trade_frames
from tests.adapters.conformance import TS0_MS, VenueKit
from tripwire.adapters.ccxt.config import CcxtFeedConfig
from tripwire.adapters.ccxt.instruments import spot_market
from tripwire.adapters.ccxt.websocket import CcxtTradeFeed


def okx_config(url: str, symbols=("BTC/USDT",)) -> CcxtFeedConfig:
    return CcxtFeedConfig(
        "okx", tuple(symbols), ws_url=url, markets=tuple(spot_market(s) for s in symbols)
    )


def _feed(url: str, **options) -> CcxtTradeFeed:
    return CcxtTradeFeed(okx_config(url), **options)


KIT = VenueKit(
    name="ccxt-okx",
    symbol="BTCUSDT",
    server=lambda frames, sessions: OkxReplayServer(frames, sessions),
    trades=lambda ids: trade_frames("BTC-USDT", ids, ts0=TS0_MS),
    feed=_feed,
    url=lambda server: server.url,
    garbage=(
        "not json at all",
        b"\xff\xfe binary junk",
        push("BTC-USDT", [trade("BTC-USDT", 9_999, px="abc")]),
        push("BTC-USDT", [trade("BTC-USDT", 9_998, ts="yesterday")]),
    ),
)
