"""Broker conformance: one set of tests over paper, backtest and ccxt.

Every broker a driver can be configured with (``[execution] broker``, built by
``build_broker``) must behave the same where the protocol promises it: place, idempotent
retry by client order id (never a second order), cancel, replace, query, positions, fills,
a failing venue refused fail-closed and never doubled on retry, and restart and re-adopt (a
new broker instance over the same book or exchange sees the same open orders and positions).
The ccxt broker runs the real ccxt binance client against the loopback exchange
(tests/execution/fake_binance.py), which checks every signed request's HMAC signature.
The watchdog's controls (BrokerControl: the account snapshot, cancel-all, flatten, and a HALT
that cancels and flattens) act on every one of them. Modelled on the decision-store suite
(tests/store/test_decision_store.py).
"""

from __future__ import annotations

import asyncio
import math

import pytest

from tests.execution.venues import PRICES, T0, ExchangeVenue, SimulatedVenue
from tripwire.execution import (
    BackendUnavailable,
    DuplicateClientOrderId,
    OrderNotOpen,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    UnknownOrder,
)
from tripwire.model import SimClock
from tripwire.store.pg_decisions import PgDecisionStore
from tripwire.watchdog import BrokerControl, Watchdog, WatchdogConfig

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["paper", "backtest", "ccxt"])
def venue(request):
    if request.param == "paper":
        h = SimulatedVenue("paper", request.getfixturevalue("migrated_db"))
    elif request.param == "backtest":
        h = SimulatedVenue("backtest")
    else:
        h = ExchangeVenue()
    try:
        yield h
    finally:
        h.close()


def buy(cid: str = "tw-buy", qty: float = 0.5, symbol: str = "BTCUSDT") -> OrderRequest:
    return OrderRequest(cid, symbol, Side.BUY, qty)


def limit_buy(cid: str = "tw-limit", price: float = 2_900.0, qty: float = 1.0) -> OrderRequest:
    return OrderRequest(cid, "ETHUSDT", Side.BUY, qty, OrderType.LIMIT, price)


def test_a_market_order_fills_and_shows_in_fills_and_positions(venue):
    order = venue.broker.place(buy())
    assert order.id == "tw-buy" and order.request.symbol == "BTCUSDT"
    venue.tick()
    order = venue.broker.get_order("tw-buy")
    assert order.status is OrderStatus.FILLED
    assert order.filled_qty == pytest.approx(0.5)
    assert order.avg_fill_price == pytest.approx(PRICES["BTCUSDT"])
    fills = venue.broker.fills("tw-buy")
    assert [(f.order_id, f.side) for f in fills] == [("tw-buy", Side.BUY)]
    assert sum(f.qty for f in fills) == pytest.approx(0.5)
    assert all(f.fee >= 0 and math.isfinite(f.fee) for f in fills)
    position = venue.broker.positions()["BTCUSDT"]
    assert position.qty == pytest.approx(0.5)
    # An entry price the risk checks can size against (spot ccxt: from the account's trades)
    assert position.avg_price == pytest.approx(PRICES["BTCUSDT"])
    assert venue.broker.account().equity > 0


def test_placing_the_same_client_order_id_again_never_doubles_the_order(venue):
    first = venue.broker.place(limit_buy())
    again = venue.broker.place(limit_buy())  # a retry: the order that exists
    assert again.id == first.id and again.status.working
    assert venue.orders_on_venue("tw-limit") == 1
    venue.broker.place(buy())
    venue.tick()
    venue.broker.place(buy())  # retried after it filled: still one order, one fill
    venue.tick()
    assert venue.orders_on_venue("tw-buy") == 1
    assert len(venue.broker.fills("tw-buy")) == 1
    assert venue.broker.positions()["BTCUSDT"].qty == pytest.approx(0.5)
    with pytest.raises(DuplicateClientOrderId):  # the same id for another order: a bug
        venue.broker.place(buy(qty=0.7))


def test_cancel_ends_a_working_order_and_only_a_working_one(venue):
    venue.broker.place(limit_buy())
    assert venue.broker.cancel("tw-limit").status is OrderStatus.CANCELLED
    assert venue.broker.get_order("tw-limit").status is OrderStatus.CANCELLED
    with pytest.raises(OrderNotOpen):
        venue.broker.cancel("tw-limit")
    with pytest.raises(UnknownOrder):
        venue.broker.cancel("tw-never-placed")
    assert venue.broker.orders(working_only=True) == []


def test_replace_amends_a_working_order_under_the_same_id(venue):
    venue.broker.place(limit_buy(price=2_900.0))
    amended = venue.broker.replace("tw-limit", limit_price=2_950.0)
    assert amended.id == "tw-limit" and amended.status.working
    assert amended.request.limit_price == 2_950.0
    venue.fill_limit("tw-limit", 2_950.0)
    order = venue.broker.get_order("tw-limit")
    assert order.status is OrderStatus.FILLED
    assert order.filled_qty == pytest.approx(1.0)
    assert order.avg_fill_price == pytest.approx(2_950.0)
    assert [o.id for o in venue.broker.orders("ETHUSDT")] == ["tw-limit"]  # shown once
    with pytest.raises(OrderNotOpen):
        venue.broker.replace("tw-limit", limit_price=2_960.0)


