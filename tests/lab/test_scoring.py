"""Triage scoring against labelled events, and the path figures of a fill log."""

import pytest

from tripwire.lab.markets import LabEvent
from tripwire.lab.metrics import path_metrics
from tripwire.lab.triage import score_seed
from tripwire.model import EventKind, EventLabel

S = 1_000_000_000


def _ev(i, kind, sym, start_s, end_s, size=0.01):
    return LabEvent(EventLabel(f"e{i}", kind, sym, start_s * S, end_s * S), size)


EVENTS = [
    _ev(1, EventKind.FAT_FINGER, "A", 100, 101),
    _ev(2, EventKind.NEWS_SHOCK, "A", 1_000, 1_200, 0.05),
    _ev(3, EventKind.PUMP_AND_DUMP, "B", 500, 900),
]


def _row(sym, t_s, verdict, outcome="HOLD"):
    return {"symbol": sym, "ts_ns": t_s * S, "verdict": verdict, "outcome": outcome}


def test_incidents_are_matched_to_events_and_scored():
    rows = [
        _row("A", 100, "DATA_ERROR"),  # fat finger, right
        _row("A", 1_300, "NEWS_DRIVEN"),  # within 300 s after the news shock: right
        _row("B", 600, "LIQUIDATION_CASCADE"),  # the pump: wrong
        _row("B", 5_000, "TECHNICAL_SPIKE"),  # no event: strict wrong, lenient right
        _row("A", 9_000, None, "TRIAGE_FAILED"),  # no event, no verdict
        _row("A", 9_500, None, "COALESCED"),  # never triaged: not counted
    ]
    s = score_seed(rows, EVENTS)
    assert s["incidents"] == 5
    c = s["confusion"]
    assert c["DATA_ERROR"]["DATA_ERROR"] == 1 and c["NEWS_DRIVEN"]["NEWS_DRIVEN"] == 1
    assert c["MANIPULATION"]["LIQUIDATION_CASCADE"] == 1
    assert c["IGNORE"]["TECHNICAL_SPIKE"] == 1 and c["IGNORE"]["NO_VERDICT"] == 1
    pc = s["per_class"]
    assert pc["DATA_ERROR"]["precision"] == 1.0 and pc["MANIPULATION"]["recall"] == 0.0
    # truth classes: DATA_ERROR (F1 1), NEWS_DRIVEN (1), MANIPULATION (0), IGNORE (0)
    assert s["macro_f1"] == pytest.approx(0.5)
    # leniently the no-event TECHNICAL_SPIKE is right: IGNORE recall 1/2, precision 1
    assert s["macro_f1_lenient"] == pytest.approx((1 + 1 + 0 + 2 / 3) / 4)
    assert s["share"]["NO_VERDICT"] == pytest.approx(0.2)
    ev = {e["kind"]: e for e in s["events"]}
    assert ev["fat_finger"]["classified"] and not ev["pump_and_dump"]["classified"]
    assert ev["pump_and_dump"]["detected"]


def test_path_metrics_of_a_round_trip():
    fills = [
        {"ts_ns": 0, "symbol": "A", "side": 1, "qty": 1.0, "price": 100.0, "fee": 0.1},
        {"ts_ns": 50 * S, "symbol": "A", "side": -1, "qty": 1.0, "price": 90.0, "fee": 0.1},
        {"ts_ns": 60 * S, "symbol": "A", "side": -1, "qty": 1.0, "price": 90.0, "fee": 0.1},
        {"ts_ns": 70 * S, "symbol": "A", "side": 1, "qty": 1.0, "price": 80.0, "fee": 0.1},
    ]
    m = path_metrics(fills, cash=1_000.0, start_ns=0, end_ns=100 * S, n_symbols=2,
                     final_pnl=-0.4)
    assert m["hit_rate"] == 0.5  # lost 10 long, made 10 short
    assert m["turnover"] == pytest.approx(360 / 1_000)
    assert m["exposure_time"] == pytest.approx(60 / 200)
    assert m["max_drawdown"] == pytest.approx(10.3 / 1_000)  # 10 lost + 3 fees before the win
    assert m["equity"][-1] == [100 * S, -0.4]
