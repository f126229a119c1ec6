"""A loopback server speaking Polymarket's market channel, and market-channel frames.

:class:`PolymarketReplayServer` is :class:`~tests.adapters.loopback.ReplayServer` with the
channel's protocol: the subscription ``{"assets_ids": [...], "type": "market", ...}``
subscribes (only frames of those assets go out; frames of no asset, garbage included,
always do) and a text ``PING`` is answered ``PONG``.
"""

from __future__ import annotations

import json

from websockets.asyncio.server import ServerConnection

from tests.adapters.loopback import ConnectionLog, ReplayServer, Session, Then

__all__ = ["PolymarketReplayServer", "Session", "Then", "book", "resolved", "trade"]

T0_MS = 1_750_428_146_000
YES = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
MARKET = "0xbd31dc8a20211944f6b70f31557f1001557b59905b7738480ca09bd4532f84af"


class PolymarketReplayServer(ReplayServer):
    async def on_request(self, ws: ServerConnection, conn: ConnectionLog, message) -> bool:
        if message == "PING":
            conn.requests.append({"ping": True})
            await ws.send("PONG")
            return False
        request = json.loads(message)
        conn.requests.append(request)
        if request.get("type") != "market" or not isinstance(request.get("assets_ids"), list):
            return False
        conn.subscribed.extend(request["assets_ids"])
        return True

    def stream_of(self, frame: str | bytes) -> str | None:
        try:
            payload = json.loads(frame)
        except ValueError:
            return None
        if isinstance(payload, dict) and payload.get("event_type") in ("last_trade_price", "book"):
            return payload.get("asset_id")
        return None


def trade(asset: str, price: str, size: str = "10", side: str = "BUY", ms: int = T0_MS,
          tx: str = "") -> str:
    """A ``last_trade_price`` frame as the channel documents it."""
    msg = {"asset_id": asset, "event_type": "last_trade_price", "fee_rate_bps": "0",
           "market": MARKET, "price": price, "side": side, "size": size,
           "timestamp": str(ms)}
    if tx:
        msg["transaction_hash"] = tx
    return json.dumps(msg)


def book(asset: str, ms: int = T0_MS) -> str:
    return json.dumps({"event_type": "book", "asset_id": asset, "market": MARKET,
                       "bids": [{"price": ".48", "size": "30"}, {"price": ".49", "size": "20"}],
                       "asks": [{"price": ".52", "size": "25"}, {"price": ".53", "size": "60"}],
                       "timestamp": str(ms), "hash": "0x0"})


def price_change(asset: str, ms: int = T0_MS) -> str:
    return json.dumps({"event_type": "price_change", "market": MARKET, "timestamp": str(ms),
                       "price_changes": [{"asset_id": asset, "price": "0.5", "size": "200",
                                          "side": "BUY", "hash": "56621a", "best_bid": "0.5",
                                          "best_ask": "0.51"}]})


def tick_size_change(asset: str, ms: int = T0_MS) -> str:
    return json.dumps({"event_type": "tick_size_change", "asset_id": asset, "market": MARKET,
                       "old_tick_size": "0.01", "new_tick_size": "0.001", "side": "BUY",
                       "timestamp": str(ms)})


def resolved(winner: str, ms: int = T0_MS) -> str:
    return json.dumps({"event_type": "market_resolved", "id": "1", "market": MARKET,
                       "assets_ids": [YES, NO], "winning_asset_id": winner,
                       "winning_outcome": "Yes" if winner == YES else "No",
                       "timestamp": str(ms)})
