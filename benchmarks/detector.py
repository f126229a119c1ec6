"""Speed and exactness of the rolling z-score detectors.

Run from the project root::

    python -m benchmarks.detector            # rich table + pass/fail summary
    python -m benchmarks.detector --json     # one JSON object on stdout
    python -m benchmarks.detector --quick    # smoke run (1M instead of 10M values)

Every timing is the best (minimum) of ``--repeat`` runs, measured with
``time.perf_counter_ns``, with fresh detector state for each run. Figures (JSON keys):

Speed of one window (the "adversarial series": a random walk from 1e5 with steps of
+-1e-4, ``n_updates`` values)
  rolling_ns_per_update        ``RollingStats(window=100).push_many(x)``, ns per value.
  limit_ns_per_update          ``_native.plain_sliding_zscores(x, 100)``: a plain sliding
                               Welford loop with no exactness guarantee, compiled with the
                               same flags; the floor for any O(1) update.
  rolling_vs_limit_ratio       rolling / limit: the price of exactness.
  rolling_ns_per_update_w1000  as rolling_ns_per_update, window 1000.
  single_push_ns               ``RollingStats(100).push(v)`` from a Python loop over Python
                               floats, ns per call (loop overhead included).
  numpy_reference_ns_per_update  ``reference.rolling_zscores`` (vectorised NumPy two-pass).
  python_loop_ns_per_update    a pure-Python sliding Welford loop (in this file).

Speed of a whole shard: ``DetectorBank`` over 1000 symbols, three metrics (return, volume,
price), ticks randomly interleaved across symbols, pushed in batches of 100k rows; only
the ``push_batch`` calls are timed.
  bank_ns_per_tick, bank_ticks_per_s   windows of 1000 (``n_ticks`` ticks).
  bank_trips                   trips reported in one run (one per symbol at most: the
                               cool-down is effectively infinite).
  bank_ns_per_tick_w10000      windows of 10,000: the rings (~240 MB) no longer fit in
                               cache. ``bank_warmup_ticks_w10000`` untimed ticks first fill
                               every window (so the timed ``bank_ticks_w10000`` ticks are
                               steady state: every push evicts the oldest value).
  bank_bytes_per_symbol(_w10000)  memory per symbol (``DetectorBank.bytes_per_symbol``).
  bank_ns_per_tick_legacy      the statistics before issue 16 (``DetectorConfig.legacy()``:
                               trade-to-trade returns, raw 30 s volume sums), and
  bank_ns_per_tick_default     today's defaults (``DetectorConfig()``: 10 s bucketed
                               returns, log trade count of active 30 s buckets, the
                               activity gate, per-symbol thresholds), both on the same
                               ticks spaced ``SPACED_TICK_NS`` apart (1000 symbols: each
                               sees ~1 trade/s, so buckets roll over) in the same run;
  bank_default_vs_legacy_ratio  their ratio (target <= 1.3).

Exactness on the adversarial series (sum/sum-of-squares loses ~11 digits to
cancellation here, and a plain sliding Welford update drifts):
  max_abs_z_error(_w100, _w1000)  max |z - exact z| over sampled indices (random ones
                               spread over the series plus the last one), the exact z
                               from ``reference.exact_zscore`` (rational arithmetic).
  naive_sumsq_max_abs_z_error  the same for the textbook sum/sum-of-squares formula (NumPy
                               prefix sums of x and x*x); ``naive_sumsq_undefined`` counts
                               sampled windows where its variance came out <= 0 (no z).
  max_abs_z_error_vs_numpy     max |z - numpy z| over the first ``numpy_reference_n``
                               values, windows 100 and 1000.

``targets`` holds upper bounds for five figures and ``meets_targets`` whether each is met.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tripwire import _native
from tripwire.detect import DetectorBank, DetectorConfig, MetricConfig, RollingStats, reference

T = TypeVar("T")
R = TypeVar("R")

WINDOW = 100
WINDOW_LARGE = 1000
BANK_WINDOW = 1000
BANK_WINDOW_LARGE = 10_000
N_SYMBOLS = 1000
BATCH_ROWS = 100_000
TICK_NS = 1000
SPACED_TICK_NS = 1_000_000  # 1 ms: buckets of 10 s and 30 s roll over during the run

TARGETS: dict[str, float] = {
    "rolling_ns_per_update": 8,
    "rolling_vs_limit_ratio": 1.5,
    "bank_ns_per_tick": 60,
    "single_push_ns": 150,
    "max_abs_z_error": 1e-7,
    "bank_default_vs_legacy_ratio": 1.3,
}


@dataclass(frozen=True)
class Sizes:
    """How much work each figure does."""

    n_updates: int  # adversarial series length (rolling timings and exactness)
    n_ticks: int  # bank ticks, window 1000
    n_ticks_w10000: int  # timed bank ticks, window 10,000
    warm_w10000: bool  # fill every 10,000-window before timing
    single_push: int  # Python-loop pushes
    numpy_ref: int  # values for the NumPy reference (timing and parity)
    python_loop: int  # values for the pure-Python loop
    exact_w100: int  # sampled indices checked exactly, window 100
    exact_w1000: int  # ... window 1000


FULL = Sizes(10_000_000, 10_000_000, 5_000_000, True, 1_000_000, 1_000_000, 200_000, 300, 100)
QUICK = Sizes(1_000_000, 1_000_000, 500_000, False, 200_000, 200_000, 50_000, 60, 20)


# --------------------------------------------------------------------------- progress


class Phases:
    """Transient progress bars on stderr, one per long phase."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    @contextmanager
    def phase(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        task = self._progress.add_task(description, total=total)

        def advance(steps: int = 1) -> None:
            self._progress.advance(task, steps)

        try:
            yield advance
        finally:
            self._progress.remove_task(task)


@contextmanager
def phases_on_stderr() -> Iterator[Phases]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with progress:
        yield Phases(progress)


# --------------------------------------------------------------------------- timing


def timed_ns(fn: Callable[[], R]) -> tuple[int, R]:
    """(elapsed ns, result) of one call, with the garbage collector held off."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        result = fn()
        elapsed = time.perf_counter_ns() - t0
    finally:
        gc.enable()
    return elapsed, result


def best_of(
    repeat: int, setup: Callable[[], T], run: Callable[[T], R], advance: Callable[[int], None]
) -> tuple[int, R]:
    """Minimum ns of ``run(setup())`` over ``repeat`` runs (setup untimed), last result."""
    best = math.inf
    result: Any = None
    for _ in range(repeat):
        result = None  # free the previous result first: each run allocates from scratch
        state = setup()
        elapsed, result = timed_ns(lambda s=state: run(s))
        best = min(best, elapsed)
        advance(1)
    return int(best), result


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Ticks:
    """A columnar tick stream, symbols interleaved, in time order."""

    symbol_id: np.ndarray  # int32
    ts_ns: np.ndarray  # int64
    price: np.ndarray  # float64 > 0
    qty: np.ndarray  # float64 > 0

    def __len__(self) -> int:
        return len(self.ts_ns)

    def rows(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        return (
            self.symbol_id[start:stop],
            self.ts_ns[start:stop],
            self.price[start:stop],
            self.qty[start:stop],
        )


def tick_stream(rng: np.random.Generator, n: int, n_symbols: int) -> Ticks:
    """Uniformly interleaved symbols; each symbol's price is a log random walk near 100."""
    sym = rng.integers(0, n_symbols, size=n, dtype=np.int32)
    ts = np.arange(n, dtype=np.int64) * TICK_NS
    order = np.argsort(sym, kind="stable")  # each symbol's rows, in time order
    counts = np.bincount(sym, minlength=n_symbols)
    starts = np.cumsum(counts) - counts
    walk = np.cumsum(rng.normal(0.0, 1e-3, size=n))  # all symbols' walks, concatenated
    walk -= np.repeat(np.concatenate([[0.0], walk])[starts], counts)  # restart per symbol
    level = 100.0 * np.exp(rng.normal(0.0, 0.2, size=n_symbols))
    price = np.empty(n)
    price[order] = np.repeat(level, counts) * np.exp(walk)
    qty = rng.lognormal(0.0, 1.0, size=n)
    return Ticks(sym, ts, price, qty)


def rows_until_full(symbol_id: np.ndarray, n_symbols: int, need: int) -> int:
    """Smallest prefix length in which every symbol has at least ``need`` ticks."""
    counts = np.bincount(symbol_id, minlength=n_symbols)
    if counts.min() < need:
        raise ValueError(f"stream too short: a symbol has {counts.min()} < {need} ticks")
    order = np.argsort(symbol_id, kind="stable")
    starts = np.cumsum(counts) - counts
    return int(order[starts + need - 1].max()) + 1


# --------------------------------------------------------------------------- one window


def bench_rolling(
    x: np.ndarray, window: int, repeat: int, advance: Callable[[int], None]
) -> tuple[float, np.ndarray, int]:
    """(ns per value of push_many, the z-scores, resyncs) for a fresh RollingStats."""
    last: list[RollingStats] = []

    def setup() -> RollingStats:
        last[:] = [RollingStats(window=window, min_periods=window)]
        return last[0]

    ns, z = best_of(repeat, setup, lambda rs: rs.push_many(x), advance)
    return ns / len(x), z, int(last[0].resyncs)


def bench_limit(x: np.ndarray, window: int, repeat: int, advance: Callable[[int], None]) -> float:
    ns, _ = best_of(
        repeat, lambda: None, lambda _: _native.plain_sliding_zscores(x, window), advance
    )
    return ns / len(x)


def push_loop(rs: RollingStats, values: list[float]) -> None:
    push = rs.push
    for v in values:
        push(v)


def bench_single_push(values: list[float], repeat: int, advance: Callable[[int], None]) -> float:
    ns, _ = best_of(
        repeat, lambda: RollingStats(window=WINDOW), lambda rs: push_loop(rs, values), advance
    )
    return ns / len(values)


def bench_numpy_reference(
    x: np.ndarray, repeat: int, advance: Callable[[int], None]
) -> tuple[float, np.ndarray]:
    ns, z = best_of(repeat, lambda: None, lambda _: reference.rolling_zscores(x, WINDOW), advance)
    return ns / len(x), z


def python_sliding_zscores(values: list[float], window: int) -> list[float]:
    """Plain sliding Welford z-scores in pure Python (z against the window before v)."""
    ring = [0.0] * window
    pos = count = 0
    mean = m2 = 0.0
    inv_w = 1.0 / window
    inv_dof = 1.0 / (window - 1)
    sqrt = math.sqrt
    out: list[float] = []
    append = out.append
    for v in values:
        if count == window:
            sd = sqrt(m2 * inv_dof) if m2 > 0.0 else 0.0
            append((v - mean) / sd if sd > 0.0 else 0.0)
            old = ring[pos]
            delta = v - old
            new_mean = mean + delta * inv_w
            m2 += delta * ((v - new_mean) + (old - mean))
            mean = new_mean
        else:
            append(math.nan)
            count += 1
            delta = v - mean
            mean += delta / count
            m2 += delta * (v - mean)
        ring[pos] = v
        pos += 1
        if pos == window:
            pos = 0
    return out


def bench_python_loop(values: list[float], repeat: int, advance: Callable[[int], None]) -> float:
    ns, _ = best_of(repeat, lambda: None, lambda _: python_sliding_zscores(values, WINDOW), advance)
    return ns / len(values)


# --------------------------------------------------------------------------- bank


def bank_config(window: int) -> DetectorConfig:
    """Three metrics of one window size, returns trade to trade and volume scored per trade
    (every tick updates all three windows: the worst case); a cool-down longer than any run."""
    return DetectorConfig(
        returns=MetricConfig(window=window, min_periods=window),
        volume=MetricConfig(window=window, two_sided=False),
        price=MetricConfig(window=window),
        volume_bucket_ns=0,
        cooldown_ns=1 << 62,
        return_bucket_ns=0,  # trade to trade: every tick pushes into all three windows
    )


def push_rows(bank: DetectorBank, ticks: Ticks, start: int, stop: int) -> tuple[int, int]:
    """Push rows [start, stop) in batches; (ns spent inside push_batch, trips)."""
    spent = trips = 0
    for b0 in range(start, stop, BATCH_ROWS):
        cols = ticks.rows(b0, min(b0 + BATCH_ROWS, stop))
        t0 = time.perf_counter_ns()
        result = bank.push_batch(*cols)
        spent += time.perf_counter_ns() - t0
        trips += len(result.trips)
    return spent, trips


def with_long_cooldown(cfg: DetectorConfig) -> DetectorConfig:
    return DetectorConfig(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__},
                             "cooldown_ns": 1 << 62})


