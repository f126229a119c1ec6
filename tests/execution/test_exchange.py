"""CcxtBroker through the real ccxt binance client against a loopback Binance spot API."""

import logging
import math
import threading
import time

import pytest

from tests.execution.fake_binance import (
    INSUFFICIENT,
    INVALID_QTY,
    FakeBinance,
    register_bracket_binance,
)
from tripwire.execution import (
    AuthenticationFailed,
    BackendUnavailable,
    DuplicateClientOrderId,
    ExecutionError,
    InsufficientFunds,
    OrderNotOpen,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    RateLimited,
    Side,
    UnknownOrder,
)
from tripwire.execution.exchange import CcxtBroker, derived_client_id, map_status
from tripwire.watchdog import BrokerControl

pytestmark = pytest.mark.timeout(30)  # loopback HTTP: a hang fails fast instead of stalling CI

SECRET = "s3cr3t-never-print-me-0123456789"
ORDER = "/api/v3/order"
# Spot only: no futures/margin/currency endpoints during load_markets; no client-side throttle.
BINANCE_SPOT = {
    "options": {
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
    },
    "enableRateLimit": False,
    "timeout": 2_000,
}


@pytest.fixture
def venue():
    server = FakeBinance(secret=SECRET).start()
    yield server
    server.stop()


def make_broker(venue, secret=SECRET, **kw) -> CcxtBroker:
    env = {"TRIPWIRE_EXCHANGE_API_KEY": venue.api_key, "TRIPWIRE_EXCHANGE_SECRET": secret}
    options = {
        "env": env,
        "exchange_options": BINANCE_SPOT,
        "urls": venue.ccxt_urls(),
        "sleep": lambda s: None,  # backoff is asserted on stats, not waited for
    }
    exchange_id = kw.pop("exchange_id", "binance")
    return CcxtBroker(exchange_id, ["BTCUSDT", "ETHUSDT"], **(options | kw))


@pytest.fixture
def broker(venue):
    with make_broker(venue) as b:
        yield b


def buy(cid="tw-1", qty=0.5, symbol="BTCUSDT", **kw) -> OrderRequest:
    return OrderRequest(cid, symbol, Side.BUY, qty, **kw)


def limit_buy(cid="tw-l", price=2_900.0, qty=1.0) -> OrderRequest:
    return OrderRequest(cid, "ETHUSDT", Side.BUY, qty, OrderType.LIMIT, price)


# ----------------------------------------------------------------------------- happy paths


def test_market_order_fills_and_shows_in_fills_positions_account(venue, broker):
    order = broker.place(buy(qty=0.5))
    assert order.status is OrderStatus.FILLED
    assert (order.id, order.filled_qty, order.avg_fill_price) == ("tw-1", 0.5, 50_000.0)
    assert [o.client_id for o in venue.created()] == ["tw-1"]  # the id IS the client id

    [fill] = broker.fills()
    assert (fill.order_id, fill.symbol, fill.side, fill.qty, fill.price) == (
        "tw-1",
        "BTCUSDT",
        Side.BUY,
        0.5,
        50_000.0,
    )
    assert fill.fee == pytest.approx(25.0)  # 0.1% of 25 000 USDT, from the trade itself
    assert fill.fill_id == str(venue.trades[0]["id"])
    assert broker.fills("tw-1") == [fill]

    pos = broker.positions()["BTCUSDT"]  # entry price: the account's trades add up to it
    assert (pos.qty, pos.avg_price, pos.mark_price, pos.unrealised_pnl) == (
        0.5, 50_000.0, 50_000.0, 0.0)
    assert broker.positions()["ETHUSDT"].qty == 0.0

    account = broker.account()
    assert account.cash == pytest.approx(100_000.0 - 25_000.0 - 25.0)
    assert account.equity == pytest.approx(100_000.0 - 25.0)  # 0.5 BTC at 50k + USDT
    venue.prices["BTCUSDT"] = 52_000.0
    assert broker.account().realised_pnl == pytest.approx(1_000.0)  # vs. the first equity seen
    venue.balances["ETH"] = 2.0  # a deposit: no trade explains it, so no entry price
    eth = broker.positions()["ETHUSDT"]
    assert eth.qty == 2.0 and math.isnan(eth.avg_price) and eth.unrealised_pnl == 0.0


