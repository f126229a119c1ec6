"""The Polymarket CLOB market channel as a live trade feed.

One connection to ``wss://ws-subscriptions-clob.polymarket.com/ws/market``; on every
(re)connect the subscription ``{"assets_ids": [...], "type": "market",
"custom_feature_enabled": true}`` is sent again, and a text ``PING`` every
``ping_interval_s`` keeps it open (the server answers ``PONG``). Buffering, batching,
validation, backoff and heartbeats are :class:`~tripwire.adapters.live.LiveTradeFeed`'s.

What is Polymarket's own:

* **Trades only from ``last_trade_price``**, as ticks with price in [0, 1], size, the
  taker's side and the exchange time (``recv_ns`` is the arrival time). Quotes (``book``,
  ``price_change``, ``best_bid_ask``) are counted and kept as the token's best bid/ask in
  :class:`~.instruments.PolymarketInstruments`, never ticks.
* **Trade ids.** The channel sends none. A trade's content digest (asset, time, price, size,
  side, transaction hash) de-duplicates it: a trade seen again (a replay after a reconnect)
  is a ``duplicate`` dead letter. Its tick ``trade_id`` is ``exchange ms * 1024 + n``, ``n``
  its order among the token's trades of that millisecond: deterministic for a given stream
  and rising, so the validator's order checks hold. Ids are not consecutive, so trade-id gap
  detection is off; a reconnect is where trades can be lost, and each is counted.
* **Resolution and halts are events.** ``market_resolved`` marks the market's tokens
  resolved (their later trades: ``market_resolved`` dead letters) and emits a ``halt`` event
  per token; ``tick_size_change`` and ``new_market`` are events too, delivered in the next
  chunk's ``events`` (:attr:`FeedChunk.events`; counted in ``stats()['events']``). None of
  them reaches the detectors; :mod:`tripwire.adapters.market_state` stops trading a
  resolved token on its ``halt``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections import OrderedDict, deque
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from tripwire.adapters.live import (
    Backoff,
    LiveTradeFeed,
    TradeRow,
    check_positive,
    close_reason,
)
from tripwire.adapters.polymarket.config import PolymarketConfig
from tripwire.adapters.polymarket.instruments import PolymarketInstruments
from tripwire.adapters.polymarket.schemas import (
    SOURCE,
    Pong,
    Quote,
    Trade,
    VenueEvent,
    parse_frame,
    subscribe_message,
)
from tripwire.feeds.base import FeedChunk
from tripwire.feeds.validate import TickValidator
from tripwire.model import Clock, DeadLetter, DeadReason

log = logging.getLogger(__name__)

IDS_PER_MS = 1024  # trades of one token within one exchange millisecond
MAX_EVENTS = 10_000  # undrained venue events kept; older ones are counted as dropped


class TradeIds:
    """Deterministic rising tick ids for a venue without trade ids, and its de-duplication.

    >>> ids = TradeIds(max_keys=8)
    >>> ids.assign("a", 1_000_000, key=1), ids.assign("a", 1_000_000, key=2)
    (1024, 1025)
    >>> ids.assign("a", 1_000_000, key=1) is None  # seen: a duplicate
    True
    """

    def __init__(self, max_keys: int = 200_000) -> None:
        self._keys: OrderedDict[int, None] = OrderedDict()
        self._max_keys = max_keys
        self._last: dict[str, tuple[int, int]] = {}  # asset -> (ms, trades in that ms)

    def assign(self, asset: str, ts_ns: int, key: int) -> int | None:
        """The tick id of this trade, or None if its key was seen (a duplicate)."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return None
        self._keys[key] = None
        if len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)
        ms = ts_ns // 1_000_000
        last_ms, n = self._last.get(asset, (-1, 0))
        n = n + 1 if ms == last_ms else 0
        if ms >= last_ms:
            self._last[asset] = (ms, n)
        else:  # older than the token's last trade: the validator calls it out of order
            n = 0
        return ms * IDS_PER_MS + min(n, IDS_PER_MS - 1)