def bench_bank(
    ticks: Ticks, window: int | DetectorConfig, warmup: int, n: int, repeat: int,
    advance: Callable[[int], None],
) -> tuple[float, int, int]:
    """(best ns per timed tick, trips in the timed part, bytes per symbol)."""
    best = math.inf
    trips = bytes_per_symbol = 0
    cfg = bank_config(window) if isinstance(window, int) else window
    for _ in range(repeat):
        bank = DetectorBank(cfg, n_symbols=N_SYMBOLS)
        bytes_per_symbol = bank.bytes_per_symbol
        push_rows(bank, ticks, 0, warmup)
        gc.collect()
        gc.disable()
        try:
            spent, trips = push_rows(bank, ticks, warmup, warmup + n)
        finally:
            gc.enable()
        best = min(best, spent)
        del bank
        advance(1)
    return best / n, trips, bytes_per_symbol


# --------------------------------------------------------------------------- exactness


def sample_indices(rng: np.random.Generator, n: int, window: int, k: int) -> np.ndarray:
    """k sorted indices in [window, n): random ones spread over the series, plus n - 1."""
    picked = rng.choice(n - 1 - window, size=min(k - 1, n - 1 - window), replace=False)
    return np.sort(np.append(picked + window, n - 1))


def exact_zscores(
    x: np.ndarray, window: int, idx: np.ndarray, advance: Callable[[int], None]
) -> np.ndarray:
    out = np.empty(len(idx))
    for j, i in enumerate(idx):
        out[j] = reference.exact_zscore(x[i - window : i].tolist(), float(x[i]))
        advance(1)
    return out


