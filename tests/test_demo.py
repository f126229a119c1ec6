"""tripwire.demo: the detectors-only demo on the scenario generator."""

import pytest

from tripwire import demo
from tripwire.detect import DetectorConfig
from tripwire.model import EventKind


@pytest.fixture(scope="module")
def run():
    return demo.run(demo.market(seed=None, symbols=6, hours=12), DetectorConfig())


def test_every_label_gets_one_row_in_time_order(run):
    rows = demo.events(run)
    assert len(rows) == len(run.market.labels) > 0
    assert [r["at_h"] for r in rows] == sorted(r["at_h"] for r in rows)


def test_a_slow_trend_is_never_a_detection_and_a_missed_event_says_no(run):
    rows = demo.events(run)
    missed = {(lab.kind.value, lab.symbol) for lab in run.report.missed}
    for r in rows:
        if r["event"] == EventKind.SLOW_TREND.value:
            assert r["detected"] is None
        else:
            assert r["detected"] is ((r["event"], r["symbol"]) not in missed)


def test_the_summary_counts_what_the_bank_saw(run):
    s = demo.summary(run)
    assert s["ticks"] == run.ticks and s["symbols"] == 6
    assert s["alarms"] == s["false_alarms"] + run.report.true_alarms
    assert s["scenario"]["scenario"] == "default"


@pytest.mark.parametrize(("kw", "named"), [({"symbols": 0}, "--symbols"),
                                           ({"hours": 0.0}, "--hours")])
def test_bad_sizes_are_refused_naming_the_argument(kw, named):
    with pytest.raises(ValueError, match=named):
        demo.market(seed=None, **{"symbols": None, "hours": None, **kw})
