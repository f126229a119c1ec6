"""A loopback server speaking OKX's public WebSocket (v5) trades channel, and OKX frames.

Requests: ``{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}`` is
answered ``{"event":"subscribe","arg":{...},"connId":"..."}``; the text ``ping`` (OKX's own
keepalive, which ccxt sends) is answered ``pong``. Pushes:
``{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId","tradeId","px","sz",
"side","ts"}]}`` with every value a string, as OKX documents.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from websockets.asyncio.server import ServerConnection

from tests.adapters.loopback import ConnectionLog, ReplayServer


class OkxReplayServer(ReplayServer):
    """Replays OKX trade pushes; subscribing is required (as on OKX)."""

    def __init__(self, frames, sessions=(), **kw) -> None:
        kw.setdefault("require_subscribe", True)
        super().__init__(frames, sessions, **kw)

    async def on_request(self, ws: ServerConnection, conn: ConnectionLog, message) -> bool:
        if message == "ping":
            await ws.send("pong")
            return False
        request = json.loads(message)
        conn.requests.append(request)
        if request.get("op") != "subscribe":
            return False
        for arg in request["args"]:
            conn.subscribed.append(f"{arg['channel']}:{arg['instId']}")
            await ws.send(json.dumps({"event": "subscribe", "arg": arg, "connId": "loop"}))
        return True

    def stream_of(self, frame: str | bytes) -> str | None:
        try:
            payload = json.loads(frame)
        except ValueError:
            return None
        arg = payload.get("arg") if isinstance(payload, dict) else None
        if not isinstance(arg, dict) or "instId" not in arg:
            return None
        return f"{arg.get('channel')}:{arg['instId']}"

    @property
    def url(self) -> str:
        """OKX's ``urls['api']['ws']`` (ccxt appends ``/public``)."""
        return f"ws://127.0.0.1:{self.port}/ws/v5"


def trade(inst: str, trade_id: int | str, *, px="100.0", sz="1", side="buy", ts=1_700_000_000_000):
    """One OKX trade object (strings, as on the wire)."""
    return {"instId": inst, "tradeId": str(trade_id), "px": str(px), "sz": str(sz),
            "side": side, "ts": str(ts)}


def push(inst: str, data: Sequence[dict]) -> str:
    return json.dumps({"arg": {"channel": "trades", "instId": inst}, "data": list(data)},
                      separators=(",", ":"))


def trade_frames(inst: str, ids: Sequence[int], *, ts0: int = 1_700_000_000_000) -> list[str]:
    """One push per trade, consecutive ids (price drifts with the id, exchange ms = ts0 + id)."""
    return [
        push(inst, [trade(inst, i, px=100.0 + i / 100, sz=1 + i % 3,
                          side="sell" if i % 2 else "buy", ts=ts0 + i)])
        for i in ids
    ]