def max_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    """Max |a - b| where both are finite (0.0 when nowhere)."""
    both = np.isfinite(a) & np.isfinite(b)
    return float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0


def same_nan_pattern(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(np.isnan(a), np.isnan(b)))


# --------------------------------------------------------------------------- the run


def machine() -> str:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    u = platform.uname()
    return f"{cpu or u.machine} | {u.system} {u.release} {u.machine} | {os.cpu_count()} CPUs"


def speed_figures(
    x: np.ndarray, sizes: Sizes, repeat: int, phases: Phases
) -> tuple[dict[str, Any], dict[int, np.ndarray], np.ndarray]:
    """One-window timings; also returns the z-scores (by window) and the NumPy z-scores."""
    out: dict[str, Any] = {}
    z: dict[int, np.ndarray] = {}
    with phases.phase("one window: push_many / plain loop", 3 * repeat) as adv:
        out["rolling_ns_per_update"], z[WINDOW], out["resyncs_w100"] = bench_rolling(
            x, WINDOW, repeat, adv
        )
        out["limit_ns_per_update"] = bench_limit(x, WINDOW, repeat, adv)
        out["rolling_vs_limit_ratio"] = out["rolling_ns_per_update"] / out["limit_ns_per_update"]
        out["rolling_ns_per_update_w1000"], z[WINDOW_LARGE], out["resyncs_w1000"] = bench_rolling(
            x, WINDOW_LARGE, repeat, adv
        )
    with phases.phase("one window: Python-level loops", 2 * repeat) as adv:
        out["single_push_ns"] = bench_single_push(x[: sizes.single_push].tolist(), repeat, adv)
        out["python_loop_ns_per_update"] = bench_python_loop(
            x[: sizes.python_loop].tolist(), repeat, adv
        )
    with phases.phase("one window: NumPy reference", repeat) as adv:
        out["numpy_reference_ns_per_update"], z_numpy = bench_numpy_reference(
            x[: sizes.numpy_ref], repeat, adv
        )
    return out, z, z_numpy


