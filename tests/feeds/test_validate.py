"""TickValidator against a plain per-tick reference of its documented rules.

The reference walks the rows one at a time, in arrival order, with per-symbol state (time of
the last accepted tick, highest accepted trade id), exactly as the module doc states the rules:
first reason wins in the order unknown_symbol, bad_price, bad_qty, bad_time, duplicate,
out_of_order; a gap is an accepted trade id more than one above the highest accepted one.
Hypothesis then compares the vectorised validator with it over random multi-symbol batch
sequences (state carried from batch to batch).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tripwire.config import load_settings
from tripwire.feeds.validate import TickValidator, TimeWindow
from tripwire.model import NS_PER_SECOND, DeadLetter, DeadReason, SimClock, SymbolTable, TickBatch

NAN, INF = float("nan"), float("inf")

Row = tuple[int, int, float, float, int]  # symbol id, ts, price, qty, trade id


# ----------------------------------------------------------------------------- reference


@dataclass
class Expected:
    accepted: list[int] = field(default_factory=list)  # row indices, arrival order
    dead: list[tuple[int, str]] = field(default_factory=list)  # (row, reason), row order
    gaps: list[tuple[int, int, int]] = field(default_factory=list)  # (symbol, after, before)


class Reference:
    """The validator's rules, one tick at a time."""

    def __init__(self, n_symbols: int) -> None:
        self.n_symbols = n_symbols
        self.last_ts: dict[int, int] = {}
        self.high_tid: dict[int, int] = {}

    def reason(self, sid: int, ts: int, price: float, qty: float, tid: int) -> str | None:
        if not 0 <= sid < self.n_symbols:
            return "unknown_symbol"
        if not math.isfinite(price) or price <= 0:
            return "bad_price"
        if not math.isfinite(qty) or qty < 0:
            return "bad_qty"
        if ts <= 0:
            return "bad_time"
        high = self.high_tid.get(sid, -1)
        if tid >= 0 and high >= 0 and tid <= high:
            return "duplicate"
        if sid in self.last_ts and ts < self.last_ts[sid]:
            return "out_of_order"
        return None

    def run(self, rows: list[Row]) -> Expected:
        out = Expected()
        for i, (sid, ts, price, qty, tid) in enumerate(rows):
            why = self.reason(sid, ts, price, qty, tid)
            if why is not None:
                out.dead.append((i, why))
                continue
            out.accepted.append(i)
            high = self.high_tid.get(sid, -1)
            if tid >= 0:
                if high >= 0 and tid > high + 1:
                    out.gaps.append((sid, high, tid))
                self.high_tid[sid] = tid
            self.last_ts[sid] = ts
        return out


def batch_of(rows: list[Row]) -> TickBatch:
    if not rows:
        return TickBatch.empty()
    sid, ts, price, qty, tid = zip(*rows, strict=True)
    side = [1 if i % 2 else -1 for i in range(len(rows))]
    return TickBatch.from_columns(sid, ts, price, qty, side=side, trade_id=tid, recv_ns=ts)


def split(rows: list[Row], cuts: list[int]) -> list[list[Row]]:
    edges = [0, *sorted(c % (len(rows) + 1) for c in cuts), len(rows)]
    return [rows[a:b] for a, b in itertools.pairwise(edges)]


def check_against_reference(batches: list[list[Row]], n_symbols: int) -> None:
    """Run both over the same batch sequence; every batch must agree, then the counters."""
    v = TickValidator(n_symbols, source="prop", clock=SimClock(99), detect_gaps=True)
    ref = Reference(n_symbols)
    accepted = 0
    dead: dict[str, int] = {}
    gaps = missing = 0
    for rows in batches:
        want = ref.run(rows)
        batch = batch_of(rows)
        got = v.validate(batch, raw=lambda r: f"row {r}")
        expected_ticks = batch.take(np.array(want.accepted, dtype=np.int64))
        for name, col in got.ticks.columns().items():
            assert col.tolist() == getattr(expected_ticks, name).tolist(), (name, rows)
        got_dead = [(int(d.raw.removeprefix("row ")), d.reason.value) for d in got.dead]
        assert got_dead == want.dead, rows
        got_gaps = sorted((g.symbol_id, g.after_trade_id, g.before_trade_id) for g in got.gaps)
        assert got_gaps == sorted(want.gaps), rows
        accepted += len(want.accepted)
        for _, why in want.dead:
            dead[why] = dead.get(why, 0) + 1
        gaps += len(want.gaps)
        missing += sum(b - a - 1 for _, a, b in want.gaps)
    assert v.counters() == {
        "accepted": accepted,
        "dead": dead,
        "gaps": gaps,
        "missing_trade_ids": missing,
    }


