"""A restart of the sign-off service forgets nothing (issue 13, findings 2 and 4).

The :class:`~serve_apps.orchestrator.Orchestrator` runs in this process on market time
against the session's real private PostgreSQL, with the offline rules analyst deciding
(DIRECT mode): a bad-news incident becomes a stopped SELL on the paper venue. Each test
stops the orchestrator and starts a new one on the same database, as a restart of the
SignOff replica does:

* the position, cash, fees, peak and open orders (the decision's stop bracket and a resting
  limit) come back equal, the market clock resumes from the last event, and the orders still
  fill against the next ticks -- the stop's fill reaching the store (open orders are tracked
  again);
* a cancel-all shows the order ``cancelled`` in the store, not ``pending``;
* the same trip posted again (another id, a later arrival, before or after the restart) is
  answered ``duplicate`` with the first incident's id and places no second order;
* a book that cannot be rebuilt makes the venue refuse orders with the reason.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from serve_apps.orchestrator import Orchestrator
from tests.graphs.harness import PRICE, SYMBOL, news_incident
from tests.store.test_decision_store import seed
from tripwire.config import Settings, load_settings
from tripwire.execution.base import OrderRequest, OrderStatus, OrderType
from tripwire.execution.paper import PaperBroker
from tripwire.model import NS_PER_SECOND, Side, SimClock, SymbolTable, TickBatch
from tripwire.store.pg_decisions import PgDecisionStore

pytestmark = pytest.mark.timeout(180)

S = NS_PER_SECOND
SYMBOLS = SymbolTable([SYMBOL, "BTCUSDT"])
T1 = 1_001 * S  # one second after the incident's trip (tests.llm.test_rules.make)


def settings_for(tmp_path: Path) -> Settings:
    return load_settings(env={"TRIPWIRE_DATA__DIR": str(tmp_path),
                              "TRIPWIRE_RISK__MODE": "DIRECT"})


def tick(ts: int, price: float) -> TickBatch:
    return TickBatch.from_columns([SYMBOLS.id(SYMBOL)], [ts], [price], [1.0])


async def started(settings: Settings, dsn: str) -> Orchestrator:
    return await Orchestrator(settings, dsn, SYMBOLS, workers=1, clock=SimClock(0)).start()


async def settle(orch: Orchestrator, results: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not (await orch.idle() and len(orch.results) >= results):
        assert time.monotonic() < deadline, f"no result in time: {orch.results}"
        await asyncio.sleep(0.02)


async def decided(orch: Orchestrator, incident_id: str = "inc-a") -> str:
    """Price the market, submit the bad-news incident, wait: the decision's order id."""
    await orch.on_ticks(tick(T1, PRICE))
    out = await orch.submit([news_incident(incident_id).model_dump(mode="json")])
    assert out == [{"id": incident_id, "status": "queued"}]
    await settle(orch, 1)
    result = orch.results[-1]
    assert result.outcome == "EXECUTED" and result.order_id, result
    return result.order_id