def test_limit_order_rests_wait_times_out_then_fills(venue):
    broker = make_broker(venue, sleep=time.sleep)  # wait() polls in real time
    order = broker.place(limit_buy())
    assert order.status is OrderStatus.OPEN and order.filled_qty == 0.0
    assert broker.wait("tw-l", timeout_s=0.2, poll_interval_s=0.02).status is OrderStatus.OPEN
    assert [o.id for o in broker.orders(working_only=True)] == ["tw-l"]

    timer = threading.Timer(0.1, venue.fill, args=("tw-l",))
    timer.start()
    try:
        done = broker.wait("tw-l", timeout_s=5.0, poll_interval_s=0.02)
    finally:
        timer.cancel()
    assert done.status is OrderStatus.FILLED
    assert (done.filled_qty, done.avg_fill_price) == (1.0, 2_900.0)
    assert broker.orders(working_only=True) == []
    assert broker.fills("tw-l")[0].liquidity.value == "maker"
    broker.close()


def test_cancel(venue, broker):
    broker.place(limit_buy())
    cancelled = broker.cancel("tw-l")
    assert cancelled.status is OrderStatus.CANCELLED
    assert venue.created("tw-l")[0].status == "CANCELED"
    with pytest.raises(OrderNotOpen):
        broker.cancel("tw-l")
    filled = broker.place(buy("tw-m"))
    with pytest.raises(OrderNotOpen):
        broker.cancel(filled.id)


def test_replace_is_cancel_and_new_with_a_derived_client_id(venue, broker):
    broker.place(limit_buy(price=2_900.0))
    replaced = broker.replace("tw-l", limit_price=2_950.0, qty=2.0)
    assert replaced.id == "tw-l" and replaced.status is OrderStatus.OPEN
    assert (replaced.request.limit_price, replaced.request.qty) == (2_950.0, 2.0)

    first, second = venue.created()
    assert (first.client_id, first.status) == ("tw-l", "CANCELED")
    assert (second.client_id, second.price, second.qty) == (
        derived_client_id("tw-l", 1),
        2_950.0,
        2.0,
    )
    assert [o.id for o in broker.orders()] == ["tw-l"]  # one tripwire order, not two legs

    venue.fill(second.client_id)
    assert broker.get_order("tw-l").status is OrderStatus.FILLED
    assert [f.order_id for f in broker.fills()] == ["tw-l"]
    assert len(derived_client_id("x" * 36, 3)) <= 36


def test_replace_refused_by_the_venue_says_the_old_leg_is_gone(venue, broker):
    broker.place(limit_buy(qty=1.0))
    with pytest.raises(InsufficientFunds, match="old leg cancelled"):
        broker.replace("tw-l", qty=100.0)  # 290 000 USDT with 100 000
    assert broker.get_order("tw-l").status is OrderStatus.CANCELLED
    assert broker.orders(working_only=True) == []


# ----------------------------------------------------------------------------- idempotency


def test_same_client_id_twice_makes_one_exchange_order(venue, broker):
    first = broker.place(buy())
    again = broker.place(buy())
    assert again.id == first.id and again.status is OrderStatus.FILLED
    # Binance itself would accept a filled order's client id again: only the broker prevents it.
    assert len(venue.created()) == 1 and venue.count("POST", ORDER) == 1

    with make_broker(venue) as restarted:  # memory lost: the venue lookup still finds it
        assert restarted.place(buy()).status is OrderStatus.FILLED
    assert len(venue.created()) == 1 and venue.count("POST", ORDER) == 1


def test_accepted_but_response_dropped_then_retry_makes_one_order(venue, broker):
    venue.drop_after_accept(times=1)
    order = broker.place(buy())
    assert order.status is OrderStatus.FILLED and order.filled_qty == 0.5
    assert len(venue.created("tw-1")) == 1 and venue.count("POST", ORDER) == 1
    assert broker.stats["retries"] == 1
    assert broker.place(buy()).id == "tw-1"
    assert len(venue.created()) == 1


