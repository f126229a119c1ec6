"""The paper venue's book survives a restart (tripwire.store.paper_book, real PostgreSQL).

A book is built through :func:`rebuild` on a fresh log, traded (market and limit orders,
a bracket, a replace, a cancel, fills, marks), closed; a second :func:`rebuild` on the same
database must give the same orders, fills, brackets, positions, cash, fees, marks and peak,
and then behave like the first on the same next ticks. A log that does not fit (a gap, a
forged fill, an order the store has and the log has not) or a second writer leaves the venue
refusing orders; a failed write refuses orders until a retry lands, and a retry never
doubles a row.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from typing import Any

import asyncpg
import pytest

from tests.store.test_decision_store import seed
from tripwire.execution.base import BackendUnavailable, OrderRequest, OrderType
from tripwire.execution.paper import PaperBroker, PaperConfig
from tripwire.model import NS_PER_SECOND, Side, SimClock, SymbolTable, TickBatch
from tripwire.store.paper_book import BookInconsistent, PaperBookLog, rebuild
from tripwire.store.pg_decisions import PgDecisionStore

pytestmark = pytest.mark.timeout(120)

SYMBOLS = SymbolTable(["BTCUSDT", "ETHUSDT"])
CFG = PaperConfig(slippage_bps=2.0, maker_fee_bps=1.0, taker_fee_bps=5.0,
                  latency_ns=10, initial_cash=10_000.0)
T0 = 1_700_000_000 * NS_PER_SECOND
S = NS_PER_SECOND


def ticks(t: int, btc: float, eth: float) -> TickBatch:
    return TickBatch.from_columns([0, 1], [t, t], [btc, eth], [1.0, 1.0])


def state(b: PaperBroker) -> dict[str, Any]:
    """Everything a person or the watchdog reads from the venue (nan-safe via repr)."""
    return {"orders": repr(b.orders()), "fills": repr(b.fills()), "brackets": repr(b.brackets()),
            "positions": repr(sorted(b.positions().items())), "account": repr(b.account()),
            "marks": repr(sorted(b.marks().items())), "last": b.last_tick_ns}


async def trade(b: PaperBroker, book: PaperBookLog, clock: SimClock) -> None:
    """A session with every kind of change, each step flushed as the orchestrator does."""
    b.on_ticks(ticks(T0, 100.0, 50.0))
    b.place(OrderRequest("buy-btc", "BTCUSDT", Side.BUY, 2.0, stop_loss=90.0,
                         take_profit=130.0))
    b.place(OrderRequest("sell-eth", "ETHUSDT", Side.SELL, 4.0, OrderType.LIMIT, 55.0))
    b.place(OrderRequest("gone", "ETHUSDT", Side.BUY, 1.0, OrderType.LIMIT, 40.0))
    await book.flush()
    for n in range(1, 6):  # fills the market buy (and arms its bracket); marks move
        clock.set(T0 + n * S)
        b.on_ticks(ticks(T0 + n * S, 100.0 + n, 50.0 + n / 10))
        await book.flush()
    b.replace("sell-eth", qty=3.0, limit_price=54.0)
    b.cancel("gone")
    b.place(OrderRequest("rest-btc", "BTCUSDT", Side.SELL, 1.0, OrderType.LIMIT, 120.0))
    await book.flush()
    clock.set(T0 + 10 * S)
    b.on_ticks(ticks(T0 + 10 * S, 104.0, 54.5))  # the amended sell fills at 54
    await book.flush()


def test_a_rebuilt_book_equals_the_book_that_was_and_trades_on(migrated_db: str) -> None:
    async def body() -> None:
        clock = SimClock(T0)
        book = await PaperBookLog.open(migrated_db)
        old = (await rebuild(book, SYMBOLS, CFG, clock)).broker
        await trade(old, book, clock)
        before = state(old)
        peak = max(p.equity for p in old.equity_curve())
        assert old.positions()["BTCUSDT"].qty == 2.0 and old.brackets()
        assert [o.id for o in old.orders(working_only=True)] == ["rest-btc"]
        await book.close()
        old.on_event = old.refusal = None  # the old process is gone; keep it as the witness

        clock2 = SimClock(0)  # a market clock starts at 0 and resumes from the log
        book2 = await PaperBookLog.open(migrated_db)
        try:
            rebuilt = await rebuild(book2, SYMBOLS, CFG, clock2)
            new = rebuilt.broker
            assert state(new) == before
            assert rebuilt.peak == pytest.approx(peak, rel=1e-12)
            assert clock2.now_ns() == T0 + 10 * S
            assert book2.refusal() == ""
            # The same next ticks: the stop fires and the resting sell fills in both.
            for b in (old, new):
                b.on_ticks(ticks(T0 + 11 * S, 121.0, 54.0))
                b.on_ticks(ticks(T0 + 12 * S, 89.0, 54.0))
            assert state(new) == state(old)
            kinds = [f.kind.value for f in new.fills()]
            assert kinds[-2:] == ["order", "stop_loss"], kinds
            assert new.positions()["BTCUSDT"].qty == 0.0  # sold 1 at 120, the stop closed 1
            await book2.flush()
        finally:
            await book2.close()
        # ... and those fills are in the log too: a third start sees them.
        book3 = await PaperBookLog.open(migrated_db)
        try:
            third = (await rebuild(book3, SYMBOLS, CFG, SimClock(0))).broker
            assert state(third)["fills"] == state(new)["fills"]
            assert state(third)["positions"] == state(new)["positions"]
        finally:
            await book3.close()

    asyncio.run(body())


async def _started(dsn: str) -> None:
    """A book with one order, its log closed."""
    book = await PaperBookLog.open(dsn)
    b = (await rebuild(book, SYMBOLS, CFG, SimClock(T0))).broker
    b.place(OrderRequest("o-1", "BTCUSDT", Side.BUY, 1.0, OrderType.LIMIT, 90.0))
    await book.close()


async def _insert(dsn: str, seq: int, kind: str, data: dict[str, Any]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO paper_book_events (book, seq, kind, ts_ns, digest, data)"
                           " VALUES ('paper', $1, $2, $3, 'forged', $4::jsonb)",
                           seq, kind, T0, json.dumps(data))
    finally:
        await conn.close()


async def _refused_rebuild(dsn: str, match: str) -> None:
    book = await PaperBookLog.open(dsn)
    try:
        with pytest.raises(BookInconsistent, match=match):
            await rebuild(book, SYMBOLS, CFG, SimClock(T0))
    finally:
        await book.close()


def test_a_gap_in_the_log_is_refused(migrated_db: str) -> None:
    async def body() -> None:
        await _started(migrated_db)
        await _insert(migrated_db, 9, "cancel", {"order_id": "o-1", "now_ns": T0})
        await _refused_rebuild(migrated_db, "gap")

    asyncio.run(body())


def test_a_logged_fill_the_replay_does_not_make_is_refused(migrated_db: str) -> None:
    async def body() -> None:
        await _started(migrated_db)  # events 1 (open) and 2 (place)
        forged = {"fill_id": "o-1:0", "order_id": "o-1", "symbol": "BTCUSDT", "side": "BUY",
                  "qty": 1.0, "price": 80.0, "fee": 0.0, "liquidity": "maker",
                  "kind": "order", "ts_ns": T0 + S}
        await _insert(migrated_db, 3, "tick", {"via": "order", "order_id": "o-1",
                                               "ts": T0 + S, "price": 85.0, "fill": forged})
        await _refused_rebuild(migrated_db, "event 3")

    asyncio.run(body())


def test_an_order_the_store_has_and_the_log_has_not_is_refused(migrated_db: str) -> None:
    async def body() -> None:
        await _started(migrated_db)
        store = await PgDecisionStore.connect(migrated_db)
        try:
            await seed(store, "d-lost")
            lost = PaperBroker(SYMBOLS, SimClock(T0), CFG).place(
                OrderRequest("tw-lost", "ETHUSDT", Side.SELL, 1.0))
            await store.record_order("d-lost", "paper", lost)
        finally:
            await store.close()
        await _refused_rebuild(migrated_db, "tw-lost")

    asyncio.run(body())


def test_the_log_is_append_only(migrated_db: str) -> None:
    async def body() -> None:
        await _started(migrated_db)
        conn = await asyncpg.connect(migrated_db)
        try:
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute("DELETE FROM paper_book_events WHERE seq = 2")
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute("UPDATE paper_book_events SET kind = 'x'")
        finally:
            await conn.close()

    asyncio.run(body())


def test_a_second_writer_reads_the_book_but_refuses_orders(migrated_db: str) -> None:
    async def body() -> None:
        await _started(migrated_db)
        first = await PaperBookLog.open(migrated_db)
        second = await PaperBookLog.open(migrated_db)
        try:
            assert first.refusal() == ""
            assert "another process holds" in second.refusal()
            b = (await rebuild(second, SYMBOLS, CFG, SimClock(T0))).broker
            assert [o.id for o in b.orders()] == ["o-1"]  # reads work
            with pytest.raises(BackendUnavailable, match="another process holds"):
                b.place(OrderRequest("o-2", "BTCUSDT", Side.BUY, 1.0))
        finally:
            await second.close()
            await first.close()

    asyncio.run(body())


def test_a_failed_write_refuses_orders_until_a_retry_lands_once(migrated_db: str) -> None:
    async def body() -> None:
        book = await PaperBookLog.open(migrated_db)
        b = (await rebuild(book, SYMBOLS, CFG, SimClock(T0))).broker
        admin = await asyncpg.connect(migrated_db)
        try:
            # The database refuses the next rows (a real error from PostgreSQL, not a mock).
            await admin.execute("ALTER TABLE paper_book_events ADD CONSTRAINT t_refuse "
                                "CHECK (seq < 2)")
            b.place(OrderRequest("o-1", "BTCUSDT", Side.BUY, 1.0, OrderType.LIMIT, 90.0))
            assert await book.flush() is False
            with pytest.raises(BackendUnavailable, match="not yet in PostgreSQL"):
                b.place(OrderRequest("o-2", "BTCUSDT", Side.BUY, 1.0))
            b.cancel("o-1")  # reducing risk stays possible, and is queued too
            await admin.execute("ALTER TABLE paper_book_events DROP CONSTRAINT t_refuse")
            assert await book.flush() is True and book.refusal() == ""
            assert await book.flush() is True  # nothing left: nothing written twice
            b.place(OrderRequest("o-2", "BTCUSDT", Side.BUY, 1.0, OrderType.LIMIT, 80.0))
            assert await book.flush() is True
            rows = await admin.fetch("SELECT seq, kind FROM paper_book_events ORDER BY seq")
            assert [(r["seq"], r["kind"]) for r in rows] == [
                (1, "open"), (2, "place"), (3, "cancel"), (4, "place")]
            # A retried write of rows that landed is a no-op, proven by their digests.
            await book._write([dataclasses.replace(e) for e in await book.load()])
            assert await admin.fetchval("SELECT count(*) FROM paper_book_events") == 4
        finally:
            await admin.close()
            await book.close()

    asyncio.run(body())


def test_marks_are_throttled_but_the_peak_is_exact(migrated_db: str) -> None:
    async def body() -> None:
        book = await PaperBookLog.open(migrated_db, mark_interval_ns=10 * S)
        b = (await rebuild(book, SYMBOLS, CFG, SimClock(T0))).broker
        b.on_ticks(ticks(T0, 100.0, 50.0))
        b.place(OrderRequest("buy", "BTCUSDT", Side.BUY, 10.0))
        prices = [100.0, 150.0, 101.0, 102.0, 103.0]  # the peak is a batch between marks
        for n, p in enumerate(prices, start=1):
            b.on_ticks(ticks(T0 + n * S, p, 50.0))
        peak = max(e.equity for e in b.equity_curve())
        book.checkpoint(b)  # as the orchestrator does at close: the last marks are kept
        await book.close()
        book2 = await PaperBookLog.open(migrated_db)
        try:
            rebuilt = await rebuild(book2, SYMBOLS, CFG, SimClock(0))
            kept = len(rebuilt.broker.equity_curve())
            assert kept < len(b.equity_curve())  # a subsample...
            assert rebuilt.peak == pytest.approx(peak)  # ...with the exact peak
            assert math.isclose(rebuilt.broker.account().equity, b.account().equity)
        finally:
            await book2.close()

    asyncio.run(body())
