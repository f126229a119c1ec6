"""The live sign-off service trades on an exchange through ccxt (issue 14, item 3).

The :class:`~serve_apps.orchestrator.Orchestrator` (what the Serve app's SignOff replica
runs) is started here directly, on the wall clock, with ``[execution] broker = "ccxt"``
aimed at the loopback Binance (tests/execution/fake_binance.py: real ccxt signing, HMAC
checked on every private request) and the session's PostgreSQL; the offline rules analyst
decides in DIRECT mode. A second Serve app with another config would cost a full deploy;
the Orchestrator is the whole venue side of it (the Ingress only forwards).

The exchange plays a venue that attaches a stop-loss/take-profit to an order (ccxt class
``bracketbinance``, test-only): every proposal carries a stop, and real binance spot cannot
attach one, so there the broker refuses the order (tests/execution/test_exchange.py).

* a good-news incident becomes a BUY on the exchange, with its stop and target attached;
  the exchange fills it on its own and the poll copies the order and its fill into the
  store under the backend ``ccxt:bracketbinance``;
* account, positions and pnl read the exchange; the attached stop closes the position on
  the exchange; cancel-all and flatten act on it;
* a restarted service re-adopts the exchange's open orders;
* missing credentials stop start-up naming the variable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from serve_apps.orchestrator import Orchestrator
from tests.execution.fake_binance import BRACKET_EXCHANGE, FakeBinance, register_bracket_binance
from tests.execution.venues import CCXT_OPTIONS
from tests.graphs.harness import PRICE, SYMBOL
from tests.llm.test_rules import make
from tests.store.test_decision_store import seed
from tripwire.config import Settings, load_settings
from tripwire.execution.base import AuthenticationFailed, OrderRequest, OrderType
from tripwire.model import Side, SymbolTable, SystemClock, TickBatch

pytestmark = pytest.mark.timeout(180)

SYMBOLS = SymbolTable([SYMBOL, "BTCUSDT"])
EXCHANGE = BRACKET_EXCHANGE


@pytest.fixture
def exchange(monkeypatch):
    register_bracket_binance(monkeypatch)
    venue = FakeBinance(prices={SYMBOL: PRICE, "BTCUSDT": 50_000.0},
                        balances={"USDT": 100_000.0, "ETH": 0.0, "BTC": 0.0},
                        attached_brackets=True).start()
    monkeypatch.setenv("TRIPWIRE_CCXT_API_KEY", venue.api_key)
    monkeypatch.setenv("TRIPWIRE_CCXT_SECRET", venue.secret)
    yield venue
    venue.stop()


def settings_for(tmp_path: Path, venue: FakeBinance) -> Settings:
    env = {"TRIPWIRE_DATA__DIR": str(tmp_path), "TRIPWIRE_RISK__MODE": "DIRECT",
           "TRIPWIRE_EXECUTION__BROKER": "ccxt", "TRIPWIRE_EXECUTION__EXCHANGE": EXCHANGE,
           "TRIPWIRE_EXECUTION__RATE_LIMIT": "false", "TRIPWIRE_EXECUTION__TIMEOUT_S": "2.0",
           "TRIPWIRE_EXECUTION__POLL_S": "0.5"}
    for name, url in venue.ccxt_urls().items():
        env[f"TRIPWIRE_EXECUTION__URLS__{name.upper()}"] = f'"{url}"'
    settings = load_settings(env=env)
    # ccxt's option keys are camelCase: a file's job (variables' keys are lowercased)
    options = settings.execution.model_copy(update={"ccxt_options": CCXT_OPTIONS})
    return dataclasses.replace(settings, execution=options)


def ticks(price: float = PRICE) -> TickBatch:
    now = time.time_ns()
    return TickBatch.from_columns([SYMBOLS.id(SYMBOL)] * 3, [now - 2_000_000, now - 1_000_000,
                                                              now], [price] * 3, [1.0] * 3)


async def started(settings: Settings, dsn: str) -> Orchestrator:
    return await Orchestrator(settings, dsn, SYMBOLS, workers=1, clock=SystemClock()).start()


async def wait_until(check, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := await check()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
    return found


async def rows(dsn: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


def good_news() -> Any:
    """A confident good-news jump of ETHUSDT stamped now: the rules analyst BUYs it with a
    marketable limit, a stop below and a target above (spot: no shorting)."""
    incident = make(ret_1_pct=2.9, ret_10_pct=2.9, price=PRICE,
                    news=[("BREAKING: SEC approves spot ETH ETF", True)])
    return incident.model_copy(update={"id": "inc-ccxt", "ts_ns": time.time_ns()})


def test_a_decision_trades_on_the_exchange_and_the_venue_controls_act_there(
        tmp_path, migrated_db, exchange) -> None:
    settings = settings_for(tmp_path, exchange)

    async def body() -> None:
        orch = await started(settings, migrated_db)
        try:
            assert orch.parts.deps.backend == f"ccxt:{EXCHANGE}"
            assert orch.parts.deps.blocking_broker  # network calls run off the loop
            on_loop = watch_the_loop(orch.parts.venue.broker)
            await orch.on_ticks(ticks())
            await orch.submit([good_news().model_dump(mode="json")])

            async def decided() -> Any:
                return orch.results if await orch.idle() and orch.results else None

            result = (await wait_until(decided))[-1]
            assert result.outcome == "EXECUTED", result
            # On the exchange: one BUY with this client id and its bracket attached.
            [placed] = exchange.created(result.order_id)
            assert (placed.side, placed.type, placed.status) == ("BUY", "LIMIT", "NEW")
            assert placed.stop_loss is not None and placed.stop_loss < PRICE
            assert placed.take_profit is not None and placed.take_profit > PRICE
            [order] = await rows(migrated_db, "SELECT backend, status FROM orders "
                                 "WHERE client_order_id = $1", result.order_id)
            assert order == {"backend": f"ccxt:{EXCHANGE}", "status": "open"}
            assert on_loop == []  # no exchange call blocked the service's event loop

            # The exchange fills it on its own; the poll brings the store along.
            exchange.fill(result.order_id)

            async def filled() -> bool:
                row = await rows(migrated_db, "SELECT status FROM orders WHERE "
                                 "client_order_id = $1", result.order_id)
                fills = await rows(migrated_db, "SELECT price FROM fills WHERE "
                                   "client_order_id = $1", result.order_id)
                return row == [{"status": "filled"}] and [f["price"] for f in fills] == [
                    placed.price]

            await wait_until(filled)

            # The reads come from the exchange (spot: the balance is the position).
            assert await held(orch) == pytest.approx(placed.qty)
            account = await orch.account()
            assert account["backend"] == f"ccxt:{EXCHANGE}"
            assert account["gross_exposure"] > 0 and (await orch.pnl())["equity"] > 0

            # The exchange triggers the attached stop on its own: the position is closed.
            [closing] = exchange.move(SYMBOL, placed.stop_loss - 1.0)
            assert exchange.created(closing)[0].status == "FILLED"
            assert await held(orch) == pytest.approx(0.0)

            # cancel-all acts on the exchange; flatten closes what is held there.
            deps = orch.parts.deps
            await deps.broker_call(deps.broker.place, OrderRequest(
                "resting-limit", SYMBOL, Side.BUY, 0.01, OrderType.LIMIT, PRICE * 0.9))
            assert (await orch.account())["open_orders"] == 1
            assert await orch.cancel_all() == 1
            assert exchange.created("resting-limit")[0].status == "CANCELED"
            await deps.broker_call(deps.broker.place, OrderRequest(
                "held", SYMBOL, Side.BUY, 0.05))
            assert await held(orch) == pytest.approx(0.05)
            assert await orch.flatten() == 1
            assert await held(orch) == pytest.approx(0.0)
        finally:
            await orch.close()

    asyncio.run(body())


def watch_the_loop(broker: Any) -> list[str]:
    """The broker's reads and orders, recorded when one runs on the event loop's thread
    (asyncio.run's loop is the main thread; worker threads are not)."""
    calls: list[str] = []
    for name in ("place", "get_order", "orders", "positions", "fills", "account", "cancel"):
        fn = getattr(broker, name)

        def watched(*args: Any, _fn: Any = fn, _name: str = name, **kw: Any) -> Any:
            if threading.current_thread() is threading.main_thread():
                calls.append(_name)
            return _fn(*args, **kw)

        setattr(broker, name, watched)
    return calls


async def held(orch: Orchestrator) -> float:
    return sum(p["qty"] for p in (await orch.positions())["positions"]
               if p["symbol"] == SYMBOL)


def test_a_restarted_service_readopts_the_exchanges_open_orders(
        tmp_path, migrated_db, exchange) -> None:
    settings = settings_for(tmp_path, exchange)

    async def body() -> None:
        orch = await started(settings, migrated_db)
        try:
            deps = orch.parts.deps  # an order of a decision, resting on the exchange
            await seed(deps.store, "d-open", symbol=SYMBOL)
            order = await deps.broker_call(deps.broker.place, OrderRequest(
                "left-open", SYMBOL, Side.BUY, 0.01, OrderType.LIMIT, PRICE * 0.9))
            await deps.store.record_order("d-open", deps.backend, order)
        finally:
            await orch.close()
        orch = await started(settings, migrated_db)  # a new process, the same exchange
        try:
            assert orch.metrics()["counters"]["venue_orders_adopted"] == 1
            assert (await orch.account())["open_orders"] == 1
            deps = orch.parts.deps  # placing it again (a retried step) finds it: no double
            again = await deps.broker_call(deps.broker.place, OrderRequest(
                "left-open", SYMBOL, Side.BUY, 0.01, OrderType.LIMIT, PRICE * 0.9))
            assert again.status.working and len(exchange.created("left-open")) == 1
            # The exchange fills it while nobody asks, and then fails the poll's lookups for
            # two rounds (counted): the poll brings the store along once it answers again.
            exchange.fill("left-open")
            exchange.fail("GET", "/api/v3/order", times=2 * (settings.execution.max_retries + 1))

            async def synced() -> bool:
                row = await rows(migrated_db, "SELECT status FROM orders WHERE "
                                 "client_order_id = 'left-open'")
                fills = await rows(migrated_db, "SELECT price FROM fills WHERE "
                                   "client_order_id = 'left-open'")
                return row == [{"status": "filled"}] and len(fills) == 1

            await wait_until(synced)
            assert orch.metrics()["counters"]["venue_polls_failed"] >= 1
        finally:
            await orch.close()

    asyncio.run(body())


def test_missing_exchange_credentials_stop_start_up_naming_the_variable(
        tmp_path, migrated_db, exchange, monkeypatch) -> None:
    monkeypatch.delenv("TRIPWIRE_CCXT_SECRET")
    settings = settings_for(tmp_path, exchange)
    with pytest.raises(AuthenticationFailed, match="TRIPWIRE_CCXT_SECRET") as err:
        asyncio.run(started(settings, migrated_db))
    assert exchange.api_key not in str(err.value)
    assert exchange.requests == []  # refused before any network call
