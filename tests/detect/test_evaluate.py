"""Detection-quality arithmetic on small hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from tripwire.detect.evaluate import (
    DEFAULT_TOLERANCE_NS,
    TABLE_COLUMNS,
    TripColumns,
    alarms,
    evaluate,
)
from tripwire.model import EventKind, EventLabel, Metric, SymbolTable, Trips

S = 1_000_000_000
DAY = 86_400 * S
TOL = DEFAULT_TOLERANCE_NS
SYMBOLS = SymbolTable(["BTCUSDT", "ETHUSDT", "SOLUSDT"])
R, V, P = int(Metric.RETURN), int(Metric.VOLUME), int(Metric.PRICE)


def label(kind: EventKind, symbol: str, start_s: float, end_s: float, id_: str = "x") -> EventLabel:
    return EventLabel(id_, kind, symbol, round(start_s * S), round(end_s * S))


def trips(*rows: tuple[int, int, int]) -> TripColumns:
    """Rows of (ts_ns, symbol_id, metric)."""
    ts, sym, met = zip(*rows, strict=True) if rows else ((), (), ())
    return TripColumns(ts_ns=ts, symbol_id=sym, metric=met)


def run(t, labels, **kw):
    return evaluate(t, labels, SYMBOLS, duration_ns=kw.pop("duration_ns", DAY), **kw)


CRASH = label(EventKind.FLASH_CRASH, "ETHUSDT", 1_000, 1_100)


@pytest.mark.parametrize(
    ("ts_ns", "detected"),
    [
        (1_000 * S - 1, False),  # just before the start
        (1_000 * S, True),  # the start itself
        (1_050 * S, True),
        (1_100 * S + TOL, True),  # the last instant of the tolerance
        (1_100 * S + TOL + 1, False),  # one ns too late
    ],
)
def test_the_window_is_start_to_end_plus_tolerance_inclusive(ts_ns, detected):
    r = run(trips((ts_ns, 1, R)), [CRASH])
    assert r.recall == {"flash_crash": 1.0 if detected else 0.0}
    assert r.true_alarms == int(detected) and r.false_alarms == int(not detected)
    assert r.missed == (() if detected else (CRASH,))


def test_a_trip_of_another_symbol_does_not_detect_the_event():
    r = run(trips((1_050 * S, 0, R)), [CRASH])
    assert r.recall["flash_crash"] == 0.0 and r.false_alarms == 1


def test_the_tolerance_is_configurable():
    late = trips((1_100 * S + 10 * S, 1, P))
    assert run(late, [CRASH], tolerance_ns=5 * S).recall["flash_crash"] == 0.0
    assert run(late, [CRASH], tolerance_ns=10 * S).recall["flash_crash"] == 1.0


def test_a_fat_finger_is_one_instant_and_a_trip_on_that_tick_detects_it():
    ff = label(EventKind.FAT_FINGER, "BTCUSDT", 500, 500)
    assert run(trips((500 * S, 0, R)), [ff]).recall == {"fat_finger": 1.0}
    assert run(trips((500 * S - 1, 0, R)), [ff]).recall == {"fat_finger": 0.0}


def test_a_trip_on_the_first_trade_after_an_outage_detects_it():
    outage = label(EventKind.OUTAGE, "SOLUSDT", 2_000, 2_300)
    after = trips((2_300 * S + 2 * S, 2, R))  # no trades inside the outage: the next one trips
    r = run(after, [outage])
    assert r.recall == {"outage": 1.0} and r.precision == 1.0


def test_slow_trend_trips_are_false_alarms_never_detections():
    trend = label(EventKind.SLOW_TREND, "BTCUSDT", 10_000, 20_000)
    t = trips(
        (12_000 * S, 0, R),  # a return trip on the trend: the failure counted on its own
        (15_000 * S, 0, P),  # a price trip on the trend: false, but not a return trip
        (15_000 * S, 0, V),
    )
    r = run(t, [trend, CRASH])
    assert r.slow_trend_trips == 1
    assert r.alarms == 2 and r.true_alarms == 0 and r.false_alarms == 2
    assert r.precision == 0.0
    assert "slow_trend" not in r.recall and r.events["slow_trend"] == 1
    assert r.detected["slow_trend"] == 1  # "tripped", shown as such in the table
    row = next(row for row in r.table() if row[0] == "slow_trend")
    assert row[2] == "1 tripped"


def test_a_slow_trend_window_does_not_excuse_an_alarm_that_another_event_would():
    # Events of one symbol never overlap in a scenario, but the rule must hold regardless.
    trend = label(EventKind.SLOW_TREND, "ETHUSDT", 0, 5_000)
    r = run(trips((1_050 * S, 1, R)), [trend, CRASH])
    assert r.recall["flash_crash"] == 1.0  # the crash saw it...
    assert r.true_alarms == 0 and r.slow_trend_trips == 1  # ...but it counts as a failure


def test_several_metrics_of_one_tick_are_one_alarm():
    t = trips((1_050 * S, 1, R), (1_050 * S, 1, P), (1_050 * S, 1, V), (9_000 * S, 1, V))
    r = run(t, [CRASH])
    assert r.alarms == 2 and r.true_alarms == 1 and r.false_alarms == 1
    assert r.precision == 0.5


def test_alarms_dedupe_and_keep_whether_a_return_metric_tripped():
    ts, sym, has_return = alarms(trips((7, 2, V), (5, 1, P), (5, 1, R), (7, 2, P)))
    assert ts.tolist() == [5, 7] and sym.tolist() == [1, 2]
    assert has_return.tolist() == [True, False]


def test_precision_and_false_trips_per_symbol_day_arithmetic():
    labels = [CRASH, label(EventKind.NEWS_SHOCK, "BTCUSDT", 40_000, 40_600)]
    t = trips(
        (1_020 * S, 1, R),
        (40_010 * S, 0, R),
        (41_000 * S, 0, P),  # outside every window: false
        (70_000 * S, 2, V),  # false
        (90_000 * S, 2, R),  # false (day two)
    )
    r = run(t, labels, duration_ns=2 * DAY)
    assert r.recall == {"flash_crash": 1.0, "news_shock": 1.0}
    assert (r.alarms, r.true_alarms, r.false_alarms) == (5, 2, 3)
    assert r.precision == pytest.approx(2 / 5)
    assert r.false_trips_per_symbol_day == pytest.approx(3 / (3 * 2))  # 3 symbols x 2 days
    explicit = run(t, labels, duration_ns=2 * DAY, n_symbols=10)
    assert explicit.false_trips_per_symbol_day == pytest.approx(3 / (10 * 2))


def test_recall_per_kind_counts_each_event_once():
    labels = [
        label(EventKind.FLASH_CRASH, "BTCUSDT", 100, 200, "a"),
        label(EventKind.FLASH_CRASH, "ETHUSDT", 100, 200, "b"),
        label(EventKind.FLASH_CRASH, "SOLUSDT", 100, 200, "c"),
        label(EventKind.VOLUME_BURST, "BTCUSDT", 10_000, 10_100, "d"),
    ]
    t = trips((150 * S, 0, R), (160 * S, 0, P), (170 * S, 1, P))  # two hits on one event
    r = run(t, labels)
    assert r.recall == {"flash_crash": pytest.approx(2 / 3), "volume_burst": 0.0}
    assert r.events == {"flash_crash": 3, "volume_burst": 1}
    assert r.detected == {"flash_crash": 2, "volume_burst": 0}
    assert [m.id for m in r.missed] == ["c", "d"]


def test_no_trips_means_no_detections_and_perfect_precision():
    r = run(trips(), [CRASH])
    assert r.recall == {"flash_crash": 0.0}
    assert r.precision == 1.0 and r.false_trips_per_symbol_day == 0.0 and r.alarms == 0


def test_to_json_has_exactly_the_headline_figures():
    r = run(trips((1_050 * S, 1, R)), [CRASH])
    assert r.to_json() == {
        "recall": {"flash_crash": 1.0},
        "precision": 1.0,
        "false_trips_per_symbol_day": 0.0,
        "slow_trend_trips": 0,
    }


def test_table_rows_fit_the_columns():
    trend = label(EventKind.SLOW_TREND, "BTCUSDT", 10_000, 20_000)
    rows = run(trips((1_050 * S, 1, R)), [CRASH, trend]).table()
    assert all(len(row) == len(TABLE_COLUMNS) for row in rows)
    assert all(isinstance(cell, str) for row in rows for cell in row)
    assert [row[0] for row in rows][:2] == ["flash_crash", "slow_trend"]
    assert rows[0] == ("flash_crash", "1", "1", "1.00")


def test_a_trips_object_from_the_detectors_is_accepted():
    t = Trips(
        row=np.array([3, 3], np.int64),
        ts_ns=np.array([1_050 * S, 1_050 * S], np.int64),
        symbol_id=np.array([1, 1], np.int32),
        metric=np.array([R, P], np.int8),
        z=np.array([12.0, 9.0]),
        mean=np.zeros(2),
        std=np.ones(2),
        value=np.zeros(2),
    )
    r = run(t, [CRASH])
    assert r.alarms == 1 and r.recall == {"flash_crash": 1.0}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="duration_ns > 0"):
        run(trips(), [CRASH], duration_ns=0)
    with pytest.raises(ValueError, match="tolerance_ns >= 0"):
        run(trips(), [CRASH], tolerance_ns=-1)
    with pytest.raises(KeyError, match="DOGEUSDT"):
        run(trips(), [label(EventKind.FLASH_CRASH, "DOGEUSDT", 1, 2)])
    with pytest.raises(ValueError, match="differ in length"):
        TripColumns(ts_ns=[1, 2], symbol_id=[0], metric=[0])
