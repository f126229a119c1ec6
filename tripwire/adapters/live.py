"""The machinery every live trade feed shares: buffering, batching, validation, reconnects.

A venue's WebSocket client (``tripwire/adapters/<venue>/websocket.py``) subclasses
:class:`LiveTradeFeed` and writes only what is the venue's own: how one connection is opened,
subscribed and read (:meth:`LiveTradeFeed._session`), and how a wire message becomes a
:class:`TradeRow` or a dead letter. Everything a demanding user relies on is here, once:

* **No tick lost or doubled across reconnects.** Every chunk goes through a
  :class:`~tripwire.feeds.validate.TickValidator` that remembers each symbol's last trade id:
  trades replayed after a reconnect become ``duplicate`` dead letters, and a jump in trade
  ids becomes a :class:`~tripwire.feeds.validate.Gap` (with a counter of missing ids).
* **Reconnects** use capped exponential backoff with full jitter (:class:`Backoff`); a
  connection that delivered a message resets the failure count; ``max_attempts`` consecutive
  failures end the feed with :class:`LiveFeedError`. Each disconnect is counted by reason
  (``idle_timeout``, ``closed_by_server``, ...), so silence shows up in ``stats()``.
* **Bounded everything.** Rows beyond ``max_buffered_rows`` are shed as ``shed`` dead letters
  (counted); pending dead letters beyond ``max_buffered_dead`` are counted as dropped.
* **Latency bound.** A chunk is released when ``max_batch`` rows are buffered or
  ``max_delay_ms`` after the first buffered row, whichever comes first.
* **Two times per tick.** ``ts_ns`` is the exchange's trade time, ``recv_ns`` the arrival
  time from the injected clock.

A reader task (:meth:`LiveTradeFeed._run`) receives and parses messages and appends values
to column lists (no NumPy per message); :meth:`LiveTradeFeed.chunks` builds one TickBatch per
chunk and validates it. The reader keeps draining while the consumer is busy, so a slow
consumer costs shed (and counted) ticks rather than a server-side disconnect.

Time: every recorded time (``recv_ns``, heartbeats, dead letters) comes from the injected
clock. Waits (batch delay, idle timeout, backoff) run on the event loop's monotonic timer,
because they are real network waits that must pass even under a simulated clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from tripwire.feeds.base import FeedChunk
from tripwire.feeds.validate import TickValidator
from tripwire.model import Clock, DeadLetter, DeadReason, SymbolTable, SystemClock, TickBatch

log = logging.getLogger(__name__)

HISTORY = 16  # connection records kept for stats()

COUNTERS = (
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
)


class LiveFeedError(ConnectionError):
    """The feed gave up: ``max_attempts`` consecutive connections failed."""


class TradeRow(NamedTuple):
    """One parsed trade: the values of one tick row (symbol still a name)."""

    symbol: str
    ts_ns: int  # exchange trade time
    price: float
    qty: float
    side: int  # Side.BUY (1) when the taker bought, Side.SELL (-1) when the taker sold
    trade_id: int  # the venue's trade id; -1 when the venue has no integer id
    kind: str  # the venue's message kind ("trade", "aggTrade", "trades", ...)


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


class RowBuffer:
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


class LiveTradeFeed:
    """A live trade feed (:class:`~tripwire.feeds.base.Feed`); subclasses write the venue part.

    A subclass sets ``self.url`` and calls ``super().__init__`` with its symbols, then
    implements :meth:`_session` (one connection: open, subscribe, read until it ends; returns
    why it ended and whether a message arrived), calling :meth:`_opened`/:meth:`_closed`
    around it, :meth:`_note_message` per message, and :meth:`_on_trade` / :meth:`_add_dead`
    with what a message held. :meth:`_describe` adds the venue's keys to ``stats()``.
    """

    # An exchange does not wait for a slow consumer: the runtime sheds (and counts) rather
    # than pausing this feed (see actors.batching.IntakeBuffer).
    live = True
    error_type: type[LiveFeedError] = LiveFeedError
    url: str = ""

    def __init__(
        self,
        symbols: SymbolTable,
        *,
        source: str,
        max_batch: int = 1024,
        max_delay_ms: float = 50.0,
        max_buffered_rows: int = 100_000,
        max_buffered_dead: int = 10_000,
        idle_timeout: float | None = 30.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        check_counts(
            max_batch=max_batch,
            max_buffered_rows=max_buffered_rows,
            max_buffered_dead=max_buffered_dead,
        )
        check_positive(max_delay_ms=max_delay_ms, idle_timeout=idle_timeout)
        if max_buffered_rows < max_batch:
            raise ValueError(
                f"max_buffered_rows ({max_buffered_rows}) must be >= max_batch ({max_batch})"
            )
        self.symbols = symbols
        self.source = source
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000.0
        self.max_buffered_rows = max_buffered_rows
        self.max_buffered_dead = max_buffered_dead
        self.idle_timeout = idle_timeout
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.clock = clock or SystemClock()
        self._ids = {name: i for i, name in enumerate(self.symbols.names)}
        self._validator = TickValidator(
            source=source, clock=self.clock, symbols=self.symbols, detect_gaps=True
        )
        self._rows = RowBuffer()
        self._dead: list[DeadLetter] = []
        self._pending_since: float | None = None  # loop time of the oldest buffered item
        self._wake: asyncio.Event | None = None
        self._reader: asyncio.Task[None] | None = None
        self._started = False
        self._stopping = False
        self._failure: LiveFeedError | None = None
        self._connected = False
        self._conn: dict[str, Any] | None = None
        self._history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._last_by_symbol: dict[int, int] = {}
        self._last_message_ns = 0
        self._n = dict.fromkeys(COUNTERS, 0)
        self._disconnects: dict[str, int] = {}

    # -- what a venue writes ---------------------------------------------------------------

    async def _session(self) -> tuple[str, bool]:
        """One connection: (why it ended, whether any message arrived)."""
        raise NotImplementedError

    def _describe(self) -> dict[str, Any]:
        """The venue's own keys for ``stats()`` (e.g. its streams)."""
        return {}

    # -- the Feed protocol ---------------------------------------------------------------

    async def chunks(self) -> AsyncIterator[FeedChunk]:
        """Chunks until :meth:`stop`; raises :class:`LiveFeedError` if reconnecting fails.

        One iteration per feed. Buffered rows are delivered before the stream ends.
        """
        if self._started:
            raise RuntimeError(f"{type(self).__name__}.chunks() can be iterated only once")
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
            **self._describe(),
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

    def heartbeats(self) -> dict[str, int]:
        """``feed:<source>`` -> when the venue was last heard from (ns; 0: not yet).

        What the watchdog's ``feed:*`` heartbeat check needs per source: a venue that went
        silent keeps its old time, however often the caller writes it.
        """
        return {f"feed:{self.source}": self._last_message_ns}

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
            checked = self._validator.validate(batch, raw=lambda r: message_text(raws[r]))
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

    # -- messages --------------------------------------------------------------------------

    def _note_message(self) -> int:
        """Count one inbound message (any kind: a heartbeat too); returns its arrival time."""
        now = self.clock.now_ns()
        self._n["messages"] += 1
        self._last_message_ns = now
        if self._conn is not None:
            self._conn["messages"] += 1
            self._conn["last_message_ns"] = now
        return now

    def _on_trade(self, row: TradeRow, message: Any, now: int) -> None:
        sid = self._ids.get(row.symbol)
        if sid is None:
            detail = f"symbol {row.symbol!r} is not among the subscribed symbols"
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

    def _refuse(self, reason: DeadReason, message: Any, now: int, symbol: str, detail: str) -> None:
        text = message_text(message)
        self._add_dead(DeadLetter.make(self.source, reason, text, now, symbol, detail))

    def _add_dead(self, dead: DeadLetter) -> None:
        self._validator.count_dead(dead.reason)
        if len(self._dead) >= self.max_buffered_dead:
            self._n["dead_dropped"] += 1  # counted by reason above; only the letter is lost
            return
        self._dead.append(dead)
        self._mark_pending()

    # -- connection ------------------------------------------------------------------------

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
                    self._failure = self.error_type(
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

OPTIONAL_WAITS = {"ping_interval", "ping_timeout", "idle_timeout"}  # None disables these


def close_reason(exc: ConnectionClosed) -> str:
    """Why a websocket connection closed, as a stats key (every venue's client uses it)."""
    sent, rcvd = exc.sent, exc.rcvd
    if sent is not None and sent.code == CloseCode.INTERNAL_ERROR and "ping" in sent.reason:
        return "ping_timeout"  # our keepalive ping went unanswered
    if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
        return "frame_too_big"
    if rcvd is not None:
        return "closed_by_server"  # e.g. Binance's 24-hour disconnect
    return "connection_lost"


def message_text(message: Any) -> str:
    """A wire message as text for a dead letter (binary decoded leniently, objects as JSON)."""
    if isinstance(message, str):
        return message
    if isinstance(message, bytes | bytearray):
        return bytes(message).decode("utf-8", errors="replace")
    try:
        return json.dumps(message, default=repr)
    except (TypeError, ValueError):
        return repr(message)


def check_counts(**values: int) -> None:
    for name, value in values.items():
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise ValueError(f"{name} must be an integer > 0, got {value!r}")


def check_positive(**values: float | None) -> None:
    for name, value in values.items():
        if value is None and name in OPTIONAL_WAITS:
            continue
        if not (isinstance(value, int | float) and value > 0):
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