# ----------------------------------------------------------------------------- strategies

# Mostly good values, with every kind of bad one (NaN, inf, zero, negative) in reach.
PRICES = st.sampled_from([1.0, 1.0, 1.0, 2.5, 2.5, 1e-300, 0.0, -1.0, NAN, INF, -INF])
QTYS = st.sampled_from([1.0, 1.0, 1.0, 3.0, 0.0, -0.0, -1.0, NAN, INF, -INF])
CUTS = st.lists(st.integers(0, 1000), max_size=4)


@st.composite
def scenario(draw, tids=None):
    n_symbols = draw(st.integers(1, 3))
    tids = st.integers(-1, 8) if tids is None else tids
    row = st.tuples(st.integers(-1, n_symbols), st.integers(-2, 12), PRICES, QTYS, tids)
    rows = draw(st.lists(row, max_size=40))
    return n_symbols, split(rows, draw(CUTS))


@st.composite
def forward_time_scenario(draw):
    """Trade ids >= 0 and times that never go back (bad-time rows aside)."""
    n_symbols = draw(st.integers(1, 3))
    steps = st.tuples(st.integers(-1, n_symbols), st.integers(0, 3), st.booleans(), PRICES, QTYS)
    rows: list[Row] = []
    now = 1
    for sid, step, bad_time, price, qty in draw(st.lists(steps, max_size=40)):
        now += step
        rows.append((sid, draw(st.sampled_from([0, -1])) if bad_time else now, price, qty, 0))
    rows = [(s, t, p, q, draw(st.integers(0, 8))) for s, t, p, q, _ in rows]
    return n_symbols, split(rows, draw(CUTS))


# ----------------------------------------------------------------------------- properties


@given(scenario(tids=st.just(-1)))
def test_matches_reference_on_time_rules_alone(case):
    """Rows without trade ids: only the value checks and out_of_order apply."""
    n_symbols, batches = case
    check_against_reference(batches, n_symbols)


@given(forward_time_scenario())
def test_matches_reference_when_time_never_goes_back(case):
    """Every row has a trade id; repeats and gaps, but no tick older than an accepted one."""
    n_symbols, batches = case
    check_against_reference(batches, n_symbols)


# Regression examples (bugs found by this property in the first vectorised validator).
@given(scenario())
@example((1, [[(0, 10, 1.0, 1.0, 5), (0, 100, 1.0, 1.0, 5), (0, 50, 1.0, 1.0, 6)]]))
@example((1, [[(0, 10, 1.0, 1.0, 5), (0, 11, 1.0, 1.0, -1), (0, 12, 1.0, 1.0, 3)]]))
def test_matches_reference_everywhere(case):
    n_symbols, batches = case
    check_against_reference(batches, n_symbols)


# ----------------------------------------------------------------------------- regressions


def run_rows(batches: list[list[Row]], n_symbols: int = 1):
    v = TickValidator(n_symbols, source="bug", clock=SimClock(1), detect_gaps=True)
    return v, [v.validate(batch_of(rows)) for rows in batches]


def ok_row(ts: int, tid: int, sid: int = 0) -> Row:
    return (sid, ts, 1.0, 1.0, tid)


def test_a_refused_duplicate_does_not_make_the_next_tick_late():
    # Row 1 repeats id 5 (duplicate) with a later time; row 2 (id 6, ts 50) is after the last
    # *accepted* tick (ts 10), so it must be accepted (the first validator compared it with
    # the refused row's ts 100 and called it out_of_order).
    _, (res,) = run_rows([[ok_row(10, 5), ok_row(100, 5), ok_row(50, 6)]])
    assert res.ticks.trade_id.tolist() == [5, 6]
    assert [d.reason for d in res.dead] == [DeadReason.DUPLICATE]


