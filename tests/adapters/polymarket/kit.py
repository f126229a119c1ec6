"""The Polymarket market channel's conformance kit (subscribing by message on each connect).

Polymarket sends no trade ids (``trade_ids=False``): the suite checks counts, and the feed's
content digests make a replayed trade a ``duplicate``.
"""

from __future__ import annotations

import json

from tests.adapters.conformance import TS0_MS, VenueKit
from tests.adapters.polymarket.server import YES, PolymarketReplayServer, trade
from tripwire.adapters.polymarket.config import PolymarketConfig
from tripwire.adapters.polymarket.websocket import PolymarketWebSocketFeed

SYMBOL = "PM-CONFORMANCE-YES"


def _feed(url: str, *, idle_timeout: float | None = None, **options) -> PolymarketWebSocketFeed:
    table = {"ws_url": url, "markets": [{"asset_id": YES, "symbol": SYMBOL}],
             "idle_timeout_s": idle_timeout or 0}
    return PolymarketWebSocketFeed(PolymarketConfig.from_table(table), proxy=None, **options)


def _trades(ids) -> list[str]:
    # Prices move inside (0, 1); each trade has its own transaction hash, as on the chain.
    return [trade(YES, f"{0.30 + (i % 50) / 100:.2f}", str(1 + i % 7),
                  "BUY" if i % 2 else "SELL", TS0_MS + i, f"0x{i:064x}") for i in ids]


KIT = VenueKit(
    name="polymarket",
    symbol=SYMBOL,
    server=lambda frames, sessions: PolymarketReplayServer(frames, sessions,
                                                           require_subscribe=True),
    trades=_trades,
    feed=_feed,
    url=lambda server: server.url,
    garbage=(
        "not json at all",
        b"\xff\xfe binary junk",
        trade(YES, "abc", ms=TS0_MS + 9_999),
        trade(YES, "1.5", ms=TS0_MS + 9_998),  # not a probability
        json.dumps({"event_type": "last_trade_price", "asset_id": YES}),
        "[1, 2]",
    ),
    trade_ids=False,
)
