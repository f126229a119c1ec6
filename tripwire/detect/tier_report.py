"""Detection quality per liquidity tier: false trips, recall curves, delays, LLM calls.

Pure arithmetic over trip columns and labels (nothing here runs a detector); the alarm
and event-window rules are :mod:`tripwire.detect.evaluate`'s: one alarm per tripping tick,
an event is detected by an alarm of its symbol in ``[start, end + tolerance]``, alarms on
a slow trend are false and never detections.

* **False trips per symbol-day** of a tier: alarms of its symbols not excused by an
  event window, over (symbols of the tier x days). Measured on an event-free run this is
  the pure false-alarm rate; on a run with events it also counts aftershocks.
* **LLM calls per symbol-day**: the alarms in time order through the incident intake's
  own rule (:class:`tripwire.decisions.intake.IncidentIntake`: one incident per symbol per
  cool-down, later trips coalesced), each admitted incident being one triage call. The
  queue is drained as it fills (an unbounded consumer), so no incident is lost to overload.
* **Recall** per (tier, kind) and per (tier, size bucket): the curve of recall against
  event size. **Delay**: first alarm in the window minus the event's start, in seconds,
  over the detected events (percentiles p50/p95 and the maximum).

>>> from tripwire.model import EventKind, EventLabel, SymbolTable
>>> from tripwire.detect.evaluate import TripColumns
>>> s = 1_000_000_000
>>> ev = [Graded(EventLabel("a", EventKind.FLASH_CRASH, "X", 100 * s, 160 * s), "t1", 0.01)]
>>> trips = TripColumns(ts_ns=[102 * s, 500 * s], symbol_id=[0, 0], metric=[0, 2])
>>> r = tier_report(trips, ev, SymbolTable(["X"]), {"X": "t1"}, duration_ns=86_400 * s,
...                 incident_cooldown_ns=60 * s)
>>> row = r.tiers[0]
>>> row.events, row.detected, row.false_trips, row.llm_calls, row.delay_s["p50"]
(1, 1, 1, 2, 2.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tripwire.decisions.intake import ACCEPTED, IncidentIntake
from tripwire.detect.evaluate import DEFAULT_TOLERANCE_NS, NS_PER_DAY, TripLike, alarms
from tripwire.model import NS_PER_SECOND, EventKind, EventLabel, SymbolTable

DEFAULT_INCIDENT_COOLDOWN_NS = 60 * NS_PER_SECOND  # tripwire.decisions.config's default


class GradedLike(Protocol):
    """An event with its tier and size (a :class:`tripwire.feeds.realistic.GradedEvent`)."""

    label: EventLabel
    tier: str
    size: float


@dataclass(frozen=True, slots=True)
class Graded:
    """A labelled event with its tier and unsigned size (for labels of other sources)."""

    label: EventLabel
    tier: str
    size: float


def _pct(x: np.ndarray) -> dict[str, float | int | None]:
    if len(x) == 0:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {"n": len(x), "p50": round(float(np.percentile(x, 50)), 3),
            "p95": round(float(np.percentile(x, 95)), 3), "max": round(float(x.max()), 3)}


@dataclass(frozen=True, slots=True)
class TierRow:
    """One liquidity tier's figures."""

    tier: str
    symbols: int
    symbol_days: float
    alarms: int
    false_trips: int
    llm_calls: int
    events: int
    detected: int
    delay_s: dict[str, Any]
    windows_s: tuple[float, ...] = ()  # each event's window length (chance detections)

    def chance_recall(self, false_trips_per_symbol_day: float) -> float | None:
        """The recall alarms at ``false_trips_per_symbol_day`` (a Poisson rate) would score
        by chance alone in these events' windows: what a recall must be read against."""
        if not self.windows_s:
            return None
        rate = false_trips_per_symbol_day / 86_400
        return float(np.mean(-np.expm1(-rate * np.array(self.windows_s))))

    @property
    def false_trips_per_symbol_day(self) -> float:
        return self.false_trips / self.symbol_days if self.symbol_days else 0.0

    @property
    def llm_calls_per_symbol_day(self) -> float:
        return self.llm_calls / self.symbol_days if self.symbol_days else 0.0

    @property
    def recall(self) -> float | None:
        return self.detected / self.events if self.events else None

    def to_json(self) -> dict[str, Any]:
        return {
            "tier": self.tier, "symbols": self.symbols,
            "symbol_days": round(self.symbol_days, 6), "alarms": self.alarms,
            "false_trips": self.false_trips,
            "false_trips_per_symbol_day": round(self.false_trips_per_symbol_day, 6),
            "llm_calls": self.llm_calls,
            "llm_calls_per_symbol_day": round(self.llm_calls_per_symbol_day, 6),
            "events": self.events, "detected": self.detected,
            "recall": None if self.recall is None else round(self.recall, 6),
            "delay_s": self.delay_s,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cell:
    events: int = 0
    detected: int = 0

    @property
    def recall(self) -> float | None:
        return self.detected / self.events if self.events else None

    def to_json(self) -> dict[str, Any]:
        r = self.recall
        return {"events": self.events, "detected": self.detected,
                "recall": None if r is None else round(r, 6)}


@dataclass(frozen=True, slots=True)
class TierReport:
    """Everything :func:`tier_report` measured (JSON via :meth:`to_json`)."""

    tiers: tuple[TierRow, ...]
    by_kind: dict[str, dict[str, Cell]]  # tier -> kind -> cell
    by_size: dict[str, dict[str, Cell]]  # tier -> size bucket -> cell (the curve)
    kind_totals: dict[str, Cell]
    size_buckets: tuple[str, ...]
    days: float
    alarms: int
    true_alarms: int
    slow_trend_trips: int
    missed: tuple[EventLabel, ...] = field(default=())
    delay_by_kind: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def false_trips(self) -> int:
        return sum(r.false_trips for r in self.tiers)

    @property
    def symbol_days(self) -> float:
        return sum(r.symbol_days for r in self.tiers)

    def to_json(self) -> dict[str, Any]:
        sd = self.symbol_days
        llm = sum(r.llm_calls for r in self.tiers)
        worst = max((r.false_trips_per_symbol_day for r in self.tiers), default=0.0)
        return {
            "tiers": [r.to_json() for r in self.tiers],
            "false_trips_per_symbol_day": round(self.false_trips / sd, 6) if sd else 0.0,
            "false_trips_per_symbol_day_worst_tier": round(worst, 6),
            "llm_calls_per_symbol_day": round(llm / sd, 6) if sd else 0.0,
            "recall": {k: c.to_json()["recall"] for k, c in self.kind_totals.items()},
            "recall_by_tier_kind": {t: {k: c.to_json() for k, c in row.items()}
                                    for t, row in self.by_kind.items()},
            "delay_s_by_tier_kind": self.delay_by_kind,
            "recall_curve": {t: {b: c.to_json() for b, c in row.items()}
                             for t, row in self.by_size.items()},
            "size_buckets": list(self.size_buckets),
            "precision": round(self.true_alarms / self.alarms, 6) if self.alarms else 1.0,
            "alarms": self.alarms,
            "slow_trend_trips": self.slow_trend_trips,
            "days": round(self.days, 6),
        }


def llm_calls(ts: np.ndarray, sym: np.ndarray, cooldown_ns: int) -> np.ndarray:
    """Admitted incidents per symbol id when alarms ``(ts, sym)`` go through the intake in
    time order (ties by symbol), the queue drained after each offer.

    >>> llm_calls(np.array([0, 30, 31, 90]), np.array([0, 0, 1, 0]), 60).tolist()
    [2, 1]
    """
    n_sym = int(sym.max()) + 1 if len(sym) else 0
    out = np.zeros(n_sym, np.int64)
    intake = IncidentIntake(cooldown_ns=cooldown_ns, max_pending=1)
    for i in np.lexsort((sym, ts)).tolist():
        s = int(sym[i])
        if intake.offer(str(i), str(s), int(ts[i])).status == ACCEPTED:
            out[s] += 1
        intake.take()
    return out


def tier_report(
    trips: TripLike,
    events: Sequence[GradedLike],
    symbols: SymbolTable,
    tier_of: Mapping[str, str],
    *,
    duration_ns: int,
    incident_cooldown_ns: int = DEFAULT_INCIDENT_COOLDOWN_NS,
    tolerance_ns: int = DEFAULT_TOLERANCE_NS,
    size_buckets: Sequence[str] | None = None,
    labels: Sequence[EventLabel] = (),
) -> TierReport:
    """Score ``trips`` per tier (``tier_of``: symbol -> tier, in table order) against
    ``events`` (with tier and size) and extra ``labels`` (e.g. slow trends: their alarms
    are false, never detections)."""
    if duration_ns <= 0 or tolerance_ns < 0 or incident_cooldown_ns < 0:
        raise ValueError(f"need duration_ns > 0, tolerance_ns >= 0, incident_cooldown_ns >= 0;"
                         f" got {duration_ns}, {tolerance_ns}, {incident_cooldown_ns}")
    missing = [s for s in symbols.names if s not in tier_of]
    if missing:
        raise ValueError(f"no tier for symbol(s): {', '.join(missing[:5])}")
    ts, sym, has_return = alarms(trips)
    true = np.zeros(len(ts), bool)
    in_trend = np.zeros(len(ts), bool)
    # Alarms sorted by (symbol, ts): each symbol's alarms are one contiguous, sorted run.
    bounds = np.searchsorted(sym, np.arange(len(symbols) + 1))
    tier_names = list(dict.fromkeys(tier_of[s] for s in symbols.names))
    buckets = list(size_buckets) if size_buckets is not None else []
    by_kind: dict[str, dict[str, list[int]]] = {t: {} for t in tier_names}
    by_size: dict[str, dict[str, list[int]]] = {t: {b: [0, 0] for b in buckets}
                                                for t in tier_names}
    totals: dict[str, list[int]] = {}
    delays: dict[str, list[float]] = {t: [] for t in tier_names}
    windows: dict[str, list[float]] = {t: [] for t in tier_names}
    kind_delays: dict[tuple[str, str], list[float]] = {}
    missed = []

    def window(label: EventLabel) -> tuple[int, int]:
        sid = symbols.id(label.symbol)
        lo, hi = int(bounds[sid]), int(bounds[sid + 1])
        a = lo + int(np.searchsorted(ts[lo:hi], label.start_ns, side="left"))
        b = lo + int(np.searchsorted(ts[lo:hi], label.end_ns + tolerance_ns, side="right"))
        return a, b

    for lab in labels:
        if lab.kind is EventKind.SLOW_TREND:
            a, b = window(lab)
            in_trend[a:b] = True
    for ev in sorted(events, key=lambda e: (e.label.start_ns, e.label.symbol)):
        lab = ev.label
        a, b = window(lab)
        if lab.kind is EventKind.SLOW_TREND:
            in_trend[a:b] = True
            continue
        true[a:b] = True
        hit = b > a
        kind, bucket = lab.kind.value, _bucket_name(ev.size)
        for cell in (by_kind[ev.tier].setdefault(kind, [0, 0]),
                     by_size[ev.tier].setdefault(bucket, [0, 0]),
                     totals.setdefault(kind, [0, 0])):
            cell[0] += 1
            cell[1] += hit
        if bucket not in buckets:
            buckets.append(bucket)
        windows[ev.tier].append((lab.end_ns + tolerance_ns - lab.start_ns) / NS_PER_SECOND)
        if hit:
            delay = (int(ts[a]) - lab.start_ns) / NS_PER_SECOND
            delays[ev.tier].append(delay)
            kind_delays.setdefault((ev.tier, kind), []).append(delay)
        else:
            missed.append(lab)
    true &= ~in_trend
    calls = llm_calls(ts, sym, incident_cooldown_ns)
    calls = np.pad(calls, (0, len(symbols) - len(calls)))
    days = duration_ns / NS_PER_DAY
    sym_tier = np.array([tier_names.index(tier_of[s]) for s in symbols.names])
    alarm_tier = sym_tier[sym] if len(sym) else np.zeros(0, int)
    rows = []
    for k, t in enumerate(tier_names):
        mine = alarm_tier == k
        n_sym = int((sym_tier == k).sum())
        ev_n = sum(c[0] for c in by_kind[t].values())
        ev_d = sum(c[1] for c in by_kind[t].values())
        rows.append(TierRow(
            tier=t, symbols=n_sym, symbol_days=n_sym * days, alarms=int(mine.sum()),
            false_trips=int((mine & ~true).sum()), llm_calls=int(calls[sym_tier == k].sum()),
            events=ev_n, detected=ev_d, delay_s=_pct(np.array(delays[t])),
            windows_s=tuple(windows[t]),
        ))  # fmt: skip
    order = sorted(buckets, key=_bucket_value)

    def cells(d: dict[str, list[int]], keys: Sequence[str] | None = None) -> dict[str, Cell]:
        return {k: Cell(*d.get(k, [0, 0])) for k in (keys if keys is not None else d)}

    return TierReport(
        tiers=tuple(rows),
        by_kind={t: cells(by_kind[t], sorted(by_kind[t], key=lambda k: _KIND_ORDER[k]))
                 for t in tier_names},
        by_size={t: cells(by_size[t], order) for t in tier_names},
        kind_totals=cells(totals, sorted(totals, key=lambda k: _KIND_ORDER[k])),
        size_buckets=tuple(order),
        days=days,
        alarms=len(ts),
        true_alarms=int(true.sum()),
        slow_trend_trips=int((in_trend & has_return).sum()),
        missed=tuple(missed),
        # Per kind, because an abrupt onset (fat finger, crash) and a slow build-up (a pump
        # accelerating over minutes) have different delays a detector can reach.
        delay_by_kind={t: {k: _pct(np.array(kind_delays.get((t, k), [])))
                           for k in sorted(by_kind[t], key=lambda k: _KIND_ORDER[k])}
                       for t in tier_names},
    )


_KIND_ORDER = {k.value: i for i, k in enumerate(EventKind)}


def _bucket_name(size: float) -> str:
    return f"{size * 100:g}%"


def _bucket_value(name: str) -> float:
    return float(name.rstrip("%"))
