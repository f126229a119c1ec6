"""The demo's event matching."""

import numpy as np

from tripwire import demo
from tripwire.model import Metric, Trips


def _trips(rows, symbols, ts, metrics):
    n = len(rows)
    return Trips(
        row=np.array(rows, np.int64), ts_ns=np.array(ts, np.int64),
        symbol_id=np.array(symbols, np.int32), metric=np.array(metrics, np.int8),
        z=np.full(n, 9.0), mean=np.zeros(n), std=np.ones(n), value=np.zeros(n),
    )


def test_unlabelled_counts_ticks_not_rows_across_batches():
    # Two batches' trips share row 5 (rows restart per batch); one tick trips two metrics.
    first = _trips([5, 5], [0, 0], [100, 100], [Metric.RETURN, Metric.PRICE])
    second = _trips([5], [1], [900], [Metric.VOLUME])
    trips = Trips.concat([first, second])
    assert demo.unlabelled((), trips) == 2
    event = demo.Event("flash_crash", 0, 50, 150)
    assert demo.unlabelled((event,), trips) == 1
    assert demo.match((event,), trips)[0]["metrics"] == ["price", "return"]