def bank_figures(ticks: Ticks, sizes: Sizes, repeat: int, phases: Phases) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with phases.phase(f"bank: window {BANK_WINDOW}", repeat) as adv:
        ns, out["bank_trips"], out["bank_bytes_per_symbol"] = bench_bank(
            ticks, BANK_WINDOW, 0, sizes.n_ticks, repeat, adv
        )
    out["bank_ns_per_tick"] = ns
    out["bank_ticks_per_s"] = 1e9 / ns
    warmup = (
        rows_until_full(ticks.symbol_id, N_SYMBOLS, BANK_WINDOW_LARGE + 1)
        if sizes.warm_w10000
        else 0
    )
    if warmup + sizes.n_ticks_w10000 > len(ticks):
        raise ValueError(f"tick stream too short for {warmup:,} warm-up + timed ticks")
    with phases.phase(f"bank: window {BANK_WINDOW_LARGE}", repeat) as adv:
        ns, out["bank_trips_w10000"], out["bank_bytes_per_symbol_w10000"] = bench_bank(
            ticks, BANK_WINDOW_LARGE, warmup, sizes.n_ticks_w10000, repeat, adv
        )
    out["bank_ns_per_tick_w10000"] = ns
    out["bank_ticks_w10000"] = sizes.n_ticks_w10000
    out["bank_warmup_ticks_w10000"] = warmup
    spaced = Ticks(ticks.symbol_id, ticks.ts_ns * (SPACED_TICK_NS // TICK_NS), ticks.price,
                   ticks.qty)
    # Interleaved, so neither config gets a warmer cache: best of each over the rounds.
    best = {"legacy": math.inf, "default": math.inf}
    configs = {"legacy": DetectorConfig.legacy(), "default": DetectorConfig()}
    with phases.phase("bank: legacy vs default statistics", 2 * repeat) as adv:
        for _ in range(repeat):
            for name, cfg in configs.items():
                ns, trips, _ = bench_bank(spaced, with_long_cooldown(cfg), 0, sizes.n_ticks, 1,
                                          adv)
                best[name] = min(best[name], ns)
                out[f"bank_trips_{name}"] = trips
    out["bank_ns_per_tick_legacy"] = best["legacy"]
    out["bank_ns_per_tick_default"] = best["default"]
    out["bank_default_vs_legacy_ratio"] = best["default"] / best["legacy"]
    return out


def exactness_figures(
    x: np.ndarray,
    z: dict[int, np.ndarray],
    z_numpy: np.ndarray,
    sizes: Sizes,
    rng: np.random.Generator,
    phases: Phases,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    naive_err, undefined = 0.0, 0
    for window, k in ((WINDOW, sizes.exact_w100), (WINDOW_LARGE, sizes.exact_w1000)):
        idx = sample_indices(rng, len(x), window, k)
        with phases.phase(f"exact z: window {window}", len(idx)) as adv:
            exact = exact_zscores(x, window, idx, adv)
        out[f"max_abs_z_error_w{window}"] = float(np.abs(z[window][idx] - exact).max())
        naive = reference.naive_sumsq_zscores(x, window, idx)
        naive_err = max(naive_err, max_abs_error(naive, exact))
        undefined += int(np.isnan(naive).sum())
    out["max_abs_z_error"] = max(out[f"max_abs_z_error_w{w}"] for w in (WINDOW, WINDOW_LARGE))
    out["naive_sumsq_max_abs_z_error"] = naive_err
    out["naive_sumsq_undefined"] = undefined
    with phases.phase("parity with NumPy reference", 1):
        m = len(z_numpy)
        z_numpy_large = reference.rolling_zscores(x[:m], WINDOW_LARGE)
    pairs = ((z[WINDOW][:m], z_numpy), (z[WINDOW_LARGE][:m], z_numpy_large))
    out["max_abs_z_error_vs_numpy"] = max(max_abs_error(a, b) for a, b in pairs)
    out["nan_pattern_matches_numpy"] = all(same_nan_pattern(a, b) for a, b in pairs)
    out["numpy_reference_n"] = m
    return out


def run(sizes: Sizes, repeat: int, seed: int) -> dict[str, Any]:
    t_start = time.perf_counter_ns()
    rng_series, rng_ticks, rng_sample = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    result: dict[str, Any] = {}
    with phases_on_stderr() as phases:
        x = reference.adversarial_walk(sizes.n_updates, rng_series)
        speed, z, z_numpy = speed_figures(x, sizes, repeat, phases)
        result.update(speed)
        n_stream = sizes.n_ticks
        if sizes.warm_w10000:  # room to fill every 10,000-window, then time n_ticks_w10000
            n_stream = max(n_stream, N_SYMBOLS * (BANK_WINDOW_LARGE + 500) + sizes.n_ticks_w10000)
        with phases.phase("generating ticks", 1):
            ticks = tick_stream(rng_ticks, max(n_stream, sizes.n_ticks_w10000), N_SYMBOLS)
        result.update(bank_figures(ticks, sizes, repeat, phases))
        del ticks
        result.update(exactness_figures(x, z, z_numpy, sizes, rng_sample, phases))
    result.update(
        n_updates=sizes.n_updates,
        n_ticks=sizes.n_ticks,
        window=WINDOW,
        repeat=repeat,
        seed=seed,
        machine=machine(),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        targets=dict(TARGETS),
        meets_targets={k: bool(result[k] <= v) for k, v in TARGETS.items()},
        runtime_s=(time.perf_counter_ns() - t_start) / 1e9,
    )
    headline = {key: result[key] for key, _ in ROWS}
    return headline | {k: v for k, v in result.items() if k not in headline}


# --------------------------------------------------------------------------- output


def json_safe(value: Any) -> Any:
    """Non-finite floats become null (strict JSON has no NaN/inf); NumPy scalars unwrap."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


ROWS: tuple[tuple[str, str], ...] = (
    ("rolling_ns_per_update", "ns/value"),
    ("limit_ns_per_update", "ns/value"),
    ("rolling_vs_limit_ratio", "x"),
    ("rolling_ns_per_update_w1000", "ns/value"),
    ("single_push_ns", "ns/call"),
    ("numpy_reference_ns_per_update", "ns/value"),
    ("python_loop_ns_per_update", "ns/value"),
    ("bank_ns_per_tick", "ns/tick"),
    ("bank_ticks_per_s", "ticks/s"),
    ("bank_trips", ""),
    ("bank_bytes_per_symbol", "bytes"),
    ("bank_ns_per_tick_w10000", "ns/tick"),
    ("bank_ns_per_tick_legacy", "ns/tick"),
    ("bank_ns_per_tick_default", "ns/tick"),
    ("bank_default_vs_legacy_ratio", "x"),
    ("bank_bytes_per_symbol_w10000", "bytes"),
    ("max_abs_z_error", ""),
    ("max_abs_z_error_w100", ""),
    ("max_abs_z_error_w1000", ""),
    ("max_abs_z_error_vs_numpy", ""),
    ("naive_sumsq_max_abs_z_error", ""),
    ("naive_sumsq_undefined", "windows"),
)


def fmt(value: Any) -> str:
    if isinstance(value, int):  # bool included
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:,.0f}" if abs(value) >= 1e6 else f"{value:,.2f}"
    return str(value)


def table(result: dict[str, Any]) -> Table:
    t = Table(title=f"tripwire detectors ({result['machine']})")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("unit")
    t.add_column("target", justify="right")
    t.add_column("")
    for key, unit in ROWS:
        target = TARGETS.get(key)
        status = ""
        if target is not None:
            status = "[green]pass" if result["meets_targets"][key] else "[red]FAIL"
        t.add_row(key, fmt(result[key]), unit, "" if target is None else f"<= {target:g}", status)
    return t


def summary(result: dict[str, Any]) -> str:
    met = result["meets_targets"]
    missed = [f"{k} ({fmt(result[k])} > {TARGETS[k]:g})" for k, ok in met.items() if not ok]
    head = f"{sum(met.values())}/{len(met)} targets met"
    tail = "; missed: " + ", ".join(missed) if missed else ""
    return (
        f"{head}{tail}. {result['n_updates']:,} updates, {result['n_ticks']:,} ticks, "
        f"best of {result['repeat']}, {result['runtime_s']:.0f} s."
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.detector",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    p.add_argument("--repeat", type=int, default=3, help="runs per timing; the best is kept")
    p.add_argument("--seed", type=int, default=20240601, help="random seed for all data")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = json_safe(run(QUICK if args.quick else FULL, args.repeat, args.seed))
    if args.json:
        sys.stdout.write(json.dumps(result, allow_nan=False) + "\n")
    else:
        console = Console()
        console.print(table(result))
        console.print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
