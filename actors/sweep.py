"""One parameter-sweep task: one detector config over one (symbol group, day).

:func:`run_sweep` is the per-task work of ``serve_apps.jobs.sweep`` as a plain function
(tested without Ray); :data:`run_sweep_task` is its Ray remote wrapper. The data comes from
the backtest's sources (:func:`actors.backtest.data_for` on a :class:`ShardSpec`: the
scenario replayed from its start, or the tick store read from ``start_ns - warmup_s``), so
a sweep and a backtest of the same spec see the same ticks. Only the spec's symbols feed an
in-process :class:`DetectorShard`; ticks before ``start_ns`` only warm the detectors up.

Scoring: when the source is the labelled scenario, the trips of ``[start_ns, end_ns)`` are
scored with :func:`tripwire.detect.evaluate.evaluate` against the labels of the spec's
symbols that start inside that window (an event is counted in the day it starts in). A
tick store has no labels: the task reports ticks and alarms, and ``labelled`` is false.

Everything but ``seconds`` is a function of (spec, config): detectors are deterministic
and the ids they draw are seeded.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import ray

from actors.backtest import ShardData, ShardSpec, _split, data_for
from actors.shard import DetectorShard
from tripwire.detect import DetectorConfig
from tripwire.detect.evaluate import TripColumns, evaluate
from tripwire.feeds.scenario import Scenario, ScenarioConfig
from tripwire.model import EventKind, EventLabel

SLOW_TREND = EventKind.SLOW_TREND.value


def run_sweep(spec: ShardSpec, detector: DetectorConfig,
              data: ShardData | None = None) -> dict[str, Any]:
    """Detect over one spec with one config; counts and scores as a JSON-ready dict."""
    if not spec.symbols:
        raise ValueError(f"sweep task {spec.label}: no symbols")
    if spec.end_ns <= spec.start_ns:
        raise ValueError(f"sweep task {spec.label}: end_ns must be after start_ns")
    began = time.perf_counter()
    data = data if data is not None else data_for(spec)
    missing = [s for s in spec.symbols if s not in data.symbols]
    if missing:
        raise ValueError(f"sweep task {spec.label}: symbols not in the data: "
                         f"{', '.join(missing)}")
    ticks, trips = _detect(spec, detector, data)
    out: dict[str, Any] = {"label": spec.label, "symbols": list(spec.symbols),
                           "start_ns": spec.start_ns, "end_ns": spec.end_ns, "ticks": ticks}
    if spec.scenario is not None:
        out.update(_scored(spec, trips, data))
    else:
        out.update(_unscored(trips))
    out["seconds"] = time.perf_counter() - began  # the only field that is not reproducible
    return out


def _detect(spec: ShardSpec, detector: DetectorConfig,
            data: ShardData) -> tuple[int, TripColumns]:
    """Ticks scored inside the window and the trips they raised (global symbol ids)."""
    syms = data.symbols
    mine = np.zeros(max(len(syms), 1), dtype=bool)
    mine[[syms.id(s) for s in spec.symbols]] = True
    shard = DetectorShard(0, 1, syms, detector, id_seed=spec.seed)
    ticks, cols = 0, ([], [], [])
    for chunk in data.chunks:
        own = chunk.take(mine[chunk.symbol_id]) if len(chunk) else chunk
        for part, live in _split(own, spec.start_ns, spec.end_ns):
            trips = shard.process(part).trips
            if live:
                ticks += len(part)
                for col, values in zip(cols, (trips.ts_ns, trips.symbol_id, trips.metric),
                                       strict=True):
                    col.append(np.asarray(values))
    if not cols[0]:
        return ticks, TripColumns(ts_ns=[], symbol_id=[], metric=[])
    ts, sym, metric = (np.concatenate(c) for c in cols)
    return ticks, TripColumns(ts_ns=ts, symbol_id=sym, metric=metric)


def _labels(spec: ShardSpec) -> list[EventLabel]:
    # Cheap: placing events and profiles does not generate ticks.
    labels = Scenario(ScenarioConfig.from_dict(spec.scenario or {})).labels
    wanted = set(spec.symbols)
    return [x for x in labels
            if x.symbol in wanted and spec.start_ns <= x.start_ns < spec.end_ns]


def _scored(spec: ShardSpec, trips: TripColumns, data: ShardData) -> dict[str, Any]:
    report = evaluate(trips, _labels(spec), data.symbols, duration_ns=spec.end_ns - spec.start_ns,
                      n_symbols=len(spec.symbols))
    return {
        "labelled": True,
        "alarms": report.alarms,
        "true_alarms": report.true_alarms,
        "false_alarms": report.false_alarms,
        "events": dict(sorted(report.events.items())),
        "detected": dict(sorted(report.detected.items())),
        "recall": dict(sorted(report.recall.items())),
        "precision": report.precision,
        "slow_trend_trips": report.slow_trend_trips,
    }


def _unscored(trips: TripColumns) -> dict[str, Any]:
    from tripwire.detect.evaluate import alarms

    n = len(alarms(trips)[0])
    return {"labelled": False, "alarms": n, "true_alarms": None, "false_alarms": None,
            "events": {}, "detected": {}, "recall": {}, "precision": None,
            "slow_trend_trips": None}


# Ray wrapper: one CPU by default (the job overrides it with .options(num_cpus=...)).
run_sweep_task = ray.remote(num_cpus=1, max_retries=1)(run_sweep)