def test_a_create_that_times_out_after_the_venue_took_it_makes_one_order(venue):
    # The venue accepts the order but answers after the client's timeout (a slow venue):
    # the retry looks the client id up first and finds it, never sending a second create.
    with make_broker(venue, exchange_options={**BINANCE_SPOT, "timeout": 300}) as broker:
        venue.stall_after_accept(seconds=1.0)
        order = broker.place(buy())
        assert order.status is OrderStatus.FILLED and order.id == "tw-1"
        assert venue.count("POST", ORDER) == 1 and len(venue.created("tw-1")) == 1
        assert broker.stats["retries"] == 1


def test_server_error_on_create_is_retried_without_doubling(venue, broker):
    venue.fail("POST", ORDER, times=2, status=503)
    assert broker.place(buy()).status is OrderStatus.FILLED
    assert venue.count("POST", ORDER) == 3 and len(venue.created()) == 1
    assert broker.stats["retries"] == 2


def test_same_id_different_params_is_refused(venue, broker):
    broker.place(buy(qty=0.5))
    with pytest.raises(DuplicateClientOrderId):
        broker.place(buy(qty=0.6))
    with make_broker(venue) as restarted, pytest.raises(DuplicateClientOrderId):
        restarted.place(buy(qty=0.6))  # checked against the venue's order too
    assert len(venue.created()) == 1


def test_a_restarted_broker_finds_orders_by_client_id(venue, broker):
    broker.place(limit_buy())
    broker.place(buy("tw-m"))
    with make_broker(venue) as restarted:
        assert restarted.get_order("tw-l").status is OrderStatus.OPEN
        assert [f.order_id for f in restarted.fills()] == ["tw-m"]
        assert {o.id for o in restarted.orders()} == {"tw-l", "tw-m"}
        assert restarted.cancel("tw-l").status is OrderStatus.CANCELLED
        with pytest.raises(OrderNotOpen):
            restarted.replace("tw-l", limit_price=2_800.0)


# ----------------------------------------------------------------------------- rejections


def test_insufficient_balance(venue, broker):
    with pytest.raises(InsufficientFunds) as err:
        broker.place(buy(qty=10.0))  # 500 000 USDT of BTC with 100 000 USDT
    assert isinstance(err.value, OrderRejected) and err.value.field == "qty"
    assert "binance place" in str(err.value) and INSUFFICIENT[1] in str(err.value)
    assert venue.created() == [] and broker.stats["failures"] == {"InsufficientFunds": 1}


def test_exchange_invalid_quantity_is_an_order_rejection(venue, broker):
    venue.fail_code("POST", ORDER, times=1, code=INVALID_QTY[0], msg=INVALID_QTY[1])
    with pytest.raises(OrderRejected) as err:
        broker.place(buy())
    assert err.value.field == "qty" and "Invalid quantity" in str(err.value)
    assert "binance place" in str(err.value)


def test_unknown_symbol_and_bad_input_never_reach_the_venue(venue, broker):
    with pytest.raises(OrderRejected) as err:
        broker.place(buy(symbol="DOGEUSDT"))
    assert err.value.field == "symbol"
    with pytest.raises(OrderRejected) as err:
        broker.place(buy(qty=0.0))
    assert err.value.field == "qty"
    assert venue.count("POST", ORDER) == 0


def test_stop_loss_is_refused_where_the_exchange_cannot_attach_it(venue, broker):
    with pytest.raises(OrderRejected) as err:
        broker.place(buy(stop_loss=45_000.0))
    assert err.value.field == "stop_loss" and "cannot attach" in str(err.value)
    assert venue.count("POST", ORDER) == 0


def test_a_restarted_broker_still_sees_the_stop_attached_to_a_position(monkeypatch):
    # A venue that attaches brackets reports them; a broker that re-adopts the order after
    # a restart keeps them, so the watchdog does not call the position unprotected.
    exchange = register_bracket_binance(monkeypatch)
    venue = FakeBinance(secret=SECRET, attached_brackets=True).start()
    try:
        with make_broker(venue, exchange_id=exchange) as broker:
            broker.place(buy(stop_loss=45_000.0, take_profit=60_000.0))
        with make_broker(venue, exchange_id=exchange) as restarted:
            [order] = restarted.orders("BTCUSDT")
            assert (order.request.stop_loss, order.request.take_profit) == (45_000.0, 60_000.0)
            [position] = BrokerControl(restarted, blocking=True).snapshot().positions
            assert position.symbol == "BTCUSDT" and position.stop_attached
    finally:
        venue.stop()