async def store_rows(dsn: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def venue(orch: Orchestrator) -> dict[str, Any]:
    paper = orch.parts.paper
    pnl = await orch.pnl()
    return {"positions": await orch.positions(), "cash": pnl["cash"], "fees": pnl["fees"],
            "equity": pnl["equity"], "peak": pnl["peak_equity"],
            "working": repr(paper.orders(working_only=True)), "brackets": repr(paper.brackets())}


def test_a_restart_keeps_the_position_and_the_open_orders_which_still_fill(
        migrated_db: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    async def body() -> None:
        orch = await started(settings, migrated_db)
        try:
            order_id = await decided(orch)
            await orch.on_ticks(tick(T1 + S, PRICE))  # the SELL fills; its stop is armed
            deps = orch.parts.deps
            limit = await deps.broker_call(deps.broker.place, OrderRequest(
                "resting-limit", SYMBOL, Side.BUY, 0.01, OrderType.LIMIT, PRICE * 0.9))
            assert limit.status.working
            before = await venue(orch)
            assert before["positions"]["positions"][0]["qty"] < 0
            assert before["positions"]["positions"][0]["stop_attached"] is True
        finally:
            await orch.close()

        orch = await started(settings, migrated_db)
        try:
            assert orch.book_status()["refusal"] == ""
            assert await venue(orch) == before
            assert orch.clock.now_ns() == T1 + S  # market time resumes from the last event
            paper = orch.parts.paper
            stop = paper.get_order(order_id).request.stop_loss
            await orch.on_ticks(tick(T1 + 2 * S, stop * 1.01))  # the stop fires ...
            await orch.on_ticks(tick(T1 + 3 * S, PRICE * 0.89))  # ... the limit fills
            assert paper.get_order("resting-limit").status is OrderStatus.FILLED
            kinds = [f.kind.value for f in paper.fills(order_id)]
            assert kinds == ["order", "stop_loss"], kinds
            # The stop's fill reached the store: the decision's order was tracked again.
            fills = await store_rows(migrated_db, "SELECT kind FROM fills WHERE "
                                     "client_order_id = $1 ORDER BY ts_ns", order_id)
            assert [f["kind"] for f in fills] == ["order", "stop_loss"]
        finally:
            await orch.close()

    asyncio.run(body())


def test_cancel_all_shows_the_order_cancelled_in_the_store(migrated_db: str,
                                                           tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    async def body() -> None:
        orch = await started(settings, migrated_db)
        try:
            order_id = await decided(orch)  # no tick since: the market order is still open
            assert orch.parts.paper.get_order(order_id).status.working
            assert await orch.cancel_all() == 1
            rows = await store_rows(migrated_db, "SELECT status FROM orders WHERE "
                                    "client_order_id = $1", order_id)
            assert rows == [{"status": "cancelled"}]
        finally:
            await orch.close()
        orch = await started(settings, migrated_db)  # and the venue agrees after a restart
        try:
            assert orch.parts.paper.get_order(order_id).status is OrderStatus.CANCELLED
            await orch.on_ticks(tick(T1 + S, PRICE))
            assert orch.parts.paper.fills() == []
        finally:
            await orch.close()

    asyncio.run(body())


def test_the_same_trip_posted_again_is_a_duplicate_and_trades_once(migrated_db: str,
                                                                   tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    async def body() -> None:
        orch = await started(settings, migrated_db)
        try:
            await decided(orch, "inc-a")
            await orch.on_ticks(tick(T1 + 30 * S, PRICE))  # it arrives again, later
            again = news_incident("inc-b").model_dump(mode="json")
            assert await orch.submit([again]) == [{"id": "inc-a", "status": "duplicate"}]
        finally:
            await orch.close()
        orch = await started(settings, migrated_db)
        try:
            await orch.on_ticks(tick(T1 + 60 * S, PRICE))
            anonymous = news_incident().model_dump(mode="json")  # no id at all
            assert await orch.submit([anonymous]) == [{"id": "inc-a", "status": "duplicate"}]
            await settle(orch, 0)
            assert orch.results == []  # nothing was decided
        finally:
            await orch.close()
        orders = await store_rows(migrated_db, "SELECT client_order_id FROM orders")
        assert len(orders) == 1, orders

    asyncio.run(body())


def test_a_book_that_cannot_be_rebuilt_refuses_orders(migrated_db: str,
                                                      tmp_path: Path) -> None:
    """The store holds a paper order the venue's log does not (its record was lost): the
    venue must not start flat and trade; it refuses, naming why."""
    settings = settings_for(tmp_path)

    async def body() -> None:
        orch = await started(settings, migrated_db)  # opens the log
        await orch.close()
        store = await PgDecisionStore.connect(migrated_db)
        try:
            await seed(store, "d-lost", symbol=SYMBOL)
            lost = PaperBroker(SYMBOLS, SimClock(T1), settings.decisions.paper).place(
                OrderRequest("tw-lost", SYMBOL, Side.SELL, 1.0))
            await store.record_order("d-lost", "paper", lost)
        finally:
            await store.close()
        orch = await started(settings, migrated_db)
        try:
            refusal = orch.book_status()["refusal"]
            assert "tw-lost" in refusal, refusal
            await orch.on_ticks(tick(T1, PRICE))
            await orch.submit([news_incident("inc-r").model_dump(mode="json")])
            await settle(orch, 1)
            result = orch.results[-1]
            assert result.outcome == "REJECTED" and "refuses orders" in result.reason, result
            assert orch.parts.paper.orders() == []
        finally:
            await orch.close()

    asyncio.run(body())


def test_the_venue_controls_answer_over_http(serve_app) -> None:
    """cancel-all and flatten are coroutines now (they write the book and sync the store);
    the SignOff replica awaits them, so the routes answer counts, not a 500."""
    for path, key in (("/v1/orders/cancel-all", "cancelled"), ("/v1/positions/flatten",
                                                               "orders")):
        r = serve_app.post(path, {})
        assert r.status_code == 200, (path, r.text)
        assert isinstance(r.json()[key], int)
