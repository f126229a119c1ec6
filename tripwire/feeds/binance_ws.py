"""The Binance WebSocket trade feed: live trade/aggTrade streams -> validated FeedChunks.

:class:`BinanceWebSocketFeed` keeps one connection to Binance's combined stream endpoint and
turns its frames into columnar chunks. What a demanding user needs from it:

* **No tick lost or doubled across reconnects.** Every batch goes through a
  :class:`~tripwire.feeds.validate.TickValidator` that remembers each symbol's last trade id:
  trades replayed after a reconnect become ``duplicate`` dead letters, and a jump in trade
  ids becomes a :class:`~tripwire.feeds.validate.Gap` (with a counter of missing ids).
* **A dead connection is noticed.** websockets answers the server's pings; the client also
  sends its own (``ping_interval``/``ping_timeout``) and drops a connection whose server stopped
  answering, and a receive idle timeout drops one that went quiet (Binance trades flow
  continuously). Reconnects use capped exponential backoff with full jitter; Binance's daily
  disconnect is just another disconnect.
* **Bounded everything.** Frames above ``max_frame_bytes`` close the connection (counted);
  rows beyond ``max_buffered_rows`` are shed as ``shed`` dead letters (counted); pending dead
  letters beyond ``max_buffered_dead`` are counted as dropped.
* **Latency bound.** A chunk is released when ``max_batch`` rows are buffered or
  ``max_delay_ms`` after the first buffered row, whichever comes first.

A reader task receives frames, parses them and appends the values to column lists (no NumPy
per frame); :meth:`BinanceWebSocketFeed.chunks` builds one TickBatch per chunk and validates
it. The reader keeps draining the socket while the consumer is busy, so a slow consumer
costs shed (and counted) ticks rather than a server-side disconnect.

Time: every recorded time (``recv_ns``, heartbeats, dead letters) comes from the injected
clock. Waits (batch delay, idle timeout, backoff) run on the event loop's monotonic timer,
because they are real network waits that must pass even under a simulated clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.frames import CloseCode

from tripwire.feeds.base import FeedChunk
from tripwire.feeds.binance import (
    SOURCE,
    Reply,
    StreamName,
    TimeUnit,
    TradeRow,
    combined_stream_url,
    frame_text,
    parse_frame,
    parse_stream,
    subscribe_message,
    subscribe_url,
)
from tripwire.feeds.validate import TickValidator
from tripwire.model import Clock, DeadLetter, DeadReason, SymbolTable, SystemClock, TickBatch

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "wss://stream.binance.com:9443"
MAX_STREAMS = 1024  # Binance's limit of streams per connection
HISTORY = 16  # connection records kept for stats()


class BinanceFeedError(ConnectionError):
    """The feed gave up: ``max_attempts`` consecutive connections failed."""


# ----------------------------------------------------------------------------- backoff


def backoff_delay(attempt: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): "full jitter" backoff.

    Uniform in ``[0, min(cap_s, base_s * 2**(attempt-1))]``: the ceiling doubles per failure
    up to the cap, and the jitter spreads many clients' reconnects after a common outage.

    >>> rng = random.Random(7)
    >>> all(0 <= backoff_delay(9, base_s=0.5, cap_s=2.0, rng=rng) <= 2.0 for _ in range(100))
    True
    """
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, 63))  # exponent bounded: no overflow
    return rng.uniform(0.0, ceiling)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect policy.

    ``max_attempts``: retries allowed after consecutive failed connections (refused, or closed
    before any message arrived; a connection that delivered a message resets the count).
    None retries forever; 0 gives up at the first failure.
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not (self.base_s > 0 and self.cap_s >= self.base_s):
            raise ValueError(f"backoff needs 0 < base_s <= cap_s, got {self.base_s}, {self.cap_s}")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError(f"backoff max_attempts must be >= 0 or None, got {self.max_attempts}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        return backoff_delay(attempt, base_s=self.base_s, cap_s=self.cap_s, rng=rng)


# ----------------------------------------------------------------------------- buffers


class _Rows:
    """Column lists for parsed rows; one TickBatch is built per chunk, not per frame."""

    __slots__ = ("price", "qty", "raw", "recv", "sid", "side", "tid", "ts")

    def __init__(self) -> None:
        self.sid: list[int] = []
        self.ts: list[int] = []
        self.price: list[float] = []
        self.qty: list[float] = []
        self.side: list[int] = []
        self.tid: list[int] = []
        self.recv: list[int] = []
        self.raw: list[str | bytes] = []  # the frame, kept by reference for dead letters

    def __len__(self) -> int:
        return len(self.sid)

    def append(self, sid: int, row: TradeRow, recv_ns: int, raw: str | bytes) -> None:
        self.sid.append(sid)
        self.ts.append(row.ts_ns)
        self.price.append(row.price)
        self.qty.append(row.qty)
        self.side.append(row.side)
        self.tid.append(row.trade_id)
        self.recv.append(recv_ns)
        self.raw.append(raw)

    def take(self, n: int) -> tuple[TickBatch, list[str | bytes]]:
        """The first ``n`` rows as a batch (and their frames); they leave the buffer."""
        cols = []
        for name in ("sid", "ts", "price", "qty", "side", "tid", "recv", "raw"):
            col = getattr(self, name)
            if n >= len(col):
                cols.append(col)
                setattr(self, name, [])
            else:
                cols.append(col[:n])
                del col[:n]
        sid, ts, price, qty, side, tid, recv, raw = cols
        return TickBatch.from_columns(sid, ts, price, qty, side, tid, recv), raw


# ----------------------------------------------------------------------------- the feed


class BinanceWebSocketFeed:
    """Binance trade/aggTrade streams as a :class:`~tripwire.feeds.base.Feed`.

    ``streams``: e.g. ``["btcusdt@trade", "ethusdt@aggTrade"]``; one kind per symbol (trade
    and aggTrade ids are different sequences, so gap and duplicate checks need one).
    ``subscribe``: connect to ``/stream`` and send a SUBSCRIBE request (again after every
    reconnect) instead of naming the streams in the URL. ``idle_timeout``/``ping_interval``
    None disable those checks. ``rng`` seeds the backoff jitter (tests pass a seeded one).
    ``proxy`` is passed to websockets (True: from the environment; None: direct).
    """

    # An exchange does not wait for a slow consumer: the runtime sheds (and counts) rather
    # than pausing this feed (see actors.batching.IntakeBuffer).
    live = True

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
        self.streams = _check_streams(streams)
        self.symbols = SymbolTable([s.symbol for s in self.streams])
        self.source = source
        self.time_unit = TimeUnit(time_unit)
        self.subscribe = subscribe
        self.base_url = _check_base_url(base_url)
        names = [s.name for s in self.streams]
        self.url = (
            subscribe_url(self.base_url, self.time_unit)
            if subscribe
            else combined_stream_url(self.base_url, names, self.time_unit)
        )
        _check_counts(
            max_batch=max_batch,
            max_buffered_rows=max_buffered_rows,
            max_buffered_dead=max_buffered_dead,
            max_frame_bytes=max_frame_bytes,
        )
        _check_positive(
            max_delay_ms=max_delay_ms,
            open_timeout=open_timeout,
            close_timeout=close_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            idle_timeout=idle_timeout,
        )
        if max_buffered_rows < max_batch:
            raise ValueError(
                f"max_buffered_rows ({max_buffered_rows}) must be >= max_batch ({max_batch})"
            )
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000.0
        self.max_buffered_rows = max_buffered_rows
        self.max_buffered_dead = max_buffered_dead
        self.max_frame_bytes = max_frame_bytes
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.idle_timeout = idle_timeout
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.clock = clock or SystemClock()
        self.proxy = proxy
        self._ids = {name: i for i, name in enumerate(self.symbols.names)}
        self._validator = TickValidator(
            source=source, clock=self.clock, symbols=self.symbols, detect_gaps=True
        )
        self._init_state()

    def _init_state(self) -> None:
        self._rows = _Rows()
        self._dead: list[DeadLetter] = []
        self._pending_since: float | None = None  # loop time of the oldest buffered item
        self._wake: asyncio.Event | None = None
        self._reader: asyncio.Task[None] | None = None
        self._started = False
        self._stopping = False
        self._failure: BinanceFeedError | None = None
        self._request_id = 0
        self._connected = False
        self._conn: dict[str, Any] | None = None
        self._history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._last_by_symbol: dict[int, int] = {}
        self._last_message_ns = 0
        self._n = dict.fromkeys(
            (
                "messages",
                "ticks",
                "chunks",
                "connections",
                "reconnects",
                "connect_failures",
                "shed",
                "dead_dropped",
                "subscribe_requests",
                "replies",
                "reply_errors",
            ),
            0,
        )
        self._disconnects: dict[str, int] = {}

    # -- the Feed protocol ---------------------------------------------------------------

    async def chunks(self) -> AsyncIterator[FeedChunk]:
        """Chunks until :meth:`stop`; raises :class:`BinanceFeedError` if reconnecting fails.

        One iteration per feed. Buffered rows are delivered before the stream ends.
        """
        if self._started:
            raise RuntimeError("BinanceWebSocketFeed.chunks() can be iterated only once")
        self._started = True
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._reader = asyncio.create_task(self._run(), name=f"{self.source} reader")
        try:
            while True:
                self._wake.clear()
                finished = self._reader.done()
                if self._ready(loop.time(), finished):
                    yield self._flush()
                    continue
                if finished:
                    break
                await self._sleep_until_ready(loop)
            if not self._reader.cancelled():  # cancelled = stop(): a normal end
                self._reader.result()  # a bug in the reader surfaces here, not silently
            if self._failure is not None:
                raise self._failure
        finally:
            await self._stop_reader()

    def stats(self) -> dict:
        """Counters and heartbeats (all times int ns from the injected clock)."""
        v = self._validator.counters()
        return {
            "source": self.source,
            "url": self.url,
            "streams": [s.name for s in self.streams],
            "connected": self._connected,
            **self._n,
            "dead": v["dead"],
            "gaps": v["gaps"],
            "missing_trade_ids": v["missing_trade_ids"],
            "disconnects": dict(self._disconnects),
            "buffered_rows": len(self._rows),
            "buffered_dead": len(self._dead),
            "last_message_ns": self._last_message_ns,
            "last_message_ns_by_symbol": {
                self.symbols.name(sid): ns for sid, ns in sorted(self._last_by_symbol.items())
            },
            "connection": dict(self._conn) if self._conn is not None else None,
            "history": [dict(c) for c in self._history],
        }

    def stop(self) -> None:
        """Ask the stream to end: buffered rows are still delivered, then chunks() returns."""
        self._stopping = True
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
        if self._wake is not None:
            self._wake.set()

    async def aclose(self) -> None:
        """Stop and wait until the connection is closed."""
        self.stop()
        await self._stop_reader()

    # -- batching ------------------------------------------------------------------------

    def _ready(self, now: float, finished: bool) -> bool:
        if len(self._rows) >= self.max_batch:
            return True
        if self._pending_since is None:
            return False
        return finished or self._stopping or now - self._pending_since >= self.max_delay_s

    async def _sleep_until_ready(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._wake is not None
        timeout = None
        if self._pending_since is not None:
            timeout = max(0.0, self._pending_since + self.max_delay_s - loop.time())
        with contextlib.suppress(TimeoutError):  # timing out means the oldest row is due
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    def _flush(self) -> FeedChunk:
        dead, self._dead = self._dead, []
        n = min(len(self._rows), self.max_batch)
        if n == 0:
            ticks, gaps = TickBatch.empty(), []
        else:
            batch, raws = self._rows.take(n)
            checked = self._validator.validate(batch, raw=lambda r: frame_text(raws[r]))
            ticks, gaps = checked.ticks, checked.gaps
            dead.extend(checked.dead)
        if len(self._rows) == 0:
            self._pending_since = None  # leftovers keep their (already old) start: due now
        self._n["ticks"] += len(ticks)
        self._n["chunks"] += 1
        return FeedChunk(ticks, dead, gaps)

    def _mark_pending(self) -> None:
        if self._pending_since is None:
            self._pending_since = asyncio.get_running_loop().time()
            self._wake_consumer()

    def _wake_consumer(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- frames --------------------------------------------------------------------------

    def _on_message(self, message: str | bytes) -> None:
        now = self.clock.now_ns()
        self._n["messages"] += 1
        self._last_message_ns = now
        if self._conn is not None:
            self._conn["messages"] += 1
            self._conn["last_message_ns"] = now
        parsed = parse_frame(message, now_ns=now, source=self.source, time_unit=self.time_unit)
        if isinstance(parsed, TradeRow):
            self._on_trade(parsed, message, now)
        elif isinstance(parsed, Reply):
            self._on_reply(parsed)
        else:
            self._add_dead(parsed)

    def _on_trade(self, row: TradeRow, message: str | bytes, now: int) -> None:
        sid = self._ids.get(row.symbol)
        if sid is None:
            detail = f"symbol {row.symbol!r} is not in the subscribed streams"
            self._refuse(DeadReason.UNKNOWN_SYMBOL, message, now, row.symbol, detail)
            return
        self._last_by_symbol[sid] = now
        if len(self._rows) >= self.max_buffered_rows:
            self._n["shed"] += 1
            detail = (
                f"row buffer full ({self.max_buffered_rows} rows, consumer behind): "
                f"trade id {row.trade_id} not delivered"
            )
            self._refuse(DeadReason.SHED, message, now, row.symbol, detail)
            return
        self._rows.append(sid, row, now, message)
        self._mark_pending()
        if len(self._rows) == self.max_batch:
            self._wake_consumer()

    def _on_reply(self, reply: Reply) -> None:
        self._n["replies"] += 1
        if not reply.ok:
            self._n["reply_errors"] += 1
            log.warning("%s request id=%s refused: %s", self.source, reply.id, reply.error)

    def _refuse(
        self, reason: DeadReason, message: str | bytes, now: int, symbol: str, detail: str
    ) -> None:
        text = frame_text(message)
        self._add_dead(DeadLetter.make(self.source, reason, text, now, symbol, detail))

    def _add_dead(self, dead: DeadLetter) -> None:
        self._validator.count_dead(dead.reason)
        if len(self._dead) >= self.max_buffered_dead:
            self._n["dead_dropped"] += 1  # counted by reason above; only the letter is lost
            return
        self._dead.append(dead)
        self._mark_pending()

    # -- connection ----------------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, receive, reconnect with backoff, until stopped or out of attempts."""
        failures = 0
        try:
            while not self._stopping:
                reason, got_messages = await self._session()
                if self._stopping:
                    break
                self._disconnects[reason] = self._disconnects.get(reason, 0) + 1
                failures = 0 if got_messages else failures + 1
                limit = self.backoff.max_attempts
                if limit is not None and failures > limit:
                    self._failure = BinanceFeedError(
                        f"{self.source}: gave up after {failures} failed connection attempts "
                        f"to {self.url} (last: {reason})"
                    )
                    log.error("%s", self._failure)
                    return
                delay = self.backoff.delay(failures + 1, self.rng)
                log.warning(
                    "%s disconnected reason=%s retry_in=%.3fs failures=%d",
                    self.source,
                    reason,
                    delay,
                    failures,
                )
                await asyncio.sleep(delay)
        finally:
            self._connected = False
            self._wake_consumer()

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
            reason = _close_reason(exc)
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

    def _opened(self) -> dict[str, Any]:
        self._n["connections"] += 1
        if self._n["connections"] > 1:
            self._n["reconnects"] += 1
        self._connected = True
        self._conn = {
            "id": self._n["connections"],
            "opened_ns": self.clock.now_ns(),
            "closed_ns": 0,
            "messages": 0,
            "last_message_ns": 0,
            "close_reason": "",
        }
        self._history.append(self._conn)
        log.info("%s connected id=%d url=%s", self.source, self._conn["id"], self.url)
        return self._conn

    def _closed(self, conn: dict[str, Any]) -> None:
        self._connected = False
        conn["closed_ns"] = self.clock.now_ns()
        if self._stopping:  # cancelled by stop(): no disconnect reason will follow
            conn["close_reason"] = "stopped"

    async def _stop_reader(self) -> None:
        self._stopping = True
        reader = self._reader
        if reader is None or reader.done():
            return
        reader.cancel()
        try:
            await reader
        except asyncio.CancelledError:
            if not reader.cancelled():
                raise  # the caller itself is being cancelled


# ----------------------------------------------------------------------------- helpers


def _close_reason(exc: ConnectionClosed) -> str:
    """Why a connection closed, as a stats key."""
    sent, rcvd = exc.sent, exc.rcvd
    if sent is not None and sent.code == CloseCode.INTERNAL_ERROR and "ping" in sent.reason:
        return "ping_timeout"  # our keepalive ping went unanswered
    if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
        return "frame_too_big"
    if rcvd is not None:
        return "closed_by_server"  # e.g. Binance's 24-hour disconnect
    return "connection_lost"


def _check_streams(streams: Sequence[str]) -> tuple[StreamName, ...]:
    if isinstance(streams, str) or not streams:
        raise ValueError(f"streams must be a non-empty list of stream names, got {streams!r}")
    if len(streams) > MAX_STREAMS:
        raise ValueError(f"{len(streams)} streams: Binance allows {MAX_STREAMS} per connection")
    parsed = [parse_stream(s) for s in streams]
    kinds: dict[str, str] = {}
    for s in parsed:
        seen = kinds.setdefault(s.symbol, s.kind)
        if seen != s.kind:
            raise ValueError(
                f"symbol {s.symbol} is subscribed as both trade and aggTrade: their id "
                "sequences differ, so gaps and duplicates could not be told apart; pick one"
            )
    if len(kinds) < len(parsed):
        raise ValueError(f"a stream is listed twice in {[s.name for s in parsed]}")
    return tuple(parsed)


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str) or not base_url.startswith(("ws://", "wss://")):
        raise ValueError(f"base_url must start with ws:// or wss://, got {base_url!r}")
    return base_url.rstrip("/")


def _check_counts(**values: int) -> None:
    for name, value in values.items():
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise ValueError(f"{name} must be an integer > 0, got {value!r}")


def _check_positive(**values: float | None) -> None:
    for name, value in values.items():
        if value is None and name in {"ping_interval", "ping_timeout", "idle_timeout"}:
            continue
        if not (isinstance(value, int | float) and value > 0):
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
