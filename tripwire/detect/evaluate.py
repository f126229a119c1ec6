"""Detection quality: a run's trips scored against a scenario's labelled events.

Pure functions over columns; nothing here runs a detector. The rules:

* **Alarm.** A tripping tick is one alarm: the rows of one (symbol, ts) count once, because
  one tick can trip several metrics at the same moment.
* **Event window.** ``[start_ns, end_ns + tolerance_ns]`` on the event's symbol. The
  tolerance (default :data:`DEFAULT_TOLERANCE_NS`, 60 s) exists because a detector only
  sees an event through the trades that follow it: a fat finger is a single tick
  (``start == end``); an outage has no trades at all inside its label, so the first trade
  after it ends, which shows the move the market made meanwhile, is where it is detected.
* **Detected.** An event is detected when any alarm of its symbol falls in its window.
* **Slow trends.** A slow trend is labelled, but it is what detectors must *not* react to:
  every alarm inside a slow-trend window is a false alarm and is never a detection.
  ``slow_trend_trips`` counts those alarms that have a RETURN row (the failure the return
  detector is designed to avoid); slow trends have no recall.
* **Precision** is true alarms (inside the window of a non-slow-trend event) over all
  alarms, 1.0 when there is no alarm at all. **False trips per symbol-day** is the other
  alarms over ``n_symbols * days``.

>>> from tripwire.model import EventKind, EventLabel, SymbolTable
>>> s = 1_000_000_000
>>> labels = [EventLabel("a", EventKind.FLASH_CRASH, "BTCUSDT", 100 * s, 160 * s)]
>>> trips = TripColumns(ts_ns=[150 * s, 500 * s], symbol_id=[0, 0], metric=[0, 2])
>>> r = evaluate(trips, labels, SymbolTable(["BTCUSDT"]), duration_ns=86_400 * s)
>>> r.to_json()
{'recall': {'flash_crash': 1.0}, 'precision': 0.5, 'false_trips_per_symbol_day': 1.0, \
'slow_trend_trips': 0}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tripwire.model import NS_PER_SECOND, EventKind, EventLabel, Metric, SymbolTable

DEFAULT_TOLERANCE_NS = 60 * NS_PER_SECOND
NS_PER_DAY = 86_400 * NS_PER_SECOND
TABLE_COLUMNS = ("measure", "events", "detected", "value")


class TripLike(Protocol):
    """What evaluation reads from trips (a :class:`tripwire.model.Trips` has it)."""

    ts_ns: np.ndarray
    symbol_id: np.ndarray
    metric: np.ndarray


@dataclass(frozen=True, slots=True)
class TripColumns:
    """Trip columns from any sequences (e.g. gathered from several shards)."""

    ts_ns: np.ndarray
    symbol_id: np.ndarray
    metric: np.ndarray

    def __post_init__(self) -> None:
        cols = {
            "ts_ns": np.asarray(self.ts_ns, dtype=np.int64),
            "symbol_id": np.asarray(self.symbol_id, dtype=np.int64),
            "metric": np.asarray(self.metric, dtype=np.int64),
        }
        if len({len(c) for c in cols.values()}) > 1:
            raise ValueError(f"trip columns differ in length: {[len(c) for c in cols.values()]}")
        for name, col in cols.items():
            object.__setattr__(self, name, col)


@dataclass(frozen=True, slots=True)
class EvalReport:
    """How well a run's trips match the labels (see the module docstring for the rules)."""

    recall: dict[str, float]  # per detectable kind present: detected / events
    events: dict[str, int]  # per kind present (slow trends included)
    detected: dict[str, int]  # per kind present; for slow trends: the ones that tripped
    precision: float
    false_trips_per_symbol_day: float
    slow_trend_trips: int
    alarms: int
    true_alarms: int
    false_alarms: int
    n_symbols: int
    days: float
    tolerance_ns: int
    missed: tuple[EventLabel, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The headline figures, JSON-ready."""
        return {
            "recall": dict(self.recall),
            "precision": self.precision,
            "false_trips_per_symbol_day": self.false_trips_per_symbol_day,
            "slow_trend_trips": self.slow_trend_trips,
        }

    def table(self) -> list[tuple[str, str, str, str]]:
        """Rows under :data:`TABLE_COLUMNS` (measure, events, detected, value), as text."""
        rows = []
        for kind, n in self.events.items():
            if kind == EventKind.SLOW_TREND.value:
                rows.append((kind, str(n), f"{self.detected[kind]} tripped", "(must not trip)"))
            else:
                rows.append((kind, str(n), str(self.detected[kind]), f"{self.recall[kind]:.2f}"))
        rows += [
            ("precision", "", f"{self.true_alarms}/{self.alarms} alarms", f"{self.precision:.3f}"),
            (
                "false trips / symbol-day",
                "",
                f"{self.false_alarms} over {self.n_symbols} x {self.days:.2f} d",
                f"{self.false_trips_per_symbol_day:.3f}",
            ),
            ("slow-trend return trips", "", "", str(self.slow_trend_trips)),
        ]
        return rows


def alarms(trips: TripLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per tripping tick: (ts_ns, symbol_id, has a RETURN row), sorted by symbol, ts.

    >>> a = alarms(TripColumns(ts_ns=[5, 5, 3], symbol_id=[1, 1, 1], metric=[1, 0, 2]))
    >>> [x.tolist() for x in a]
    [[3, 5], [1, 1], [False, True]]
    """
    ts = np.asarray(trips.ts_ns, dtype=np.int64)
    sym = np.asarray(trips.symbol_id, dtype=np.int64)
    is_return = np.asarray(trips.metric) == int(Metric.RETURN)
    if len(ts) == 0:
        return ts, sym, is_return
    keys = np.stack([sym, ts])
    uniq, inverse = np.unique(keys, axis=1, return_inverse=True)
    has_return = np.zeros(uniq.shape[1], dtype=bool)
    np.logical_or.at(has_return, inverse.ravel(), is_return)
    return uniq[1], uniq[0], has_return


def evaluate(
    trips: TripLike,
    labels: Sequence[EventLabel],
    symbols: SymbolTable,
    *,
    duration_ns: int,
    n_symbols: int | None = None,
    tolerance_ns: int = DEFAULT_TOLERANCE_NS,
) -> EvalReport:
    """Score ``trips`` against ``labels`` for a run of ``n_symbols`` (default: all of
    ``symbols``) over ``duration_ns``."""
    n_symbols = len(symbols) if n_symbols is None else n_symbols
    if n_symbols < 1 or duration_ns <= 0 or tolerance_ns < 0:
        raise ValueError(
            f"need n_symbols >= 1, duration_ns > 0, tolerance_ns >= 0; got {n_symbols}, "
            f"{duration_ns}, {tolerance_ns}"
        )
    ts, sym, has_return = alarms(trips)
    true = np.zeros(len(ts), dtype=bool)
    in_trend = np.zeros(len(ts), dtype=bool)
    events: dict[str, int] = {}
    detected: dict[str, int] = {}
    missed = []
    for label in sorted(labels, key=lambda x: (_KIND_ORDER[x.kind], x.start_ns)):
        kind = label.kind.value
        inside = _window(ts, sym, symbols.id(label.symbol), label, tolerance_ns)
        hit = bool(inside.any())
        events[kind] = events.get(kind, 0) + 1
        detected[kind] = detected.get(kind, 0) + hit
        if label.kind is EventKind.SLOW_TREND:
            in_trend |= inside
            continue
        true |= inside
        if not hit:
            missed.append(label)
    true &= ~in_trend  # a trend's window never excuses an alarm
    recall = {k: detected[k] / n for k, n in events.items() if k != EventKind.SLOW_TREND.value}
    n_alarms, n_true = len(ts), int(true.sum())
    days = duration_ns / NS_PER_DAY
    return EvalReport(
        recall=recall,
        events=events,
        detected=detected,
        precision=n_true / n_alarms if n_alarms else 1.0,
        false_trips_per_symbol_day=(n_alarms - n_true) / (n_symbols * days),
        slow_trend_trips=int((in_trend & has_return).sum()),
        alarms=n_alarms,
        true_alarms=n_true,
        false_alarms=n_alarms - n_true,
        n_symbols=n_symbols,
        days=days,
        tolerance_ns=tolerance_ns,
        missed=tuple(missed),
    )


_KIND_ORDER = {k: i for i, k in enumerate(EventKind)}


def _window(
    ts: np.ndarray, sym: np.ndarray, symbol_id: int, label: EventLabel, tolerance_ns: int
) -> np.ndarray:
    """Alarms of the label's symbol inside [start, end + tolerance]."""
    return (sym == symbol_id) & (ts >= label.start_ns) & (ts <= label.end_ns + tolerance_ns)