def test_unknown_order(venue, broker):
    with pytest.raises(UnknownOrder) as err:
        broker.get_order("tw-nope")
    assert err.value.order_id == "tw-nope" and "binance get_order" in str(err.value)


# ----------------------------------------------------------------------------- outages


def test_server_errors_beyond_max_retries_are_backend_unavailable(venue):
    sleeps: list[float] = []
    broker = make_broker(
        venue, max_retries=3, backoff_base_s=0.5, backoff_cap_s=1.0, sleep=sleeps.append
    )
    broker.positions()  # markets loaded: only /account fails below
    venue.fail("GET", "/api/v3/account", times=10, status=500)
    with pytest.raises(BackendUnavailable) as err:
        broker.account()
    assert err.value.retryable and not isinstance(err.value, RateLimited)
    assert "binance account" in str(err.value)
    assert venue.count("GET", "/api/v3/account") == 1 + 4  # one before, then 1 + 3 retries
    assert sleeps == [0.5, 1.0, 1.0]  # exponential, capped
    assert broker.stats["retries"] == 3
    assert broker.stats["failures"] == {"BackendUnavailable": 1}
    broker.close()


def test_rate_limit_is_rate_limited(venue):
    broker = make_broker(venue, max_retries=1)
    venue.fail("GET", "/api/v3/account", times=5, status=429)
    with pytest.raises(RateLimited) as err:
        broker.account()
    assert isinstance(err.value, BackendUnavailable) and err.value.retryable
    assert broker.stats["failures"] == {"RateLimited": 1} and broker.stats["retries"] == 1
    broker.close()


# ----------------------------------------------------------------------------- credentials


def test_wrong_secret_is_authentication_failed_without_leaking_it(venue, caplog):
    wrong = "wrong-" + SECRET
    caplog.set_level(logging.DEBUG)
    broker = make_broker(venue, secret=wrong)
    with pytest.raises(AuthenticationFailed) as err:
        broker.place(buy())
    assert "binance" in str(err.value) and "Signature" in str(err.value)
    for text in (str(err.value), repr(err.value), repr(broker), caplog.text):
        assert wrong not in text and SECRET not in text
    assert venue.created() == []
    broker.close()


def test_missing_key_names_the_variable(venue):
    with pytest.raises(AuthenticationFailed, match="MY_BINANCE_KEY"):
        CcxtBroker("binance", ["BTCUSDT"], env={}, api_key_env="MY_BINANCE_KEY")
    with pytest.raises(AuthenticationFailed, match="TRIPWIRE_EXCHANGE_SECRET") as err:
        CcxtBroker("binance", ["BTCUSDT"], env={"TRIPWIRE_EXCHANGE_API_KEY": "k"})
    assert isinstance(err.value, ExecutionError)


def test_sandbox_switches_to_the_testnet_urls():
    env = {"TRIPWIRE_EXCHANGE_API_KEY": "k", "TRIPWIRE_EXCHANGE_SECRET": SECRET}
    live = CcxtBroker("binance", ["BTCUSDT"], env=env)
    test = CcxtBroker("binance", ["BTCUSDT"], env=env, sandbox=True)
    assert live.exchange.urls["api"]["private"] == "https://api.binance.com/api/v3"
    assert test.exchange.urls["api"]["private"] == "https://testnet.binance.vision/api/v3"
    assert test.exchange.isSandboxModeEnabled and SECRET not in repr(test)
    with pytest.raises(ValueError, match="nosuchexchange"):
        CcxtBroker("nosuchexchange", ["BTCUSDT"], env=env)


@pytest.mark.parametrize(
    ("ccxt_status", "expected"),
    [
        ("open", OrderStatus.OPEN),
        ("closed", OrderStatus.FILLED),
        ("canceled", OrderStatus.CANCELLED),
        ("expired", OrderStatus.CANCELLED),
        ("rejected", OrderStatus.CANCELLED),
        (None, OrderStatus.OPEN),
    ],
)
def test_status_mapping(ccxt_status, expected):
    assert map_status(ccxt_status) is expected
