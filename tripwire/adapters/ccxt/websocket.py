"""Any ccxt exchange's live trades as a feed: ``ccxt.pro`` ``watch_trades`` -> FeedChunks.

:class:`CcxtTradeFeed` runs one ``watch_trades`` loop per symbol on one ccxt.pro exchange
object; ccxt speaks the exchange's wire protocol (subscribe requests, its keepalive pings,
message parsing). Buffering, batching, validation (duplicates and gaps by trade id),
bounds, and the reconnect loop with capped, jittered backoff are
:class:`~tripwire.adapters.live.LiveTradeFeed`'s, as for Binance. What this module adds:

* **Every inbound message is seen.** The exchange class is subclassed so that its
  ``handle_message`` passes through the feed first: each message counts as a heartbeat
  (``last_message_ns``), a text frame that is not JSON (other than ``ping``/``pong``) is
  dead-lettered ``malformed`` instead of reaching ccxt, and a message ccxt fails to parse is
  dead-lettered with ccxt's error (ccxt would otherwise reset the connection over it; a good
  trade in the same message is then lost and shows as a trade-id gap).
* **One policy for reconnects.** A session ends when a ``watch_trades`` call fails (network
  error, server close, ccxt's keepalive timeout) or nothing arrived for ``idle_timeout``;
  the exchange's WebSocket clients are then closed and ccxt's own dial backoff cleared, so
  the feed's :class:`~tripwire.adapters.live.Backoff` is the only one. The next session
  subscribes again (ccxt sends the subscribe request for a new connection).
* **Two times per tick**: ccxt's ``timestamp`` (exchange time, ms) and arrival from the
  injected clock.

``markets`` skips the REST ``load_markets`` call (tests; a replay without network).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import OrderedDict
from typing import Any

from tripwire.adapters.ccxt.config import CcxtFeedConfig
from tripwire.adapters.ccxt.instruments import check_markets, symbol_name
from tripwire.adapters.ccxt.schemas import KEEPALIVES, NO_TRADE_ID, Refusal, parse_trade
from tripwire.adapters.live import Backoff, LiveFeedError, LiveTradeFeed, message_text
from tripwire.model import Clock, DeadLetter, DeadReason, SymbolTable

log = logging.getLogger(__name__)

SEEN_IDS = 4096  # per symbol: recent non-integer trade ids remembered to drop repeats


class CcxtFeedError(LiveFeedError):
    """The feed gave up: ``max_attempts`` consecutive sessions failed."""


class CcxtTradeFeed(LiveTradeFeed):
    """Live trades of ``config.symbols`` on ``config.exchange`` (a ccxt.pro exchange id).

    Options as :class:`~tripwire.adapters.binance.websocket.BinanceWebSocketFeed`'s where
    they mean the same; ``open_timeout`` bounds market loading and the first message wait is
    bounded by ``idle_timeout``.
    """

    error_type = CcxtFeedError

    def __init__(
        self,
        config: CcxtFeedConfig,
        *,
        max_batch: int = 1024,
        max_delay_ms: float = 50.0,
        max_buffered_rows: int = 100_000,
        max_buffered_dead: int = 10_000,
        idle_timeout: float | None = 30.0,
        open_timeout: float = 10.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        source: str | None = None,
    ) -> None:
        self.config = config
        names = [symbol_name(s) for s in config.symbols]
        if len(set(names)) != len(names):
            raise ValueError(f"symbols {list(config.symbols)} give the same tripwire name twice")
        if not open_timeout > 0:
            raise ValueError(f"open_timeout must be a number > 0, got {open_timeout!r}")
        super().__init__(
            SymbolTable(names),
            source=source or config.source,
            max_batch=max_batch,
            max_delay_ms=max_delay_ms,
            max_buffered_rows=max_buffered_rows,
            max_buffered_dead=max_buffered_dead,
            idle_timeout=idle_timeout,
            backoff=backoff,
            rng=rng,
            clock=clock,
        )
        self.open_timeout = open_timeout
        self._exchange: Any = None
        self._markets_ready = False
        self._seen: dict[str, OrderedDict[str, None]] = {}
        self._activity: asyncio.Event | None = None
        self.url = config.ws_url or ""

    def _describe(self) -> dict[str, Any]:
        return {"exchange": self.config.exchange, "symbols": list(self.config.symbols)}

    # -- the exchange --------------------------------------------------------------------

    def _build_exchange(self) -> Any:
        import ccxt.pro

        base = getattr(ccxt.pro, self.config.exchange)
        feed = self

        class Tapped(base):  # type: ignore[misc, valid-type]
            """The exchange, with every inbound message seen by the feed first."""

            def handle_message(self, client: Any, message: Any) -> Any:
                if not feed._on_wire(message):
                    return None
                try:
                    return super().handle_message(client, message)
                except Exception as exc:
                    feed._on_unparsed(message, exc)
                    return None

            def client(self, url: str) -> Any:
                # A frame ccxt cannot even decode (binary that is not UTF-8) fails before
                # handle_message and would end ccxt's receive loop: guard the decoding too.
                client = super().client(url)
                if not getattr(client, "_tripwire_guarded", False):
                    decode = client.handle_text_or_binary_message

                    def guarded(data: Any) -> None:
                        try:
                            decode(data)
                        except Exception as exc:  # a bad frame, not a bug
                            feed._note_message()
                            feed._on_unparsed(data, exc)

                    client.handle_text_or_binary_message = guarded
                    client._tripwire_guarded = True
                return client

            def on_connected(self, client: Any, message: Any = None) -> None:
                super().on_connected(client, message)
                feed._on_connected()

        urls = dict(self.config.urls)
        if self.config.ws_url is not None:
            urls = _deep_merge(urls, {"api": {"ws": self.config.ws_url}})
        options: dict[str, Any] = {"enableRateLimit": True, **self.config.options}
        if urls:
            options["urls"] = urls  # ccxt deep-merges it into the exchange's own urls
        exchange = Tapped(options)
        if self.config.markets is not None:
            exchange.set_markets(list(self.config.markets))
            check_markets(exchange, self.config.symbols)
            self._markets_ready = True
        if not self.url:
            self.url = f"{self.config.exchange} (ccxt.pro)"
        return exchange

    # -- one session ---------------------------------------------------------------------

    async def _session(self) -> tuple[str, bool]:
        if self._exchange is None:
            self._exchange = self._build_exchange()
        ex = self._exchange
        self._conn = None
        self._activity = asyncio.Event()
        try:
            if not self._markets_ready:
                async with asyncio.timeout(self.open_timeout):
                    await ex.load_markets()
                check_markets(ex, self.config.symbols)
                self._markets_ready = True
            reason = await self._watch_all(ex)
        except ValueError:
            raise  # a configuration error (unknown market): not a reason to retry
        except Exception as exc:
            reason = _reason(exc)
            log.warning("%s session ended: %r", self.source, exc)
        finally:
            await self._close_clients(ex)
            if self._conn is not None:
                self._closed(self._conn)
        conn = self._conn
        if conn is None:
            self._n["connect_failures"] += 1
            return "connect_failed", False
        conn["close_reason"] = reason
        return reason, conn["messages"] > 0

    async def _watch_all(self, ex: Any) -> str:
        tasks = [
            asyncio.create_task(self._watch(ex, unified), name=f"{self.source} {unified}")
            for unified in self.config.symbols
        ]
        watchdog = asyncio.create_task(self._idle_watch(), name=f"{self.source} idle")
        try:
            done, _ = await asyncio.wait([*tasks, watchdog], return_when=asyncio.FIRST_COMPLETED)
            first = done.pop()
            if first is watchdog:
                return first.result()
            first.result()  # raises the watch's error
            return "stopped"
        finally:
            for t in (*tasks, watchdog):
                t.cancel()
            await asyncio.gather(*tasks, watchdog, return_exceptions=True)

    async def _watch(self, ex: Any, unified: str) -> None:
        while not self._stopping:
            trades = await ex.watch_trades(unified)
            for trade in trades:
                self._on_ccxt_trade(trade)

    async def _idle_watch(self) -> str:
        """Ends the session when nothing (a trade, a pong, a reply) arrived for idle_timeout."""
        assert self._activity is not None
        while True:
            self._activity.clear()
            try:
                async with asyncio.timeout(self.idle_timeout):
                    await self._activity.wait()
            except TimeoutError:
                return "idle_timeout"

    async def _close_clients(self, ex: Any) -> None:
        try:
            await ex.close_ws_clients()
        except Exception as exc:
            log.debug("%s closing clients: %r", self.source, exc)
        ex.clients = {}
        ex.ws_dial_backoff = {}  # our Backoff is the one reconnect policy
        ex.trades = {}  # a new session's caches start empty: nothing re-yielded

    async def aclose(self) -> None:
        await super().aclose()
        if self._exchange is not None:
            await self._exchange.close()

    # -- what arrives --------------------------------------------------------------------

    def _on_connected(self) -> None:
        if self._conn is None:
            self._opened()
            self._n["subscribe_requests"] += 1  # ccxt subscribes on every new connection

    def _on_wire(self, message: Any) -> bool:
        """Every inbound message: a heartbeat; False when it must not reach ccxt."""
        now = self._note_message()
        if self._activity is not None:
            self._activity.set()
        if isinstance(message, dict | list):
            return True
        text = message_text(message)
        if text.strip().lower() in KEEPALIVES:
            return True
        self._add_dead(
            DeadLetter.make(self.source, DeadReason.MALFORMED, text, now, None, "not JSON")
        )
        return False

    def _on_unparsed(self, message: Any, exc: Exception) -> None:
        detail = f"{self.config.exchange} message not parsed: {type(exc).__name__}: {exc}"
        text = message_text(message)
        now = self.clock.now_ns()
        self._add_dead(DeadLetter.make(self.source, DeadReason.MALFORMED, text, now, None, detail))

    def _on_ccxt_trade(self, trade: Any) -> None:
        now = self.clock.now_ns()
        row = parse_trade(trade, "trades")
        raw = trade.get("info", trade) if isinstance(trade, dict) else trade
        if isinstance(row, Refusal):
            symbol = trade.get("symbol") if isinstance(trade, dict) else None
            text = _json(raw)
            self._add_dead(DeadLetter.make(self.source, row.reason, text, now, symbol, row.detail))
            return
        if row.trade_id == NO_TRADE_ID and self._repeated(row.symbol, trade.get("id")):
            detail = f"trade id {trade.get('id')!r} already delivered"
            self._refuse(DeadReason.DUPLICATE, _json(raw), now, row.symbol, detail)
            return
        self._on_trade(row, _json(raw), now)

    def _repeated(self, symbol: str, tid: Any) -> bool:
        if tid is None:
            return False
        seen = self._seen.setdefault(symbol, OrderedDict())
        key = str(tid)
        if key in seen:
            return True
        seen[key] = None
        if len(seen) > SEEN_IDS:
            seen.popitem(last=False)
        return False


def _reason(exc: BaseException) -> str:
    """Why a session ended, as a stats key."""
    text = str(exc).lower()
    if "keepalive" in text or "ping" in text:
        return "ping_timeout"
    if "closed" in text or "1000" in text or "1001" in text:
        return "closed_by_server"
    return "connection_error"


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        both = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = _deep_merge(out[k], v) if both else v
    return out


def _json(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), default=repr)
    except (TypeError, ValueError):
        return repr(value)
