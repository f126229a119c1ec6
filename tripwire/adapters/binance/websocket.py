"""The Binance WebSocket trade feed: live trade/aggTrade streams -> validated FeedChunks.

:class:`BinanceWebSocketFeed` keeps one connection to Binance's combined stream endpoint;
the buffering, batching, validation (duplicates and gaps by trade id), bounds and the
reconnect loop are :class:`~tripwire.adapters.live.LiveTradeFeed`'s. What is Binance's own:

* the URL (``/stream?streams=a@trade/b@aggTrade``) or, with ``subscribe``, a SUBSCRIBE
  request sent again after every reconnect;
* frames parsed by :mod:`tripwire.adapters.binance.schemas`; replies to requests counted;
* a dead connection is noticed: websockets answers the server's pings; the client also
  sends its own (``ping_interval``/``ping_timeout``) and drops a connection whose server
  stopped answering, and a receive idle timeout drops one that went quiet (Binance trades
  flow continuously). Binance's daily disconnect is just another disconnect.
* frames above ``max_frame_bytes`` close the connection (counted as ``frame_too_big``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from tripwire.adapters.binance.config import DEFAULT_BASE_URL, MAX_STREAMS
from tripwire.adapters.binance.instruments import check_streams
from tripwire.adapters.binance.schemas import (
    SOURCE,
    Reply,
    TimeUnit,
    TradeRow,
    combined_stream_url,
    parse_frame,
    subscribe_message,
    subscribe_url,
)
from tripwire.adapters.live import (
    Backoff,
    LiveFeedError,
    LiveTradeFeed,
    check_counts,
    check_positive,
    close_reason,
)
from tripwire.model import Clock, SymbolTable

log = logging.getLogger(__name__)



class BinanceFeedError(LiveFeedError):
    """The feed gave up: ``max_attempts`` consecutive connections failed."""


class BinanceWebSocketFeed(LiveTradeFeed):
    """Binance trade/aggTrade streams as a :class:`~tripwire.feeds.base.Feed`.

    ``streams``: e.g. ``["btcusdt@trade", "ethusdt@aggTrade"]``; one kind per symbol (trade
    and aggTrade ids are different sequences, so gap and duplicate checks need one).
    ``subscribe``: connect to ``/stream`` and send a SUBSCRIBE request (again after every
    reconnect) instead of naming the streams in the URL. ``idle_timeout``/``ping_interval``
    None disable those checks. ``rng`` seeds the backoff jitter (tests pass a seeded one).
    ``proxy`` is passed to websockets (True: from the environment; None: direct).
    """

    error_type = BinanceFeedError

    def __init__(
        self,
        streams: Sequence[str],
        *,
        base_url: str = DEFAULT_BASE_URL,
        subscribe: bool = False,
        time_unit: TimeUnit | str = TimeUnit.MILLISECOND,
        max_batch: int = 1024,
        max_delay_ms: float = 50.0,
        max_buffered_rows: int = 100_000,
        max_buffered_dead: int = 10_000,
        max_frame_bytes: int = 65_536,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        idle_timeout: float | None = 30.0,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        source: str = SOURCE,
        proxy: str | bool | None = True,
    ) -> None:
        self.streams = check_streams(streams, MAX_STREAMS)
        self.time_unit = TimeUnit(time_unit)
        self.subscribe = subscribe
        self.base_url = _check_base_url(base_url)
        names = [s.name for s in self.streams]
        self.url = (
            subscribe_url(self.base_url, self.time_unit)
            if subscribe
            else combined_stream_url(self.base_url, names, self.time_unit)
        )
        check_counts(max_frame_bytes=max_frame_bytes)
        check_positive(
            open_timeout=open_timeout,
            close_timeout=close_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )
        super().__init__(
            SymbolTable([s.symbol for s in self.streams]),
            source=source,
            max_batch=max_batch,
            max_delay_ms=max_delay_ms,
            max_buffered_rows=max_buffered_rows,
            max_buffered_dead=max_buffered_dead,
            idle_timeout=idle_timeout,
            backoff=backoff,
            rng=rng,
            clock=clock,
        )
        self.max_frame_bytes = max_frame_bytes
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.proxy = proxy
        self._request_id = 0

    def _describe(self) -> dict[str, Any]:
        return {"streams": [s.name for s in self.streams]}

    # -- frames --------------------------------------------------------------------------

    def _on_message(self, message: str | bytes) -> None:
        now = self._note_message()
        parsed = parse_frame(message, now_ns=now, source=self.source, time_unit=self.time_unit)
        if isinstance(parsed, TradeRow):
            self._on_trade(parsed, message, now)
        elif isinstance(parsed, Reply):
            self._on_reply(parsed)
        else:
            self._add_dead(parsed)

    def _on_reply(self, reply: Reply) -> None:
        self._n["replies"] += 1
        if not reply.ok:
            self._n["reply_errors"] += 1
            log.warning("%s request id=%s refused: %s", self.source, reply.id, reply.error)

    # -- connection ----------------------------------------------------------------------

    async def _session(self) -> tuple[str, bool]:
        """One connection: (why it ended, whether any message arrived)."""
        conn: dict[str, Any] | None = None
        try:
            async with connect(self.url, **self._connect_options()) as ws:
                conn = self._opened()
                try:
                    if self.subscribe:
                        await self._send_subscribe(ws)
                    reason = await self._receive(ws)
                finally:
                    self._closed(conn)
        except ConnectionClosed as exc:
            reason = close_reason(exc)
        except (OSError, TimeoutError, WebSocketException) as exc:
            if conn is not None:  # an open connection failed other than by a close
                log.warning("%s connection error: %r", self.source, exc)
                reason = "connection_error"
            else:
                self._n["connect_failures"] += 1
                log.warning("%s connect to %s failed: %r", self.source, self.url, exc)
                return "connect_failed", False
        if conn is None:  # closed during the opening handshake
            self._n["connect_failures"] += 1
            return "connect_failed", False
        conn["close_reason"] = reason
        return reason, conn["messages"] > 0

    def _connect_options(self) -> dict[str, Any]:
        return {
            "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_timeout,
            "open_timeout": self.open_timeout,
            "close_timeout": self.close_timeout,
            "max_size": self.max_frame_bytes,
            "proxy": self.proxy,
        }

    async def _receive(self, ws: ClientConnection) -> str:
        while not self._stopping:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    message = await ws.recv()
            except TimeoutError:
                return "idle_timeout"
            self._on_message(message)
        return "stopped"

    async def _send_subscribe(self, ws: ClientConnection) -> None:
        self._request_id += 1
        await ws.send(subscribe_message([s.name for s in self.streams], self._request_id))
        self._n["subscribe_requests"] += 1


# ----------------------------------------------------------------------------- helpers


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str) or not base_url.startswith(("ws://", "wss://")):
        raise ValueError(f"base_url must start with ws:// or wss://, got {base_url!r}")
    return base_url.rstrip("/")
