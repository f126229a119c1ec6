"""A loopback server speaking Binance's combined-stream protocol, and Binance frames.

:class:`BinanceReplayServer` is :class:`~tests.adapters.loopback.ReplayServer` with Binance's
requests: a SUBSCRIBE is answered ``{"result": null, "id": N}``; without
``require_subscribe`` the streams come from the URL's ``streams=`` query (``/stream``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection

from tests.adapters.loopback import ConnectionLog, ReplayServer, Session, Then

__all__ = ["BinanceReplayServer", "Session", "Then", "combined", "trade_frames", "trade_payload"]


class BinanceReplayServer(ReplayServer):
    """Replays Binance frames; answers SUBSCRIBE like Binance's ``/stream`` endpoint."""

    async def on_request(self, ws: ServerConnection, conn: ConnectionLog, message) -> bool:
        request = json.loads(message)
        conn.requests.append(request)
        if request.get("method") != "SUBSCRIBE":
            return False
        conn.subscribed.extend(request["params"])
        await ws.send(json.dumps({"result": None, "id": request["id"]}))
        return True

    def streams_in_path(self, path: str) -> list[str]:
        return parse_qs(urlsplit(path).query).get("streams", [""])[0].split("/")

    def stream_of(self, frame: str | bytes) -> str | None:
        """The combined-stream name of a frame, None for anything else (garbage included)."""
        try:
            payload = json.loads(frame)
        except ValueError:
            return None
        return payload.get("stream") if isinstance(payload, dict) else None


# ----------------------------------------------------------------------------- frames


def trade_payload(
    symbol: str,
    trade_id: int,
    *,
    price: float | str = 100.0,
    qty: float | str = 1.0,
    ts: int = 1_700_000_000_000,
    buyer_maker: bool = False,
    kind: str = "trade",
) -> dict:
    """A Binance trade (or aggTrade) payload; ``ts`` in the connection's time unit."""
    id_key = "t" if kind == "trade" else "a"
    payload = {"e": kind, "E": ts + 1, "s": symbol.upper(), id_key: trade_id}
    payload |= {"p": str(price), "q": str(qty), "T": ts, "m": buyer_maker, "M": True}
    if kind == "aggTrade":
        payload |= {"f": trade_id * 3, "l": trade_id * 3 + 2}
    return payload


def combined(payload: dict, stream: str | None = None) -> str:
    """Wrap a payload as a combined-stream frame (stream name derived when not given)."""
    stream = stream or f"{payload['s'].lower()}@{payload['e']}"
    return json.dumps({"stream": stream, "data": payload}, separators=(",", ":"))


def trade_frames(
    symbol: str, ids: Sequence[int], *, kind: str = "trade", ts0: int = 1_700_000_000_000
) -> list[str]:
    """Combined-stream frames for consecutive trades of one symbol (price drifts with id)."""
    return [
        combined(
            trade_payload(
                symbol,
                i,
                price=100.0 + i / 100,
                qty=1 + i % 3,
                ts=ts0 + i,
                buyer_maker=i % 2 == 1,
                kind=kind,
            )
        )
        for i in ids
    ]
