"""PaperBroker against hand-computed fills, fees, slippage, latency, PnL and brackets."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tripwire.execution import (
    Broker,
    DuplicateClientOrderId,
    FillKind,
    Liquidity,
    OrderNotOpen,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    PaperBroker,
    PaperConfig,
    Side,
    UnknownOrder,
)
from tripwire.execution.paper import MarkState
from tripwire.model import SimClock, SymbolTable, TickBatch, client_order_id

BTC, ETH = 0, 1
CASH = 100_000.0


def make(**config) -> tuple[PaperBroker, SimClock]:
    clock = SimClock(0)
    return PaperBroker(SymbolTable(["BTCUSDT", "ETHUSDT"]), clock, PaperConfig(**config)), clock


def ticks(*rows: tuple[int, int, float]) -> TickBatch:
    """Rows of (symbol id, ts ns, price); quantity 1 each."""
    return TickBatch.from_columns(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [1.0] * len(rows)
    )


def market(coid: str, side: Side, qty: float, symbol: str = "BTCUSDT", **kw) -> OrderRequest:
    return OrderRequest(coid, symbol, side, qty, **kw)


def limit(coid: str, side: Side, qty: float, price: float, **kw) -> OrderRequest:
    return OrderRequest(coid, "BTCUSDT", side, qty, OrderType.LIMIT, limit_price=price, **kw)


def test_paper_broker_satisfies_the_protocol():
    broker: Broker = make()[0]
    assert broker.account().equity == CASH


# ----------------------------------------------------------------------------- fills


def test_market_buy_fills_at_next_tick_with_slippage_and_taker_fee():
    broker, _ = make(slippage_bps=10, taker_fee_bps=5, maker_fee_bps=1)
    broker.place(market("a", Side.BUY, 2.0))
    [fill] = broker.on_ticks(ticks((BTC, 1, 100.0), (BTC, 2, 200.0)))
    # 100 * 1.001 = 100.1; fee = 2 * 100.1 * 5e-4 = 0.1001
    assert fill.price == pytest.approx(100.1, rel=1e-15)
    assert fill.fee == pytest.approx(0.1001, rel=1e-12)
    assert (fill.qty, fill.side, fill.liquidity, fill.kind, fill.ts_ns) == (
        2.0,
        Side.BUY,
        Liquidity.TAKER,
        FillKind.ORDER,
        1,
    )
    assert broker.account().cash == pytest.approx(CASH - 200.2 - 0.1001, rel=1e-15)
    order = broker.get_order("a")
    assert (order.status, order.filled_qty, order.avg_fill_price) == (
        OrderStatus.FILLED,
        2.0,
        fill.price,
    )


def test_market_sell_slips_down():
    broker, _ = make(slippage_bps=10)
    broker.place(market("s", Side.SELL, 1.0))
    [fill] = broker.on_ticks(ticks((BTC, 1, 100.0)))
    assert fill.price == pytest.approx(99.9, rel=1e-15)
    assert broker.positions()["BTCUSDT"].qty == -1.0


def test_order_does_not_fill_on_ticks_seen_before_it_was_placed():
    broker, _ = make()
    broker.on_ticks(ticks((BTC, 1, 100.0)))
    broker.place(market("a", Side.BUY, 1.0))
    assert broker.fills() == []
    assert broker.on_ticks(ticks((ETH, 2, 10.0))) == []  # another symbol's tick
    [fill] = broker.on_ticks(ticks((BTC, 3, 101.0)))
    assert fill.price == 101.0


def test_latency_keeps_an_order_pending_until_tick_time_reaches_it():
    broker, clock = make(latency_ns=50)
    clock.set(100)
    order = broker.place(market("a", Side.BUY, 1.0))
    assert (order.status, order.placed_ns, order.active_ns) == (OrderStatus.PENDING, 100, 150)
    assert broker.on_ticks(ticks((BTC, 149, 100.0))) == []
    [fill] = broker.on_ticks(ticks((BTC, 150, 101.0)))
    assert (fill.ts_ns, fill.price) == (150, 101.0)


def test_pending_order_reads_open_once_the_clock_passes_its_activation():
    broker, clock = make(latency_ns=50)
    broker.place(market("a", Side.BUY, 1.0))
    clock.set(49)
    assert broker.get_order("a").status is OrderStatus.PENDING
    clock.set(50)
    assert broker.get_order("a").status is OrderStatus.OPEN


def test_limit_buy_fills_at_its_price_only_when_a_tick_touches_it():
    broker, _ = make(maker_fee_bps=2, taker_fee_bps=50)
    broker.place(limit("l", Side.BUY, 4.0, 99.0))
    assert broker.on_ticks(ticks((BTC, 1, 100.0), (BTC, 2, 99.01))) == []
    [fill] = broker.on_ticks(ticks((BTC, 3, 98.0)))
    # Fills at the limit, never better: 99.0; maker fee 4 * 99 * 2e-4 = 0.0792
    assert (fill.price, fill.liquidity) == (99.0, Liquidity.MAKER)
    assert fill.fee == pytest.approx(0.0792, rel=1e-12)


def test_limit_buy_fills_when_the_tick_equals_the_limit():
    broker, _ = make()
    broker.place(limit("l", Side.BUY, 1.0, 99.0))
    [fill] = broker.on_ticks(ticks((BTC, 1, 99.0)))
    assert fill.price == 99.0


def test_limit_sell_fills_when_the_tick_equals_the_limit():
    broker, _ = make()
    broker.place(limit("l", Side.SELL, 1.0, 101.0))
    assert broker.on_ticks(ticks((BTC, 1, 100.99))) == []
    [fill] = broker.on_ticks(ticks((BTC, 2, 101.0)))
    assert fill.price == 101.0


def test_orders_fill_only_on_their_own_symbol():
    broker, _ = make()
    broker.place(market("e", Side.BUY, 3.0, symbol="ETHUSDT"))
    [fill] = broker.on_ticks(ticks((BTC, 1, 100.0), (ETH, 2, 10.0)))
    assert (fill.symbol, fill.price) == ("ETHUSDT", 10.0)


def test_no_partial_fills_an_order_fills_once_and_fully():
    broker, _ = make()
    broker.place(market("a", Side.BUY, 1000.0))  # far more than the tick's qty of 1
    fills = broker.on_ticks(ticks((BTC, 1, 100.0), (BTC, 2, 100.0)))
    assert [f.qty for f in fills] == [1000.0]


# ----------------------------------------------------------------------------- positions and PnL


def test_average_price_on_adds_and_unchanged_on_reduces():
    broker, _ = make()
    broker.place(market("a", Side.BUY, 1.0))
    broker.on_ticks(ticks((BTC, 1, 100.0)))
    broker.place(market("b", Side.BUY, 3.0))
    broker.on_ticks(ticks((BTC, 2, 120.0)))
    assert broker.positions()["BTCUSDT"].avg_price == 115.0  # (100 + 360) / 4
    broker.place(market("c", Side.SELL, 2.0))
    broker.on_ticks(ticks((BTC, 3, 130.0)))
    pos = broker.positions()["BTCUSDT"]
    assert (pos.qty, pos.avg_price, pos.realised_pnl) == (2.0, 115.0, 30.0)
    assert (pos.mark_price, pos.unrealised_pnl) == (130.0, 30.0)
    acct = broker.account()
    assert acct.cash == CASH - 100.0 - 360.0 + 260.0
    assert acct.equity == CASH + 60.0
    assert (acct.realised_pnl, acct.unrealised_pnl, acct.fees) == (30.0, 30.0, 0.0)


def test_flip_through_zero_realises_the_old_side_and_rebases_the_new():
    broker, _ = make()
    broker.place(market("a", Side.BUY, 1.0))
    broker.on_ticks(ticks((BTC, 1, 100.0)))
    broker.place(market("b", Side.SELL, 3.0))
    broker.on_ticks(ticks((BTC, 2, 110.0)))
    pos = broker.positions()["BTCUSDT"]
    assert (pos.qty, pos.avg_price, pos.realised_pnl) == (-2.0, 110.0, 10.0)
    broker.on_ticks(ticks((BTC, 3, 105.0)))
    assert broker.positions()["BTCUSDT"].unrealised_pnl == 10.0  # short 2 from 110 to 105
    broker.place(market("c", Side.BUY, 2.0))
    broker.on_ticks(ticks((BTC, 4, 90.0)))
    pos = broker.positions()["BTCUSDT"]
    assert (pos.qty, pos.realised_pnl, pos.unrealised_pnl) == (0.0, 50.0, 0.0)
    assert math.isnan(pos.avg_price)
    assert broker.account().equity == CASH + 50.0


def test_float_residue_of_fractional_quantities_closes_flat():
    broker, _ = make()
    for coid, side, qty in [("a", Side.BUY, 0.1), ("b", Side.BUY, 0.2), ("c", Side.SELL, 0.3)]:
        broker.place(market(coid, side, qty))
        broker.on_ticks(ticks((BTC, len(broker.fills()) + 1, 100.0)))
    assert broker.positions()["BTCUSDT"].qty == 0.0


def test_marks_move_with_ticks_of_symbols_without_orders():
    broker, _ = make()
    broker.place(market("e", Side.SELL, 2.0, symbol="ETHUSDT"))
    broker.on_ticks(ticks((ETH, 1, 10.0)))
    broker.on_ticks(ticks((ETH, 2, 9.0), (BTC, 3, 50.0), (ETH, 4, 8.5)))
    pos = broker.positions()["ETHUSDT"]
    assert (pos.mark_price, pos.unrealised_pnl) == (8.5, 3.0)
    assert list(broker.positions()) == ["ETHUSDT"]  # untraded BTC has no position


def test_equity_identity_holds_with_fees_and_slippage():
    broker, _ = make(slippage_bps=7, taker_fee_bps=4, maker_fee_bps=1)
    broker.place(market("a", Side.BUY, 1.5))
    broker.place(limit("b", Side.SELL, 0.5, 103.0))
    broker.on_ticks(ticks((BTC, 1, 100.0), (BTC, 2, 104.0), (BTC, 3, 101.0)))
    a = broker.account()
    assert a.equity == pytest.approx(
        a.initial_cash + a.realised_pnl + a.unrealised_pnl - a.fees, rel=1e-14
    )
    # Hand-computed: buy 1.5 @ 100.07, fee 1.5*100.07*4e-4; sell 0.5 @ 103, fee 0.5*103*1e-4.
    assert a.fees == pytest.approx(1.5 * 100.07 * 4e-4 + 0.5 * 103 * 1e-4, rel=1e-12)
    assert a.realised_pnl == pytest.approx(0.5 * (103 - 100.07), rel=1e-12)
    assert a.unrealised_pnl == pytest.approx(1.0 * (101 - 100.07), rel=1e-12)


def test_equity_curve_has_one_point_per_batch_at_its_last_tick():
    broker, _ = make()
    broker.place(market("a", Side.BUY, 1.0))
    broker.on_ticks(ticks((BTC, 1, 100.0), (BTC, 2, 102.0)))
    broker.on_ticks(ticks((ETH, 3, 5.0)))
    broker.on_ticks(ticks((BTC, 4, 97.0)))
    assert [(p.ts_ns, p.cash, p.equity) for p in broker.equity_curve()] == [
        (2, CASH - 100.0, CASH + 2.0),
        (3, CASH - 100.0, CASH + 2.0),
        (4, CASH - 100.0, CASH - 3.0),
    ]


@given(
    st.lists(
        st.tuples(
            st.sampled_from([Side.BUY, Side.SELL]),
            st.floats(0.001, 50.0),
            st.floats(1.0, 1_000.0),
        ),
        min_size=1,
        max_size=30,
    ),
    st.floats(0, 50),
    st.floats(0, 20),
)
def test_accounting_identity_and_position_sum_over_random_trades(trades, slip, fee):
    broker, _ = make(slippage_bps=slip, taker_fee_bps=fee)
    net = 0.0
    for i, (side, qty, price) in enumerate(trades):
        broker.place(market(f"o{i}", side, qty))
        broker.on_ticks(ticks((BTC, i, price)))
        net += int(side) * qty
    a = broker.account()
    scale = sum(q * p for _, q, p in trades)
    assert a.equity == pytest.approx(
        a.initial_cash + a.realised_pnl + a.unrealised_pnl - a.fees, abs=1e-9 * scale + 1e-9
    )
    assert broker.positions()["BTCUSDT"].qty == pytest.approx(net, abs=1e-9)
    assert len(broker.fills()) == len(trades)


# ----------------------------------------------------------------------------- brackets


def test_stop_loss_triggers_on_a_later_tick_never_on_the_fill_tick():
    broker, _ = make()
    broker.place(market("a", Side.BUY, 1.0, stop_loss=95.0, take_profit=110.0))
    [entry] = broker.on_ticks(ticks((BTC, 1, 94.0)))  # fills below its own stop
    assert entry.kind is FillKind.ORDER
    assert [b.order_id for b in broker.brackets()] == ["a"]
    assert broker.on_ticks(ticks((BTC, 2, 95.01))) == []
    [stop] = broker.on_ticks(ticks((BTC, 3, 94.5)))
    assert (stop.kind, stop.side, stop.qty, stop.price, stop.order_id) == (
        FillKind.STOP_LOSS,
        Side.SELL,
        1.0,
        94.5,
        "a",
    )
    assert broker.positions()["BTCUSDT"].qty == 0.0
    assert broker.positions()["BTCUSDT"].realised_pnl == 0.5
    assert broker.brackets() == []  # the take-profit leg went with it


def test_stop_within_the_same_batch_triggers_on_the_next_tick():
    broker, _ = make(slippage_bps=10, taker_fee_bps=10)
    broker.place(market("a", Side.BUY, 2.0, stop_loss=95.0))
    fills = broker.on_ticks(ticks((BTC, 1, 100.0), (BTC, 1, 95.0)))
    assert [f.kind for f in fills] == [FillKind.ORDER, FillKind.STOP_LOSS]
    assert fills[1].price == pytest.approx(95.0 * 0.999, rel=1e-15)
    assert fills[1].liquidity is Liquidity.TAKER


def test_short_take_profit_triggers_at_its_level():
    broker, _ = make()
    broker.place(market("s", Side.SELL, 1.0, stop_loss=110.0, take_profit=90.0))
    broker.on_ticks(ticks((BTC, 1, 100.0)))
    assert broker.on_ticks(ticks((BTC, 2, 90.01))) == []
    [tp] = broker.on_ticks(ticks((BTC, 3, 90.0)))
    assert (tp.kind, tp.side, tp.price) == (FillKind.TAKE_PROFIT, Side.BUY, 90.0)
    assert broker.positions()["BTCUSDT"].realised_pnl == 10.0


def test_short_stop_loss_triggers_above():
    broker, _ = make()
    broker.place(market("s", Side.SELL, 1.0, stop_loss=110.0))
    broker.on_ticks(ticks((BTC, 1, 100.0)))
    [stop] = broker.on_ticks(ticks((BTC, 2, 111.0)))
    assert (stop.kind, stop.side, stop.price) == (FillKind.STOP_LOSS, Side.BUY, 111.0)


def test_bracket_closes_at_most_what_is_still_held():
    broker, _ = make()
    broker.place(market("a", Side.BUY, 2.0, stop_loss=95.0))
    broker.on_ticks(ticks((BTC, 1, 100.0)))
    broker.place(market("b", Side.SELL, 1.5))
    broker.on_ticks(ticks((BTC, 2, 100.0)))
    [stop] = broker.on_ticks(ticks((BTC, 3, 94.0)))
    assert stop.qty == 0.5
    assert broker.positions()["BTCUSDT"].qty == 0.0


def test_bracket_of_a_closed_position_is_dropped_without_a_fill():
    broker, _ = make()
    broker.place(market("a", Side.BUY, 1.0, stop_loss=95.0))
    broker.on_ticks(ticks((BTC, 1, 100.0)))
    broker.place(market("b", Side.SELL, 3.0))  # flips short
    broker.on_ticks(ticks((BTC, 2, 100.0)))
    assert broker.on_ticks(ticks((BTC, 3, 94.0))) == []
    assert broker.brackets() == []
    assert broker.positions()["BTCUSDT"].qty == -2.0


# ----------------------------------------------------------------------------- ids, cancel, replace


def test_placing_the_same_client_order_id_twice_gives_one_order():
    broker, _ = make()
    coid = client_order_id("0190d6c5-0000-7000-8000-000000000000", 0)
    first = broker.place(market(coid, Side.BUY, 1.0))
    again = broker.place(market(coid, Side.BUY, 1.0))
    assert again == first
    assert len(broker.orders()) == 1
    assert len(broker.on_ticks(ticks((BTC, 1, 100.0)))) == 1
    # A retry after the fill returns the filled order and fills nothing more.
    assert broker.place(market(coid, Side.BUY, 1.0)).status is OrderStatus.FILLED
    assert broker.on_ticks(ticks((BTC, 2, 100.0))) == []
    assert broker.positions()["BTCUSDT"].qty == 1.0


def test_plain_values_for_side_and_type_are_stored_as_enums():
    broker, _ = make()
    order = broker.place(OrderRequest("p", "BTCUSDT", 1, 1.0, "limit", limit_price=99.0))
    assert order.request.side is Side.BUY and order.request.order_type is OrderType.LIMIT
    assert broker.place(OrderRequest("p", "BTCUSDT", 1, 1.0, "limit", limit_price=99.0)) == order
    [fill] = broker.on_ticks(ticks((BTC, 1, 98.0)))
    assert (fill.side, fill.price) == (Side.BUY, 99.0)


def test_same_client_order_id_with_other_parameters_is_refused():
    broker, _ = make()
    broker.place(market("a", Side.BUY, 1.0))
    with pytest.raises(DuplicateClientOrderId, match="'a'"):
        broker.place(market("a", Side.BUY, 2.0))
    assert broker.get_order("a").request.qty == 1.0


def test_cancel_stops_a_working_order_from_filling():
    broker, clock = make()
    broker.place(limit("l", Side.BUY, 1.0, 99.0))
    clock.set(7)
    cancelled = broker.cancel("l")
    assert (cancelled.status, cancelled.updated_ns) == (OrderStatus.CANCELLED, 7)
    assert broker.on_ticks(ticks((BTC, 8, 90.0))) == []
    assert broker.orders(working_only=True) == []


def test_cannot_cancel_a_filled_or_cancelled_order():
    broker, _ = make()
    broker.place(market("a", Side.BUY, 1.0))
    broker.on_ticks(ticks((BTC, 1, 100.0)))
    with pytest.raises(OrderNotOpen) as err:
        broker.cancel("a")
    assert err.value.status is OrderStatus.FILLED
    broker.place(market("b", Side.BUY, 1.0))
    broker.cancel("b")
    with pytest.raises(OrderNotOpen, match="cancelled"):
        broker.cancel("b")


def test_unknown_order_ids_raise_unknown_order():
    broker, _ = make()
    for call in (broker.cancel, broker.get_order, lambda i: broker.replace(i, qty=1.0)):
        with pytest.raises(UnknownOrder, match="'nope'"):
            call("nope")


def test_replace_amends_price_and_qty():
    broker, _ = make()
    broker.place(limit("l", Side.BUY, 1.0, 90.0))
    broker.replace("l", qty=2.0, limit_price=99.0)
    [fill] = broker.on_ticks(ticks((BTC, 1, 98.0)))
    assert (fill.qty, fill.price) == (2.0, 99.0)


def test_replace_restarts_the_latency():
    broker, clock = make(latency_ns=10)
    broker.place(limit("l", Side.BUY, 1.0, 99.0))
    clock.set(20)
    amended = broker.replace("l", limit_price=98.0)
    assert (amended.status, amended.active_ns, amended.placed_ns) == (OrderStatus.PENDING, 30, 0)
    assert broker.on_ticks(ticks((BTC, 29, 97.0))) == []
    assert len(broker.on_ticks(ticks((BTC, 30, 97.0)))) == 1


def test_bad_replace_is_rejected_and_leaves_the_order_unchanged():
    broker, _ = make()
    before = broker.place(limit("l", Side.BUY, 1.0, 99.0, stop_loss=90.0))
    with pytest.raises(OrderRejected) as err:
        broker.replace("l", limit_price=89.0)  # now below its own stop
    assert err.value.field == "limit_price"
    with pytest.raises(OrderRejected, match="qty"):
        broker.replace("l", qty=-1.0)
    assert broker.get_order("l") == before


def test_cannot_replace_a_filled_order_or_give_a_market_order_a_limit():
    broker, _ = make()
    broker.place(market("m", Side.BUY, 1.0))
    with pytest.raises(OrderRejected, match="limit_price"):
        broker.replace("m", limit_price=100.0)
    broker.on_ticks(ticks((BTC, 1, 100.0)))
    with pytest.raises(OrderNotOpen):
        broker.replace("m", qty=2.0)


def test_retry_of_the_original_place_after_a_replace_is_still_idempotent():
    broker, _ = make()
    original = limit("l", Side.BUY, 1.0, 90.0)
    broker.place(original)
    amended = broker.replace("l", limit_price=95.0)
    assert broker.place(original) == amended


# ----------------------------------------------------------------------------- bad input


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (OrderRequest("x", "BTCUSDT", Side.BUY, NAN), "qty"),
        (OrderRequest("x", "BTCUSDT", Side.BUY, 0.0), "qty"),
        (OrderRequest("x", "BTCUSDT", Side.BUY, -1.0), "qty"),
        (OrderRequest("x", "BTCUSDT", Side.BUY, INF), "qty"),
        (OrderRequest("x", "BTCUSDT", Side.BUY, True), "qty"),
        (OrderRequest("x", "DOGEUSDT", Side.BUY, 1.0), "symbol"),
        (OrderRequest("", "BTCUSDT", Side.BUY, 1.0), "client_order_id"),
        (OrderRequest("x", "BTCUSDT", Side.UNKNOWN, 1.0), "side"),
        (OrderRequest("x", "BTCUSDT", 2, 1.0), "side"),
        (OrderRequest("x", "BTCUSDT", Side.BUY, 1.0, "stop"), "order_type"),
        (OrderRequest("x", "BTCUSDT", Side.BUY, 1.0, OrderType.LIMIT), "limit_price"),
        (OrderRequest("x", "BTCUSDT", Side.BUY, 1.0, OrderType.LIMIT, NAN), "limit_price"),
        (OrderRequest("x", "BTCUSDT", Side.BUY, 1.0, OrderType.LIMIT, -5.0), "limit_price"),
        (OrderRequest("x", "BTCUSDT", Side.BUY, 1.0, limit_price=100.0), "limit_price"),
        (OrderRequest("x", "BTCUSDT", Side.BUY, 1.0, stop_loss=NAN), "stop_loss"),
        (OrderRequest("x", "BTCUSDT", Side.BUY, 1.0, take_profit=0.0), "take_profit"),
        (
            OrderRequest("x", "BTCUSDT", Side.BUY, 1.0, stop_loss=110.0, take_profit=100.0),
            "take_profit",
        ),
        (
            OrderRequest("x", "BTCUSDT", Side.SELL, 1.0, stop_loss=90.0, take_profit=100.0),
            "take_profit",
        ),
        (
            OrderRequest("x", "BTCUSDT", Side.BUY, 1.0, OrderType.LIMIT, 100.0, stop_loss=100.0),
            "limit_price",
        ),
        (
            OrderRequest("x", "BTCUSDT", Side.SELL, 1.0, OrderType.LIMIT, 100.0, take_profit=101.0),
            "take_profit",
        ),
    ],
)
def test_bad_orders_are_rejected_naming_the_field_and_leave_no_trace(request_, field):
    broker, _ = make()
    with pytest.raises(OrderRejected) as err:
        broker.place(request_)
    assert err.value.field == field
    assert field in str(err.value)
    assert broker.orders() == []


def test_ticks_with_bad_prices_are_skipped():
    broker, _ = make()
    broker.place(market("a", Side.BUY, 1.0))
    batch = ticks((BTC, 1, NAN), (BTC, 2, -3.0), (BTC, 3, INF), (BTC, 4, 0.0))
    assert broker.on_ticks(batch) == []
    assert broker.equity_curve() == []
    [fill] = broker.on_ticks(ticks((BTC, 5, 100.0)))
    assert fill.price == 100.0


def test_a_late_row_is_skipped_and_counted_and_the_rest_of_its_batch_is_processed():
    """Issue 13: one late row used to make the venue refuse the whole batch (ValueError)."""
    broker, _ = make()
    broker.place(market("a", Side.BUY, 1.0))
    broker.on_ticks(ticks((BTC, 10, 5.0)))  # fills the buy at 5
    [fill] = broker.fills()
    assert fill.price == 5.0
    broker.place(market("b", Side.SELL, 1.0))
    # 9 is late for BTC (it saw 10); 12 and 11 follow: 11 is late after 12.
    fills = broker.on_ticks(ticks((BTC, 9, 100.0), (BTC, 12, 7.0), (BTC, 11, 100.0)))
    assert [(f.ts_ns, f.price) for f in fills] == [(12, 7.0)]
    assert broker.refused_rows == 2
    assert broker.positions()["BTCUSDT"].mark_price == 7.0
    assert broker.last_tick_ns == 12


def test_the_venue_clock_is_per_symbol_and_equal_time_is_in_order():
    broker, _ = make()
    broker.place(market("a", Side.BUY, 1.0))
    broker.on_ticks(ticks((ETH, 10, 5.0)))
    # Another stream's tick stamped a little earlier is not late for its own symbol.
    [fill] = broker.on_ticks(ticks((BTC, 9, 100.0)))
    assert fill.ts_ns == 9 and broker.refused_rows == 0
    broker.on_ticks(ticks((BTC, 9, 101.0)))  # equal time is fine
    assert broker.refused_rows == 0 and broker.last_tick_ns == 10


def test_a_stop_fires_on_the_next_good_tick_after_a_late_row():
    broker, _ = make()
    broker.place(market("a", Side.BUY, 1.0, stop_loss=95.0))
    broker.on_ticks(ticks((BTC, 100, 100.0)))
    broker.on_ticks(ticks((BTC, 101, 100.0)))
    assert broker.marks()["BTCUSDT"].mark_ns == 101
    [stop] = broker.on_ticks(ticks((BTC, 50, 100.0), (BTC, 102, 90.0)))
    assert stop.kind is FillKind.STOP_LOSS and (stop.ts_ns, stop.price) == (102, 90.0)
    assert broker.positions()["BTCUSDT"].qty == 0


def test_marks_count_refused_ticks_until_a_good_tick_marks_the_position():
    broker, _ = make()
    broker.place(market("a", Side.BUY, 1.0, stop_loss=95.0))
    broker.on_ticks(ticks((BTC, 100, 100.0)))
    assert broker.marks()["BTCUSDT"] == MarkState(100, 0)
    broker.on_ticks(ticks((BTC, 90, 50.0), (BTC, 91, 50.0)))  # both late: no stop, counted
    assert broker.marks()["BTCUSDT"] == MarkState(100, 2)
    assert broker.positions()["BTCUSDT"].qty == 1.0
    broker.on_ticks(ticks((BTC, 100, 99.0)))
    assert broker.marks()["BTCUSDT"] == MarkState(100, 0)


def test_empty_batch_changes_nothing():
    broker, _ = make()
    broker.place(market("a", Side.BUY, 1.0))
    assert broker.on_ticks(TickBatch.empty()) == []
    assert broker.equity_curve() == []


@pytest.mark.parametrize("field", ["slippage_bps", "maker_fee_bps", "taker_fee_bps", "latency_ns"])
@pytest.mark.parametrize("value", [-1, NAN, INF])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"PaperConfig.{field}"):
        PaperConfig(**{field: value})
