"""The paper venue's book in PostgreSQL: an append-only event log, replayed at start.

Why a log of events and not a snapshot of the book: the paper venue's state (orders with
their latency windows, brackets armed at a fill's tick, positions with average prices,
cash, fees, marks, the equity curve) is the result of a few kinds of changes, and
:class:`~tripwire.execution.paper.PaperBroker` already knows how to make each of them. Logging
the changes and replaying them through the broker's own code (:meth:`PaperBroker.apply_event`)
rebuilds exactly the book that was, with no second copy of its arithmetic to drift from it;
a snapshot table would need its own serialisation of every private field and would be
rewritten on every tick. The log is also the audit trail of the venue, and it is cheap: one
row per order change and per fill; marks are throttled (below).

How it is written. The broker calls :meth:`PaperBookLog.record` (its ``on_event`` hook) in
the same synchronous step that changes the book; the event gets the next sequence number
and waits in a small outbox; the caller awaits :meth:`PaperBookLog.flush` before it
acknowledges the step (the orchestrator after a tick batch and before copying fills into
the store, the sign-off graph after placing, cancel-all and flatten before answering).
Rows are keyed ``(book, seq)``: a retried flush (a timeout whose commit did land) writes
nothing twice, and each row's digest proves an existing row is the same event. A flush that
fails keeps its events and is retried by the next step; meanwhile the venue refuses new and
amended orders (``refusal``), so nothing is traded that a restart would forget. The outbox is
bounded by that refusal: only fills of orders already working can add to it, and marks
replace an unsent mark.

Marks: a ``marks`` event (every traded symbol's last price, the equity and the running peak)
is kept for a batch that filled something, when a position opens or closes, and otherwise at
most once per ``mark_interval_ns`` of tick time while a position is held. The rebuilt equity
curve therefore has one point per kept mark (a subsample of the live one); the peak is exact,
because every mark carries the running peak of all batches, kept or not.

How it is read. :func:`rebuild` loads the log (gaps are an error), replays it into a fresh
broker under the venue settings in force when each event happened (``open``/``config``
events), and cross-checks the replayed book against the store's ``orders`` and ``fills``:
a fill or an order state the store has and the book does not is an inconsistency; the store
lagging the book (a crash between the log and the store) is listed for the caller to sync.
Any failure (database unreachable, a gap, a replayed fill that differs from the logged one,
a store ahead of the log) leaves the venue refusing orders with the reason, never trading
from a flat book. One process writes a book: a PostgreSQL advisory lock held for the log's
life makes a second writer refuse orders instead of forking the log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from tripwire.execution.base import OrderStatus
from tripwire.execution.paper import PaperBroker, PaperConfig, ReplayMismatch
from tripwire.model import NS_PER_SECOND, Clock, SimClock, SymbolTable
from tripwire.store.pg_decisions import _init_connection

log = logging.getLogger("tripwire.paper_book")

BOOK = "paper"
MARK_INTERVAL_NS = NS_PER_SECOND
DB_TIMEOUT_S = 5.0  # one flush or load; past it the step fails and the venue refuses orders
_LOCK_SPACE = "tripwire.paper_book"
_INSERT = ("INSERT INTO paper_book_events (book, seq, kind, ts_ns, digest, data) "
           "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (book, seq) DO NOTHING")


class BookInconsistent(RuntimeError):
    """The log cannot be replayed into a book the store agrees with (the message says why)."""


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    kind: str
    ts_ns: int
    data: dict[str, Any]
    digest: str


def _digest(kind: str, data: dict[str, Any]) -> str:
    raw = json.dumps({"kind": kind, "data": data}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def _event_ts(kind: str, data: dict[str, Any]) -> int:
    for key in ("now_ns", "ts"):
        if key in data:
            return int(data[key])
    return 0


class PaperBookLog:
    """The outbox and writer of one book's events (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool, lock_conn: asyncpg.Connection | None, *,
                 book: str = BOOK, mark_interval_ns: int = MARK_INTERVAL_NS) -> None:
        self.book = book
        self.mark_interval_ns = mark_interval_ns
        self._pool = pool
        self._lock_conn = lock_conn
        self._pending: list[Event] = []
        self._sealed = 0  # pending events a flush has sent: never replaced, even if it failed
        self._next_seq = 1
        self._flush_lock = asyncio.Lock()
        self._error = ""  # the last flush's failure, until a flush succeeds
        self._failed = ""  # a permanent refusal (no rebuild, another writer)
        self._last_mark_ts = -(2**63)
        self._last_held = False
        self._peak = -math.inf
        self.stats = {"events": 0, "flushed": 0, "flush_failures": 0, "marks_skipped": 0}

    @classmethod
    async def open(cls, dsn: str, *, book: str = BOOK,
                   mark_interval_ns: int = MARK_INTERVAL_NS) -> PaperBookLog:
        """Connect and take the book's writer lock (a refusal, not an error, when taken)."""
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=_init_connection,
                                         timeout=DB_TIMEOUT_S)
        try:
            conn = await asyncpg.connect(dsn, timeout=DB_TIMEOUT_S)
        except BaseException:
            await pool.close()
            raise
        self = cls(pool, conn, book=book, mark_interval_ns=mark_interval_ns)
        got = await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))",
                                  _LOCK_SPACE, book)
        if not got:
            self.fail(f"another process holds the paper book {book!r} (one writer per book)")
        return self

    async def close(self) -> None:
        await self.flush()
        if self._lock_conn is not None:
            await self._lock_conn.close()  # ends the session: releases the writer lock
        await self._pool.close()

    # -- writing ---------------------------------------------------------------------------

    def record(self, kind: str, data: dict[str, Any]) -> None:
        """The broker's ``on_event`` hook: queue one change of the book (synchronous)."""
        if self._failed:
            return  # a book that was not rebuilt is never written over the real one
        if kind == "marks":
            data = self._mark(data)
            if data is None:
                return
            last = self._pending[-1] if len(self._pending) > self._sealed else None
            if last is not None and last.kind == "marks":  # an unsent mark is superseded
                self._pending[-1] = Event(last.seq, kind, int(data["ts"]), data,
                                          _digest(kind, data))
                return
        event = Event(self._next_seq, kind, _event_ts(kind, data), data, _digest(kind, data))
        self._next_seq += 1
        self._pending.append(event)
        self.stats["events"] += 1

    def _mark(self, data: dict[str, Any]) -> dict[str, Any] | None:
        self._peak = max(self._peak, float(data["equity"]))
        ts, held = int(data["ts"]), bool(data["held"])
        due = (data.get("filled") or held != self._last_held or data.get("force")
               or (held and ts - self._last_mark_ts >= self.mark_interval_ns))
        if not due:
            self.stats["marks_skipped"] += 1
            return None
        self._last_mark_ts, self._last_held = ts, held
        return {"ts": ts, "marks": data["marks"], "equity": float(data["equity"]),
                "peak": self._peak, "held": held}

    def resume_marks(self, peak: float, last_ts: int | None, held: bool) -> None:
        """Continue the mark throttle and the running peak where the replayed log ended."""
        self._peak = max(self._peak, peak)
        self._last_mark_ts = last_ts if last_ts is not None else self._last_mark_ts
        self._last_held = held

    def checkpoint(self, broker: PaperBroker) -> None:
        """Queue the book's current marks (at close: the last prices survive the restart)."""
        ts = broker.last_tick_ns
        if ts is None:
            return
        positions = broker.positions()
        marks = {s: p.mark_price for s, p in positions.items() if math.isfinite(p.mark_price)}
        self.record("marks", {"ts": ts, "marks": marks, "equity": broker.account().equity,
                              "held": any(p.qty != 0 for p in positions.values()),
                              "force": True})

    async def flush(self) -> bool:
        """Write the queued events; False (and the venue refusing orders) when it failed."""
        async with self._flush_lock:
            if not self._pending:
                return True
            batch = list(self._pending)
            self._sealed = len(batch)
            try:
                await asyncio.wait_for(self._write(batch), DB_TIMEOUT_S)
            except BookInconsistent as exc:
                self.fail(str(exc))
                return False
            except Exception as exc:  # unreachable, timed out, refused: retried next step
                self._error = f"{type(exc).__name__}: {exc}"[:300]
                self.stats["flush_failures"] += 1
                log.warning("paper book %s: %d events not written yet: %s", self.book,
                            len(batch), self._error)
                return False
            del self._pending[:len(batch)]
            self._sealed = 0
            self._error = ""
            self.stats["flushed"] += len(batch)
            return True

    async def _write(self, batch: Sequence[Event]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.executemany(_INSERT, [(self.book, e.seq, e.kind, e.ts_ns, e.digest,
                                              e.data) for e in batch])
            rows = await conn.fetch("SELECT seq, digest FROM paper_book_events "
                                    "WHERE book = $1 AND seq = ANY($2::bigint[])",
                                    self.book, [e.seq for e in batch])
        stored = {r["seq"]: r["digest"] for r in rows}
        for e in batch:
            if stored.get(e.seq) != e.digest:
                raise BookInconsistent(
                    f"event {e.seq} of book {self.book!r} in PostgreSQL is not the one this "
                    "process wrote (a second writer?)")

    # -- the gate ----------------------------------------------------------------------------

    def fail(self, reason: str) -> None:
        """Refuse orders from now on (until a restart rebuilds the book)."""
        if not self._failed:
            log.error("paper book %s refuses orders: %s", self.book, reason)
        self._failed = self._failed or reason

    def refusal(self) -> str:
        """Why the venue takes no order now, or "" (the broker's ``refusal`` hook)."""
        if self._failed:
            return f"the paper book could not be rebuilt or kept: {self._failed}"
        if self._error and self._pending:
            return (f"{len(self._pending)} paper book change(s) not yet in PostgreSQL "
                    f"({self._error})")
        return ""

    def status(self) -> dict[str, Any]:
        return {"book": self.book, "refusal": self.refusal(), "pending": len(self._pending),
                "next_seq": self._next_seq, **self.stats}

    # -- reading -----------------------------------------------------------------------------

    async def load(self) -> list[Event]:
        rows = await self._pool.fetch(
            "SELECT seq, kind, ts_ns, data, digest FROM paper_book_events WHERE book = $1 "
            "ORDER BY seq", self.book, timeout=60.0)
        events = [Event(r["seq"], r["kind"], r["ts_ns"], r["data"], r["digest"]) for r in rows]
        for i, e in enumerate(events, start=1):
            if e.seq != i:
                raise BookInconsistent(f"the log of book {self.book!r} has a gap: event {i} "
                                       f"missing (next is {e.seq})")
        self._next_seq = len(events) + 1
        return events


# ------------------------------------------------------------------------------- rebuild


@dataclass
class Rebuilt:
    """What :func:`rebuild` found, for the orchestrator to act on."""

    broker: PaperBroker
    events: int = 0
    peak: float = -math.inf  # the highest equity the venue ever showed (from its marks)
    last_ts: int | None = None  # the last event's time: a market clock resumes from it
    track: dict[str, str] = field(default_factory=dict)  # order id -> decision id, with work
    lagging: list[str] = field(default_factory=list)  # store orders behind the book: sync
    legacy: int = 0  # store paper orders from before the log existed (not rebuildable)


def _config_dict(config: PaperConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


async def rebuild(book_log: PaperBookLog, symbols: SymbolTable, config: PaperConfig,
                  clock: Clock, *, backend: str = "paper") -> Rebuilt:
    """Replay the log into a new broker and check it against the store (module docstring).

    Raises :class:`BookInconsistent` (or the database's error); the caller then keeps the
    venue refusing orders. On success the broker is wired to the log and on ``clock``.
    """
    events = await book_log.load()
    first = events[0].data if events else None
    if first is not None and events[0].kind != "open":
        raise BookInconsistent(f"the log of book {book_log.book!r} does not start with open")
    opened = PaperConfig(**first["config"]) if first else config
    broker = PaperBroker(symbols, SimClock(0), opened)
    out = Rebuilt(broker, events=len(events))
    logged_config = opened
    for e in events:
        if e.kind in ("open", "config"):
            logged_config = PaperConfig(**{**e.data["config"],
                                           "initial_cash": opened.initial_cash})
            broker.config = logged_config
            continue
        try:
            broker.apply_event(e.kind, e.data)
        except ReplayMismatch as exc:
            raise BookInconsistent(f"event {e.seq} ({e.kind}): {exc}") from exc
        if e.kind == "marks":
            out.peak = max(out.peak, float(e.data.get("peak", -math.inf)))
        out.last_ts = e.ts_ns if out.last_ts is None else max(out.last_ts, e.ts_ns)
    legacy_ids = set(first.get("legacy_orders", ())) if first else set()
    store_orders = await _store_orders(book_log, backend)
    if first is None:  # the first start with a log: what the store holds cannot be replayed
        legacy_ids = set(store_orders)
        out.legacy = len(legacy_ids)
        book_log.record("open", {"config": _config_dict(config), "now_ns": clock.now_ns(),
                                 "legacy_orders": sorted(legacy_ids)})
    else:
        wanted = dataclasses.replace(config, initial_cash=opened.initial_cash)
        if wanted != logged_config:  # new fees/latency apply from now on, logged as such
            book_log.record("config", {"config": _config_dict(wanted),
                                       "now_ns": clock.now_ns()})
            broker.config = wanted
    await _cross_check(book_log, broker, store_orders, legacy_ids, out)
    book_log.resume_marks(out.peak, out.last_ts,
                          any(p.qty != 0 for p in broker.positions().values()))
    broker.clock = clock
    broker.on_event = book_log.record
    broker.refusal = book_log.refusal
    if isinstance(clock, SimClock) and out.last_ts is not None:  # market time resumes
        clock.set(max(clock.now_ns(), out.last_ts))
    if not await book_log.flush():
        raise BookInconsistent(f"could not write the book's opening events: "
                               f"{book_log.refusal()}")
    return out


async def _store_orders(book_log: PaperBookLog, backend: str) -> dict[str, dict[str, Any]]:
    rows = await book_log._pool.fetch(
        "SELECT client_order_id, proposal_id, status FROM orders WHERE backend = $1",
        backend, timeout=60.0)
    orders = {r["client_order_id"]: {**dict(r), "fills": {}} for r in rows}
    fills = await book_log._pool.fetch(
        "SELECT f.id, f.client_order_id, f.qty, f.price, f.fee FROM fills f "
        "JOIN orders o USING (client_order_id) WHERE o.backend = $1", backend, timeout=60.0)
    for f in fills:
        orders[f["client_order_id"]]["fills"][f["id"]] = dict(f)
    return orders


def _final(status: str) -> bool:
    return status in (OrderStatus.FILLED.value, OrderStatus.CANCELLED.value)


async def _cross_check(book_log: PaperBookLog, broker: PaperBroker,
                       store_orders: dict[str, dict[str, Any]], legacy: set[str],
                       out: Rebuilt) -> None:
    """The store may lag the book (listed in ``out.lagging``), never lead it."""
    problems = []
    known = {o.id: o for o in broker.orders()}
    book_fills = {f.fill_id: f for f in broker.fills()}
    fills_of: dict[str, list[str]] = {}
    for f in book_fills.values():
        fills_of.setdefault(f.order_id, []).append(f.fill_id)
    bracketed = {b.order_id for b in broker.brackets()}
    for oid, row in store_orders.items():
        if oid in legacy:
            continue
        order = known.get(oid)
        if order is None:
            problems.append(f"the store has order {oid} ({row['status']}), the book has not")
            continue
        if _final(row["status"]) and row["status"] != order.status.value:
            problems.append(f"order {oid} is {row['status']} in the store, "
                            f"{order.status.value} in the book")
        for fid, f in row["fills"].items():
            mine = book_fills.get(fid)
            if mine is None or not all(math.isclose(f[k], getattr(mine, k), rel_tol=1e-9)
                                       for k in ("qty", "price", "fee")):
                problems.append(f"fill {fid} of order {oid} differs from the book's")
        same_state = order.status.value == row["status"] or (
            order.status.working and not _final(row["status"]))  # pending vs open: one state
        if not same_state or any(fid not in row["fills"] for fid in fills_of.get(oid, ())):
            out.lagging.append(oid)
        if order.status.working or oid in bracketed:
            out.track[oid] = row["proposal_id"]
    if problems:
        raise BookInconsistent("; ".join(problems[:5]) + (
            f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