def test_a_refused_late_tick_does_not_make_the_next_id_a_duplicate():
    # Row 1 (id 9, ts 5) is older than the accepted ts 10: out_of_order. Row 2 (id 5, ts 20)
    # is above the highest *accepted* id 1 and later in time: accepted (the first validator
    # compared it with the refused id 9 and called it a duplicate).
    _, (res,) = run_rows([[ok_row(10, 1), ok_row(5, 9), ok_row(20, 5)]])
    assert res.ticks.trade_id.tolist() == [1, 5]
    assert [d.reason for d in res.dead] == [DeadReason.OUT_OF_ORDER]


def test_a_row_without_trade_id_does_not_reset_the_duplicate_check_in_a_batch():
    # id 3 after an accepted id 5 is a duplicate, whatever id-less row came in between.
    _, (res,) = run_rows([[ok_row(10, 5), ok_row(11, -1), ok_row(12, 3)]])
    assert res.ticks.trade_id.tolist() == [5, -1]
    assert [d.reason for d in res.dead] == [DeadReason.DUPLICATE]


def test_a_row_without_trade_id_does_not_reset_the_duplicate_check_across_batches():
    # The first batch ends with an id-less row; the highest accepted id (5) must still be
    # remembered, so the replayed id 3 in the next batch is a duplicate.
    v, (_, res) = run_rows([[ok_row(10, 5), ok_row(11, -1)], [ok_row(12, 3)]])
    assert v.last_trade_id(0) == 5
    assert [d.reason for d in res.dead] == [DeadReason.DUPLICATE]


def test_a_gap_is_measured_from_the_highest_accepted_id():
    # Ids 6, 7, 8 are missing between 5 and 9; the id-less row between them hides the gap.
    v, (res,) = run_rows([[ok_row(10, 5), ok_row(11, -1), ok_row(12, 9)]])
    assert [(g.after_trade_id, g.before_trade_id) for g in res.gaps] == [(5, 9)]
    assert v.counters()["missing_trade_ids"] == 3


# ----------------------------------------------------------------------------- boundaries


def one(sid=0, ts=5, price=1.0, qty=1.0, tid=-1, n_symbols=2, **kw):
    v = TickValidator(n_symbols, source="edge", clock=SimClock(42), **kw)
    return v, v.validate(batch_of([(sid, ts, price, qty, tid)]))


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"price": 0.0}, "bad_price"),
        ({"price": -0.0}, "bad_price"),
        ({"price": 5e-324}, None),  # the smallest positive double is still a price
        ({"qty": 0.0}, None),
        ({"qty": -0.0}, None),
        ({"qty": -5e-324}, "bad_qty"),
        ({"ts": 0}, "bad_time"),
        ({"ts": -1}, "bad_time"),
        ({"ts": 1}, None),
        ({"sid": 2}, "unknown_symbol"),  # == n_symbols
        ({"sid": 1}, None),
        ({"sid": -1}, "unknown_symbol"),
        ({"tid": 0}, None),
    ],
)
def test_value_boundaries(row, reason):
    _, res = one(**row)
    assert [d.reason.value for d in res.dead] == ([reason] if reason else [])
    assert len(res.ticks) == (0 if reason else 1)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"sid": 9, "price": NAN, "qty": NAN, "ts": 0}, "unknown_symbol"),
        ({"price": INF, "qty": NAN, "ts": 0}, "bad_price"),
        ({"qty": -INF, "ts": 0}, "bad_qty"),
    ],
)
def test_the_first_reason_that_fits_wins(row, reason):
    _, res = one(**row)
    assert [d.reason.value for d in res.dead] == [reason]


def test_value_checks_come_before_order_checks():
    v = TickValidator(1, source="edge", clock=SimClock(0))
    v.validate(batch_of([ok_row(10, 5)]))
    res = v.validate(batch_of([(0, 5, NAN, 1.0, 5)]))  # also a duplicate and late
    assert [d.reason for d in res.dead] == [DeadReason.BAD_PRICE]