class PolymarketWebSocketFeed(LiveTradeFeed):
    """The market channel for ``config.markets`` as a :class:`~tripwire.feeds.base.Feed`."""

    def __init__(
        self,
        config: PolymarketConfig,
        *,
        max_batch: int = 1024,
        max_delay_ms: float = 50.0,
        max_buffered_rows: int = 100_000,
        max_buffered_dead: int = 10_000,
        max_frame_bytes: int = 4 * 1024 * 1024,  # an initial book dump of 500 assets is big
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        source: str = SOURCE,
        proxy: str | bool | None = True,
    ) -> None:
        self.config = config
        self.instruments = PolymarketInstruments(config.markets)
        self.url = config.ws_url
        super().__init__(
            self.instruments.symbols,
            source=source,
            max_batch=max_batch,
            max_delay_ms=max_delay_ms,
            max_buffered_rows=max_buffered_rows,
            max_buffered_dead=max_buffered_dead,
            idle_timeout=config.idle_timeout_s,
            backoff=backoff,
            rng=rng,
            clock=clock,
        )
        check_positive(open_timeout=open_timeout, close_timeout=close_timeout)
        # Polymarket trade ids are not consecutive: no gap detection from them.
        self._validator = TickValidator(source=source, clock=self.clock, symbols=self.symbols,
                                        detect_gaps=False)
        self.max_frame_bytes = max_frame_bytes
        self.open_timeout, self.close_timeout = open_timeout, close_timeout
        self.proxy = proxy
        self._trade_ids = TradeIds()
        self._events: deque[VenueEvent] = deque()
        self._pm = dict.fromkeys(("quotes", "pongs", "pings", "events_dropped"), 0)
        self._event_counts: dict[str, int] = {}

    # -- venue events ----------------------------------------------------------------------

    def drain_events(self) -> list[VenueEvent]:
        """The venue events (resolutions, halts, tick size changes, new markets) since the
        last call, oldest first."""
        out = list(self._events)
        self._events.clear()
        return out

    def probability_symbols(self) -> tuple[str, ...]:
        return self.instruments.probability_symbols()

    def _flush(self) -> FeedChunk:
        """The next chunk, carrying the venue events since the last one (FeedChunk.events)."""
        chunk = super()._flush()
        if not self._events:
            return chunk
        return dataclasses.replace(chunk, events=self.drain_events())

    def _describe(self) -> dict[str, Any]:
        return {"assets": list(self.instruments.asset_ids), **self._pm,
                "events": dict(self._event_counts),
                "instruments": self.instruments.snapshot()}

    # -- messages --------------------------------------------------------------------------

    def _on_message(self, message: str | bytes) -> None:
        now = self._note_message()
        for item in parse_frame(message, now_ns=now, source=self.source):
            if isinstance(item, Trade):
                self._on_pm_trade(item, message, now)
            elif isinstance(item, Quote):
                self._pm["quotes"] += 1
                self.instruments.on_quote(item)
            elif isinstance(item, VenueEvent):
                for event in self.instruments.on_event(item):
                    self._emit(event)
            elif isinstance(item, Pong):
                self._pm["pongs"] += 1
            elif isinstance(item, DeadLetter):
                symbol = self.instruments.symbol(item.symbol or "") or item.symbol
                self._add_dead(DeadLetter.make(item.source, item.reason, item.raw, item.ts_ns,
                                               symbol, item.detail))

    def _on_pm_trade(self, trade: Trade, message: str | bytes, now: int) -> None:
        symbol = self.instruments.symbol(trade.asset_id)
        if symbol is None:
            self._refuse(DeadReason.UNKNOWN_SYMBOL, message, now, trade.asset_id,
                         f"asset {trade.asset_id} is not among the subscribed assets")
            return
        if self.instruments.is_resolved(trade.asset_id):
            self._refuse(DeadReason.MARKET_RESOLVED, message, now, symbol,
                         f"{symbol}'s market is resolved: a trade after resolution is not "
                         "a price")
            return
        tid = self._trade_ids.assign(trade.asset_id, trade.ts_ns, trade.key)
        if tid is None:
            self._refuse(DeadReason.DUPLICATE, message, now, symbol,
                         "trade seen already (same asset, time, price, size, side, tx)")
            return
        row = TradeRow(symbol, trade.ts_ns, trade.price, trade.qty, trade.side, tid,
                       "last_trade_price")
        self._on_trade(row, message, now)

    def _emit(self, event: VenueEvent) -> None:
        self._event_counts[event.kind] = self._event_counts.get(event.kind, 0) + 1
        if len(self._events) >= MAX_EVENTS:
            self._events.popleft()
            self._pm["events_dropped"] += 1
        self._events.append(event)
        self._mark_pending()  # delivered with the next chunk, even one without trades
        log.info("%s event %s market=%s assets=%s %s", self.source, event.kind, event.market,
                 ",".join(event.asset_ids), event.detail)

    # -- connection ------------------------------------------------------------------------

    async def _session(self) -> tuple[str, bool]:
        conn: dict[str, Any] | None = None
        try:
            async with connect(self.url, open_timeout=self.open_timeout,
                               close_timeout=self.close_timeout, max_size=self.max_frame_bytes,
                               proxy=self.proxy) as ws:
                conn = self._opened()
                try:
                    await ws.send(subscribe_message(self.config.asset_ids,
                                                    self.config.custom_features))
                    self._n["subscribe_requests"] += 1
                    reason = await self._receive(ws)
                finally:
                    self._closed(conn)
        except ConnectionClosed as exc:
            reason = close_reason(exc)
        except (OSError, TimeoutError, WebSocketException) as exc:
            if conn is not None:
                log.warning("%s connection error: %r", self.source, exc)
                reason = "connection_error"
            else:
                self._n["connect_failures"] += 1
                log.warning("%s connect to %s failed: %r", self.source, self.url, exc)
                return "connect_failed", False
        if conn is None:
            self._n["connect_failures"] += 1
            return "connect_failed", False
        conn["close_reason"] = reason
        return reason, conn["messages"] > 0

    async def _receive(self, ws: ClientConnection) -> str:
        """Read until stopped or idle; a text PING goes out every ``ping_interval_s``."""
        loop = asyncio.get_running_loop()
        ping_every = self.config.ping_interval_s
        next_ping = loop.time() + ping_every
        idle_deadline = None if self.idle_timeout is None else loop.time() + self.idle_timeout
        while not self._stopping:
            now = loop.time()
            if now >= next_ping:
                await ws.send("PING")
                self._pm["pings"] += 1
                next_ping = now + ping_every
            wait = next_ping - now
            if idle_deadline is not None:
                if now >= idle_deadline:
                    return "idle_timeout"
                wait = min(wait, idle_deadline - now)
            try:
                async with asyncio.timeout(wait):
                    message = await ws.recv()
            except TimeoutError:
                continue
            if self.idle_timeout is not None:
                idle_deadline = loop.time() + self.idle_timeout
            self._on_message(message)
        return "stopped"
