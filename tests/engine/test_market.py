"""MarketState: one close per minute across gaps, the bounded news window, the reference
symbol and the lead-trip rules (the one copy every mode uses)."""

from __future__ import annotations

import numpy as np
import pytest

from tripwire.engine import EngineSettings, MarketState
from tripwire.model import Anomaly, Metric, NewsItem, SymbolTable, TickBatch

S = 1_000_000_000
M = 60 * S
T0 = 1_767_571_200 * S  # 2026-01-05T00:00:00Z


def ticks(rows):
    """rows: (symbol_id, ts_ns, price)."""
    sid, ts, price = zip(*rows, strict=True)
    return TickBatch.from_columns(list(sid), list(ts), list(price), [1.0] * len(rows))


def trip(symbol, sid, ts, price, metric=Metric.RETURN, z=-12.0):
    return Anomaly(symbol_id=sid, symbol=symbol, ts_ns=ts, metric=metric, z=z,
                   window_mean=0.0, window_std=1e-3, value=-0.05, price=price)


def closes(m: MarketState) -> list[list[float]]:
    return [c.tolist() for c in m._closes]


def test_one_close_per_minute_and_gaps_repeat_the_close():
    m = MarketState(SymbolTable(["A"]), horizon_min=10)
    m.on_ticks(ticks([(0, T0 + 1 * S, 10.0), (0, T0 + 59 * S, 11.0)]))
    # minute 0 closes at 11; minutes 1..3 have no tick: each repeats 11; minute 4 trades 12
    m.on_ticks(ticks([(0, T0 + 4 * M + 5 * S, 12.0), (0, T0 + 5 * M, 13.0)]))
    assert closes(m) == [[11.0], [11.0], [11.0], [11.0], [12.0]]
    assert m.last_price(0) == 13.0


def test_a_long_gap_fills_at_most_the_horizon():
    m = MarketState(SymbolTable(["A"]), horizon_min=3)
    m.on_ticks(ticks([(0, T0, 10.0)]))
    m.on_ticks(ticks([(0, T0 + 500 * M, 20.0)]))
    assert closes(m) == [[10.0]] * 3


def test_how_the_stream_is_cut_does_not_change_the_closes():
    rng = np.random.default_rng(1)
    ts = np.sort(T0 + rng.integers(0, 30 * M, 400))
    rows = [(int(i % 3), int(t), float(100 + i)) for i, t in enumerate(ts)]
    whole = MarketState(SymbolTable(["A", "B", "C"]), horizon_min=40)
    whole.on_ticks(ticks(rows))
    pieces = MarketState(SymbolTable(["A", "B", "C"]), horizon_min=40)
    for lo in range(0, len(rows), 37):
        pieces.on_ticks(ticks(rows[lo:lo + 37]))
    assert closes(whole) == closes(pieces) and len(closes(whole)) >= 29
    assert whole._last.tolist() == pieces._last.tolist()


def test_out_of_order_rows_still_close_each_minute_at_its_last_price():
    m = MarketState(SymbolTable(["A", "B"]), horizon_min=5)
    m.on_ticks(ticks([(1, T0 + 70 * S, 3.0), (0, T0 + 10 * S, 1.0), (0, T0 + 61 * S, 2.0)]))
    np.testing.assert_equal(closes(m), [[1.0, np.nan]])  # B had not traded by minute 0's end
    assert m.last_price(0) == 2.0 and m.last_price(1) == 3.0


def test_the_news_window_is_bounded_and_the_overflow_counted():
    m = MarketState(SymbolTable(["A"]), max_news=2)
    m.on_news([NewsItem(f"n{i}", T0 + i * S, f"headline {i}", ()) for i in range(5)])
    assert m.stats()["news_kept"] == 2 and m.stats()["news_dropped"] == 3
    assert [n.id for n in m._news] == ["n3", "n4"]  # the oldest fell out first


def _moved(symbols: list[str], **kw) -> MarketState:
    """Every symbol at 100 for 2 minutes, then ETHUSDT at 90 and BTCUSDT at 102."""
    table = SymbolTable(symbols)
    m = MarketState(table, horizon_min=2, **kw)
    first = [(i, T0 + j * M, 100.0) for j in range(3) for i in range(len(symbols))]
    m.on_ticks(ticks(first))
    later = {"ETHUSDT": 90.0, "BTCUSDT": 102.0, "SOLUSDT": 100.0}
    m.on_ticks(ticks([(table.id(s), T0 + 2 * M + S, later[s]) for s in symbols]))
    return m


def test_the_reference_is_the_configured_symbol_not_the_first():
    """Regression: a live stream ``ethusdt@trade,btcusdt@trade`` puts ETH at symbol 0; the
    old live builder reported ETH's move as the BTC move."""
    m = _moved(["ETHUSDT", "BTCUSDT"])
    [inc] = m.incidents([trip("ETHUSDT", 0, T0 + 2 * M + S, 90.0)])
    assert inc.market.reference_symbol == "BTCUSDT"
    assert inc.market.reference_move_pct == pytest.approx(2.0)
    assert inc.market.symbol_move_pct == pytest.approx(-10.0)


def test_another_reference_can_be_configured():
    m = _moved(["ETHUSDT", "BTCUSDT"], reference_symbol="ETHUSDT")
    assert m.context(1, 102.0).reference_move_pct == pytest.approx(-10.0)


def test_without_the_reference_symbol_the_reference_move_is_none_and_named():
    m = _moved(["ETHUSDT", "SOLUSDT"])
    ctx = m.context(0, 90.0)
    assert ctx.reference_symbol == "BTCUSDT" and ctx.reference_move_pct is None
    assert ctx.market_move_pct == pytest.approx(-5.0)


def test_bad_engine_settings_are_refused_naming_the_key():
    with pytest.raises(ValueError, match="horizon_min"):
        MarketState(SymbolTable(["A"]), horizon_min=0)
    with pytest.raises(ValueError, match="reference_symbol"):
        EngineSettings(reference_symbol="")


def test_the_lead_trip_is_the_largest_abs_z_ties_by_metric_order():
    m = MarketState(SymbolTable(["A"]))
    ts = T0 + 5 * S
    vol, ret = (trip("A", 0, ts, 9.0, Metric.VOLUME, 30.0),
                trip("A", 0, ts, 9.0, Metric.RETURN, -12.0))
    [inc] = m.incidents([ret, vol])
    assert inc.metric == "VOLUME" and set(inc.tripped) == {"VOLUME", "RETURN"}
    tie = trip("A", 0, ts, 9.0, Metric.VOLUME, 12.0)
    [inc] = m.incidents([tie, ret])
    assert inc.metric == "RETURN"  # |z| equal: RETURN comes first in metric order


def test_incidents_come_one_per_tick_in_time_then_symbol_order():
    m = MarketState(SymbolTable(["A", "B"]))
    got = m.incidents([trip("B", 1, T0 + 2 * S, 1.0), trip("A", 0, T0 + 2 * S, 1.0),
                       trip("A", 0, T0 + S, 1.0)])
    assert [(i.symbol, i.ts_ns) for i in got] == [("A", T0 + S), ("A", T0 + 2 * S),
                                                    ("B", T0 + 2 * S)]