def test_equal_time_is_in_order_and_equal_trade_id_is_a_duplicate():
    _, (res,) = run_rows([[ok_row(10, 1), ok_row(10, 2), ok_row(10, 2), ok_row(9, -1)]])
    assert res.ticks.trade_id.tolist() == [1, 2]
    assert [d.reason.value for d in res.dead] == ["duplicate", "out_of_order"]


def test_empty_batch_changes_nothing():
    v = TickValidator(1, source="edge", clock=SimClock(0), detect_gaps=True)
    res = v.validate(TickBatch.empty())
    assert len(res.ticks) == 0 and res.dead == [] and res.gaps == []
    assert v.counters() == {"accepted": 0, "dead": {}, "gaps": 0, "missing_trade_ids": 0}


def test_state_carries_across_batches_per_symbol():
    v, results = run_rows(
        [[ok_row(10, 5, 0), ok_row(10, 5, 1)], [ok_row(11, 5, 0), ok_row(9, 6, 1)]], n_symbols=2
    )
    assert [d.reason.value for d in results[1].dead] == ["duplicate", "out_of_order"]
    assert v.last_trade_id(0) == v.last_trade_id(1) == 5
    assert v.last_trade_id(7) == -1


def test_accepted_rows_keep_arrival_order_across_symbols():
    rows = [ok_row(3, 1, 1), ok_row(1, 1, 0), ok_row(4, 2, 1), ok_row(2, 2, 0)]
    _, (res,) = run_rows([rows], n_symbols=2)
    assert res.ticks.symbol_id.tolist() == [1, 0, 1, 0]
    assert res.ticks.ts_ns.tolist() == [3, 1, 4, 2]


def test_symbols_added_to_the_table_later_are_known():
    table = SymbolTable(["A"])
    v = TickValidator(symbols=table, source="edge", clock=SimClock(0))
    assert [d.reason.value for d in v.validate(batch_of([ok_row(1, 1, 1)])).dead] == [
        "unknown_symbol"
    ]
    table.add("B")
    res = v.validate(batch_of([ok_row(1, 1, 1)]))
    assert len(res.ticks) == 1 and res.dead == []


def test_raw_payload_as_list_as_callable_and_by_default():
    rows = [ok_row(5, 1), (0, 6, -1.0, 1.0, 2)]
    for raw, want in [
        (["first", "second"], "second"),
        (lambda r: f"line {r}", "line 1"),
    ]:
        v = TickValidator(1, source="edge", clock=SimClock(0))
        (letter,) = v.validate(batch_of(rows), raw=raw).dead
        assert letter.raw == want
    v = TickValidator(1, source="edge", clock=SimClock(0))
    (letter,) = v.validate(batch_of(rows)).dead
    assert letter.raw == "symbol_id=0,ts_ns=6,price=-1.0,qty=1.0,side=1,trade_id=2,recv_ns=6"


def test_raw_payload_is_truncated():
    v = TickValidator(1, source="edge", clock=SimClock(0))
    (letter,) = v.validate(batch_of([(0, 6, -1.0, 1.0, 2)]), raw=["x" * 10_000]).dead
    assert letter.raw == "x" * DeadLetter.MAX_RAW_CHARS


def test_dead_letter_fields_and_detail_text():
    table = SymbolTable(["BTCUSDT", "ETHUSDT"])
    v = TickValidator(symbols=table, source="binance-ws", clock=SimClock(777))
    v.validate(batch_of([ok_row(10, 5, 1)]))
    rows = [
        (5, 1, 1.0, 1.0, -1),
        (0, 1, NAN, 1.0, -1),
        (0, 1, 1.0, -2.5, -1),
        (0, -3, 1.0, 1.0, -1),
        (1, 11, 1.0, 1.0, 5),
        (1, 9, 1.0, 1.0, 6),
    ]
    dead = v.validate(batch_of(rows)).dead
    assert [(d.reason.value, d.symbol, d.detail) for d in dead] == [
        ("unknown_symbol", None, "symbol_id=5 not in a table of 2"),
        ("bad_price", "BTCUSDT", "price=nan"),
        ("bad_qty", "BTCUSDT", "qty=-2.5"),
        ("bad_time", "BTCUSDT", "ts_ns=-3"),
        ("duplicate", "ETHUSDT", "trade_id=5 is not above an accepted trade id"),
        ("out_of_order", "ETHUSDT", "ts_ns=9 is behind an accepted tick of the symbol"),
    ]
    assert {d.source for d in dead} == {"binance-ws"} and {d.ts_ns for d in dead} == {777}