def test_queries_by_id_symbol_and_working_state(venue):
    venue.broker.place(limit_buy())
    venue.broker.place(buy())
    venue.tick()
    with pytest.raises(UnknownOrder):
        venue.broker.get_order("tw-never-placed")
    assert [o.id for o in venue.broker.orders("ETHUSDT")] == ["tw-limit"]
    assert {o.id for o in venue.broker.orders()} == {"tw-limit", "tw-buy"}
    assert [o.id for o in venue.broker.orders(working_only=True)] == ["tw-limit"]
    assert venue.broker.orders("DOGEUSDT") == []  # nothing exists for an unknown symbol
    assert venue.broker.fills("tw-limit") == []


def test_a_failing_venue_refuses_the_order_and_a_retry_places_it_once(venue):
    venue.fail_venue(times=20)  # beyond any retry budget
    with pytest.raises(BackendUnavailable) as failed:
        venue.broker.place(buy())
    assert failed.value.retryable
    assert venue.orders_on_venue("tw-buy") == 0  # fail closed: no order
    venue.recover()
    venue.broker.place(buy())  # the caller's retry, by the same client order id
    venue.broker.place(buy())
    venue.tick()
    assert venue.orders_on_venue("tw-buy") == 1
    assert venue.broker.positions()["BTCUSDT"].qty == pytest.approx(0.5)


def test_a_restarted_broker_readopts_open_orders_and_positions(venue):
    venue.broker.place(buy())
    venue.tick()
    venue.broker.place(limit_buy())
    venue.flush()
    before_positions = venue.broker.positions()["BTCUSDT"].qty

    broker = venue.restart()  # a new instance over the same book / exchange
    assert [o.id for o in broker.orders(working_only=True)] == ["tw-limit"]
    assert broker.get_order("tw-buy").status is OrderStatus.FILLED
    assert broker.positions()["BTCUSDT"].qty == pytest.approx(before_positions)
    assert [f.order_id for f in broker.fills("tw-buy")] == ["tw-buy"]
    # The restarted process retries its placement: the order that exists, not a second one.
    again = broker.place(limit_buy())
    assert again.id == "tw-limit" and again.status.working
    assert venue.orders_on_venue("tw-limit") == 1
    assert broker.cancel("tw-limit").status is OrderStatus.CANCELLED


def control_of(venue) -> BrokerControl:
    # A network broker blocks: the watchdog runs its calls in a thread (blocking=True).
    return BrokerControl(venue.broker, clock=SimClock(T0), blocking=venue.built.blocking)


def test_the_watchdogs_controls_read_cancel_and_flatten_on_every_broker(venue):
    venue.broker.place(buy())
    venue.tick()
    venue.broker.place(limit_buy())
    venue.flush()
    control = control_of(venue)
    snap = control.snapshot()
    assert snap.open_orders == 1
    assert [(p.symbol, p.stop_attached) for p in snap.positions] == [("BTCUSDT", False)]
    assert snap.gross_exposure == pytest.approx(0.5 * PRICES["BTCUSDT"])
    assert control.cancel_open_orders() == 1
    venue.flush()
    assert venue.broker.get_order("tw-limit").status is OrderStatus.CANCELLED
    assert control.flatten() == 1
    venue.tick()
    assert venue.broker.positions()["BTCUSDT"].qty == pytest.approx(0.0)
    assert control.snapshot().open_orders == 0 and control.snapshot().positions == ()


def test_a_watchdog_halt_cancels_and_flattens_on_every_broker(venue, migrated_db):
    venue.broker.place(buy())  # 25,000 of exposure against a 10,000 cap, and no stop
    venue.tick()
    venue.broker.place(limit_buy())
    venue.flush()
    config = WatchdogConfig(heartbeats=(), max_drawdown=0.5, max_gross_exposure=10_000.0,
                            flatten_on_halt=True)

    async def check() -> list:
        store = await PgDecisionStore.connect(migrated_db)
        try:
            dog = Watchdog(store, control_of(venue), config, SimClock(T0))
            breaches = await dog.check_once()
            assert (await store.read_halt()).halted
            assert dog.stats["cancelled"] == 1 and dog.stats["flattened"] == 1
            return breaches
        finally:
            await store.close()

    breaches = asyncio.run(check())
    assert {"exposure_cap", "stop_missing"} <= {b.code for b in breaches}
    venue.tick()
    assert venue.broker.orders(working_only=True) == []
    assert venue.broker.positions()["BTCUSDT"].qty == pytest.approx(0.0)


def test_a_restarted_broker_readopts_a_replaced_order_under_its_own_id(venue):
    venue.broker.place(limit_buy(price=2_900.0))
    venue.broker.replace("tw-limit", limit_price=2_950.0)
    venue.flush()

    broker = venue.restart()
    assert [o.id for o in broker.orders(working_only=True)] == ["tw-limit"]
    order = broker.get_order("tw-limit")
    assert order.status.working and order.request.limit_price == 2_950.0
    assert broker.cancel("tw-limit").status is OrderStatus.CANCELLED
    assert broker.orders(working_only=True) == []
