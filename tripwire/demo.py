"""The detectors-only demo: the labelled scenario market through one in-process bank.

``tripwire detect-demo`` generates the default scenario (:mod:`tripwire.feeds.scenario`:
its symbols, regimes, injected events and their labels; ``--seed``, ``--symbols``,
``--hours``), pushes its ticks through the configured detectors (``[detector]``) in this
process, and scores the trips against the labels with :func:`tripwire.detect.evaluate.evaluate`
(the same rules as ``tripwire detect-eval``): which events tripped, precision, false trips
per symbol-day, and whether a slow trend tripped (it must not). No Ray, no decisions, no
orders: ``tripwire demo`` runs the whole system.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tripwire.detect import DetectorConfig
from tripwire.detect.eval_run import Market, MarketSpec, build_market, run_bank
from tripwire.detect.evaluate import EvalReport, evaluate
from tripwire.model import NS_PER_SECOND, EventKind


@dataclass(frozen=True, slots=True)
class DemoRun:
    market: Market
    report: EvalReport
    ticks: int
    seconds: float  # wall time generating and detecting
    counters: dict[str, Any]


def market(seed: int | None, symbols: int | None, hours: float | None) -> Market:
    """The default scenario with its events (a bad size is a ValueError naming it)."""
    if symbols is not None and symbols < 1:
        raise ValueError(f"--symbols must be >= 1, got {symbols}")
    if hours is not None and not hours > 0:
        raise ValueError(f"--hours must be > 0, got {hours}")
    days = None if hours is None else hours / 24
    return build_market(MarketSpec("default", seed, symbols=symbols, days=days), events=True)


def run(m: Market, config: DetectorConfig,
        progress: Callable[[int], None] | None = None) -> DemoRun:
    """Every tick of ``m`` through one bank, scored against its labels."""
    began = time.perf_counter()
    trips, ticks, counters = run_bank(m.batches(), len(m.symbols), config, progress)
    seconds = time.perf_counter() - began
    report = evaluate(trips, m.labels, m.symbols, duration_ns=m.duration_ns)
    return DemoRun(m, report, ticks, seconds, counters)


def events(r: DemoRun) -> list[dict[str, Any]]:
    """One row per labelled event: kind, symbol, hours after the start, detected.

    A slow trend's ``detected`` is None: it is labelled so that tripping on it counts as a
    false alarm (``slow_trend_trips`` in the summary), never as a detection.
    """
    missed = {lab.id for lab in r.report.missed}
    rows = []
    for lab in sorted(r.market.labels, key=lambda x: x.start_ns):
        trend = lab.kind is EventKind.SLOW_TREND
        rows.append({
            "event": lab.kind.value, "symbol": lab.symbol,
            "at_h": round((lab.start_ns - r.market.start_ns) / (3600 * NS_PER_SECOND), 2),
            "detected": None if trend else lab.id not in missed,
        })
    return rows


def summary(r: DemoRun) -> dict[str, Any]:
    """The run as one JSON-ready object (``tripwire detect-demo --json``)."""
    rep = r.report
    return {
        "scenario": r.market.describe,
        "ticks": r.ticks,
        "symbols": len(r.market.symbols),
        "seconds": round(r.seconds, 3),
        "ticks_per_s": round(r.ticks / r.seconds) if r.seconds else None,
        "trips": r.counters["trips"],
        "suppressed_by_cooldown": r.counters["suppressed"],
        "rejected": r.counters["rejected"],
        "alarms": rep.alarms,
        "false_alarms": rep.false_alarms,
        **rep.to_json(),
        "events": events(r),
    }