def test_gaps_and_counters():
    clock = SimClock(5)
    v = TickValidator(2, source="gaps", clock=clock, detect_gaps=True)
    first = v.validate(batch_of([ok_row(1, 1, 0), ok_row(2, 4, 0), ok_row(1, 10, 1)]))
    assert [(g.symbol_id, g.after_trade_id, g.before_trade_id, g.missing) for g in first.gaps] == [
        (0, 1, 4, 2)
    ]
    clock.advance(10)
    second = v.validate(batch_of([ok_row(3, 5, 0), ok_row(2, 20, 1), ok_row(3, 20, 1)]))
    assert [(g.after_trade_id, g.before_trade_id, g.detected_ns) for g in second.gaps] == [
        (10, 20, 15)
    ]
    v.count_dead("malformed", 2)
    v.count_dead(DeadReason.SHED)
    assert v.counters() == {
        "accepted": 5,
        "dead": {"malformed": 2, "shed": 1, "duplicate": 1},
        "gaps": 2,
        "missing_trade_ids": 11,
    }


def test_gaps_are_not_reported_unless_asked():
    v, _ = one(tid=1, n_symbols=1)
    assert v.validate(batch_of([ok_row(9, 7)])).gaps == []
    assert v.counters()["gaps"] == 0


def test_n_symbols_is_the_larger_of_the_count_and_the_table():
    assert TickValidator(3, source="x", symbols=SymbolTable(["A"])).n_symbols == 3
    assert TickValidator(0, source="x", symbols=SymbolTable(["A", "B"])).n_symbols == 2


# ----------------------------------------------------------------------------- time window

S = NS_PER_SECOND
NOW = 1_767_571_200 * S  # 2026-01-05, the wall clock of the live tests
Y2100 = 4_102_444_800 * S  # 2100-01-01T00:00Z


def live(**kw) -> TickValidator:
    return TickValidator(2, source="live", clock=SimClock(NOW),
                         window=TimeWindow(market=False, **kw))


def test_live_a_tick_from_2100_is_bad_time_and_never_blocks_the_next_good_ticks():
    """Issue 13 finding 1: the 2100 tick was accepted and every later tick was late."""
    v = live()
    v.validate(batch_of([(0, NOW - S, 1.0, 1.0, 1)]))
    res = v.validate(batch_of([(0, Y2100, 1.0, 1.0, 2)]))
    assert [d.reason for d in res.dead] == [DeadReason.BAD_TIME] and len(res.ticks) == 0
    assert "ahead of the wall clock" in res.dead[0].detail
    later = v.validate(batch_of([(0, NOW, 0.9, 1.0, 3), (0, NOW + 1, 0.9, 1.0, 4)]))
    assert later.dead == [] and later.ticks.ts_ns.tolist() == [NOW, NOW + 1]
    assert v.counters()["dead"] == {"bad_time": 1}
    assert v.time_stats()["ahead"] == 1


def test_live_bounds_are_inclusive_at_the_skew_and_the_age():
    v = live(max_future_skew_ns=5 * S, max_age_ns=60 * S)
    rows = [(0, NOW + 5 * S, 1.0, 1.0, -1), (1, NOW - 60 * S, 1.0, 1.0, -1),
            (0, NOW + 5 * S + 1, 1.0, 1.0, -1), (1, NOW - 60 * S - 1, 1.0, 1.0, -1)]
    res = v.validate(batch_of(rows))
    assert res.ticks.ts_ns.tolist() == [NOW + 5 * S, NOW - 60 * S]
    assert [d.reason.value for d in res.dead] == ["bad_time", "bad_time"]
    assert v.time_stats() == {"ahead": 1, "behind": 1, "chain_capped": 0,
                              "market_clock_ns": NOW + 5 * S}


