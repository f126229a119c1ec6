"""Detectors: exact rolling z-scores in C++ (tripwire._native), and a NumPy reference.

``RollingStats`` is one window; ``DetectorBank`` holds the return/volume/price detectors of
many symbols. Conventions shared by both:

* z of a value is taken against the window *before* it enters, so a spike is not diluted
  by itself;
* fewer than ``min_periods`` values -> z is NaN, and NaN never trips;
* a window with zero variance -> z is 0 (a flat series cannot be surprised, by definition
  here; the first move out of a perfectly flat window therefore does not trip);
* rejected inputs leave the window untouched and are counted.

Exactness: z agrees with an exact two-pass over the same window within ~1e-9 (see
rolling.hpp for how), where the textbook sum/sum-of-squares update is off by ~0.3.

>>> from tripwire.detect import RollingStats
>>> rs = RollingStats(window=3, min_periods=2)
>>> [round(rs.push(x), 3) for x in (1.0, 2.0, 3.0, 10.0)]
[nan, nan, 2.121, 8.0]
>>> rs.count, rs.mean, rs.std
(3, 5.0, 4.358898943540674)
>>> rs.update(float("nan")).rejected   # river-style update returns the object
1
"""

from tripwire._native_loader import load as _load
from tripwire.detect import reference
from tripwire.detect.bank import BatchResult, DetectorBank, RecentTicks
from tripwire.detect.config import DetectorConfig, MetricConfig
from tripwire.model import Metric, RejectReason, Trips

_native = _load()
RollingStats = _native.RollingStats

__all__ = [
    "BatchResult",
    "DetectorBank",
    "DetectorConfig",
    "Metric",
    "MetricConfig",
    "RecentTicks",
    "RejectReason",
    "RollingStats",
    "Trips",
    "reference",
]