def market(**kw) -> TickValidator:
    return TickValidator(2, source="replay", clock=SimClock(0),
                         window=TimeWindow(market=True, market_max_skew_ns=60 * S, **kw))


def test_market_one_outlier_in_a_batch_cannot_move_the_clock():
    v = market()
    rows = [(0, NOW + i * S, 1.0, 1.0, -1) for i in range(5)]
    rows.insert(2, (1, Y2100, 1.0, 1.0, -1))
    res = v.validate(batch_of(rows))
    assert [d.reason.value for d in res.dead] == ["bad_time"] and len(res.ticks) == 5
    assert v.market_clock_ns == NOW + 4 * S
    # Symbol 1 was not blocked by its absurd tick.
    assert len(v.validate(batch_of([(1, NOW + 5 * S, 1.0, 1.0, -1)])).ticks) == 1


def test_market_a_lone_outlier_in_its_own_batch_is_bad_time():
    v = market()
    v.validate(batch_of([(0, NOW, 1.0, 1.0, -1), (0, NOW + S, 1.0, 1.0, -1)]))
    res = v.validate(batch_of([(0, Y2100, 1.0, 1.0, -1)]))
    assert [d.reason.value for d in res.dead] == ["bad_time"]
    assert "ahead of the market clock" in res.dead[0].detail
    assert v.market_clock_ns == NOW + S
    # at the skew exactly is fine, one ns past it is not
    edge = v.validate(batch_of([(0, NOW + 61 * S, 1.0, 1.0, -1)]))
    assert len(edge.ticks) == 1
    assert v.validate(batch_of([(0, NOW + 121 * S + 1, 1.0, 1.0, -1)])).dead[0].reason.value \
        == "bad_time"


def test_market_a_genuine_jump_is_followed_once_a_batch_agrees_on_it():
    v = market()
    v.validate(batch_of([(0, NOW, 1.0, 1.0, -1)]))
    later = NOW + 3_600 * S  # the replay restarts an hour on
    res = v.validate(batch_of([(0, later, 1.0, 1.0, -1), (1, later + S, 1.0, 1.0, -1)]))
    assert res.dead == [] and v.market_clock_ns == later + S


def test_market_the_sources_period_bounds_the_first_batch_too():
    v = market(start_ns=NOW, end_ns=NOW + 3_600 * S)
    res = v.validate(batch_of([(0, Y2100, 1.0, 1.0, -1)]))
    assert [d.reason.value for d in res.dead] == ["bad_time"]
    assert "after the source's end" in res.dead[0].detail
    assert v.validate(batch_of([(0, NOW - 1, 1.0, 1.0, -1)])).dead[0].detail.endswith(
        "(before the source's start)")
    assert v.market_clock_ns is None  # nothing accepted: no clock yet


def test_a_headlines_time_is_judged_against_the_feeds_clock():
    v = live()
    assert v.time_refusal(NOW) is None
    assert "ahead of the wall clock" in v.time_refusal(Y2100)
    m = market()
    assert m.time_refusal(Y2100) is None  # no market clock yet: nothing to judge against
    m.validate(batch_of([(0, NOW, 1.0, 1.0, -1)]))
    assert m.time_refusal(NOW + 60 * S) is None
    assert m.time_refusal(Y2100) is not None


def test_time_settings_come_from_the_config_with_errors_naming_the_key():
    s = load_settings(env={"TRIPWIRE_TIME__MAX_FUTURE_SKEW_S": "2.5"})
    w = TimeWindow.from_settings(s.time, market=False)
    assert (w.max_future_skew_ns, w.max_age_ns) == (2_500_000_000, 86_400 * S)
    with pytest.raises(ValueError, match=r"time\.max_age_s must be .* \(from TRIPWIRE_TIME"):
        load_settings(env={"TRIPWIRE_TIME__MAX_AGE_S": "-1"})
    with pytest.raises(ValueError, match=r"time\.skew is not a known key of \[time\]"):
        load_settings(env={"TRIPWIRE_TIME__SKEW": "1"})
