"""Runs for ``tripwire detect-eval``: a named market through a DetectorBank, scored per tier.

A run is two passes over the same market (same seed, same tiers, same regimes):

* the **quiet pass** has no event at all, so every alarm in it is a false trip: this is
  where false trips and LLM calls per symbol-day per tier are measured;
* the **event pass** has the graded events: recall per kind and size, delays, and the LLM
  calls of a day with events. Each tier's ``chance_recall`` is the recall its quiet-pass
  false trips would score by luck in the same event windows: on a sparse symbol that trips
  on every trade, "detected" means little, and this says how little.

Neither pass scores the warm-up (the market's: min(2 h, a quarter of the run)): the
detectors cannot trip while their windows fill, so those hours would only dilute the
false-trip rate; symbol-days count from its end.

The detectors run in process, one :class:`~tripwire.detect.DetectorBank` over every
symbol, fed the market's time-ordered blocks: the same code the pipeline's shard actors
run (a symbol's detectors never see another symbol, so sharding changes nothing).

Markets (``--scenario``): ``realistic`` (the default: :mod:`tripwire.feeds.realistic`),
``default`` (the original scenario generator, :mod:`tripwire.feeds.scenario`, its symbols
put in the tier nearest their trade rate) or an integer: the realistic market with that
seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tripwire.detect.bank import DetectorBank
from tripwire.detect.config import DetectorConfig
from tripwire.detect.evaluate import TripColumns
from tripwire.detect.tier_report import (
    DEFAULT_INCIDENT_COOLDOWN_NS,
    Graded,
    TierReport,
    tier_report,
)
from tripwire.feeds.graded_events import SIZES, size_bucket
from tripwire.model import NS_PER_SECOND, EventKind, EventLabel, SymbolTable, TickBatch, Trips

SCENARIOS = ("realistic", "default")
DEFAULT_SCENARIO = "realistic"
Progress = Callable[[int], None]  # ticks just scored


def parse_scenario(text: str) -> tuple[str, int | None]:
    """``realistic`` | ``default`` | a seed (the realistic market with it).

    >>> parse_scenario("default"), parse_scenario("42")
    (('default', None), ('realistic', 42))
    """
    t = text.strip().lower()
    if t in SCENARIOS:
        return t, None
    try:
        seed = int(t)
    except ValueError:
        raise ValueError(f"--scenario: unknown scenario {text!r} (known: "
                         f"{', '.join(SCENARIOS)}, or a seed >= 0)") from None
    if seed < 0:
        raise ValueError(f"--scenario: a seed must be >= 0, got {seed}")
    return DEFAULT_SCENARIO, seed


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """What to generate: the scenario, its options, and whether events are injected."""

    scenario: str = DEFAULT_SCENARIO
    seed: int | None = None
    nu: float | None = None  # None: the scenario's default
    symbols: int | None = None
    days: float | None = None

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}, "
                             f"got {self.scenario!r}")
        if self.nu is not None and not self.nu > 2:
            raise ValueError(f"--nu must be > 2 (Student-t with a variance), got {self.nu}")


@dataclass(slots=True)
class Market:
    """A market ready to run: symbols, tiers, graded events, blocks, and what it is."""

    symbols: SymbolTable
    tier_of: dict[str, str]
    events: list[Graded]
    labels: list[EventLabel]  # all labels (slow trends included)
    duration_ns: int
    start_ns: int
    warmup_ns: int  # from the start; alarms before it are not scored (windows filling)
    estimated_ticks: int
    batches: Callable[[], Iterator[TickBatch]]
    describe: dict[str, Any]


def build_market(spec: MarketSpec, *, events: bool) -> Market:
    """The market of ``spec``, with its events or without any (``events=False``)."""
    if spec.scenario == "realistic":
        return _realistic(spec, events)
    return _legacy(spec, events)


def _realistic(spec: MarketSpec, events: bool) -> Market:
    from tripwire.feeds.realistic import RealisticConfig, RealisticMarket

    over: dict[str, Any] = {}
    for key, value in (("seed", spec.seed), ("nu", spec.nu), ("n_symbols", spec.symbols),
                       ("days", spec.days)):
        if value is not None:
            over[key] = value
    if not events:
        over["events_per_symbol_day"] = 0
    cfg = RealisticConfig(**over)
    m = RealisticMarket(cfg)
    graded = [Graded(e.label, e.tier, e.size) for e in m.events]
    return Market(
        symbols=m.symbols, tier_of=dict(m.tiers), events=graded, labels=list(m.labels),
        start_ns=cfg.start_ns, duration_ns=cfg.duration_ns,
        warmup_ns=round(m.warmup_s * NS_PER_SECOND),
        estimated_ticks=m.estimated_ticks, batches=m.batches,
        describe={"scenario": "realistic", "seed": cfg.seed, "nu": cfg.nu,
                  "warmup_s": m.warmup_s,
                  "symbols": len(m.symbols), "days": cfg.minutes / 1440,
                  "regimes": list(m.regimes), "tier_counts": cfg.tier_counts,
                  "events_per_symbol_day": cfg.events_per_symbol_day},
    )  # fmt: skip


def _legacy(spec: MarketSpec, events: bool) -> Market:
    from tripwire.feeds.realistic import TIERS
    from tripwire.feeds.scenario import Scenario, default_scenario_config

    cfg = default_scenario_config(spec.seed)
    over: dict[str, Any] = {"events": events}
    if spec.nu is not None:
        over["tail_df"] = spec.nu
    if spec.symbols is not None:
        over["n_symbols"] = spec.symbols
    if spec.days is not None:
        over["duration_s"] = spec.days * 86_400
    cfg = replace(cfg, **over)
    sc = Scenario(cfg)
    rates = np.log([t.rate for t in TIERS])
    tier_of = {p.name: TIERS[int(np.argmin(abs(rates - math.log(p.rate))))].name
               for p in sc.profiles}
    graded = [Graded(lab, tier_of[lab.symbol], snap_size(abs(lab.magnitude)))
              for lab in sc.labels if lab.kind is not EventKind.SLOW_TREND]

    def batches() -> Iterator[TickBatch]:
        for chunk in sc.blocks():
            yield chunk.ticks

    return Market(
        symbols=sc.symbols, tier_of=tier_of, events=graded, labels=list(sc.labels),
        start_ns=cfg.start_ns, duration_ns=cfg.end_ns - cfg.start_ns,
        warmup_ns=round(cfg.effective_warmup_s * NS_PER_SECOND),
        estimated_ticks=sc.estimated_ticks,
        batches=batches,
        describe={"scenario": "default", "seed": cfg.seed, "nu": cfg.tail_df,
                  "warmup_s": cfg.effective_warmup_s,
                  "symbols": cfg.n_symbols, "days": cfg.duration_s / 86_400},
    )  # fmt: skip


def snap_size(size: float) -> float:
    """The ladder rung at or below ``size`` (the smallest rung below it)."""
    below = [s for s in SIZES if s <= size * (1 + 1e-9)]
    return below[-1] if below else SIZES[0]


def run_bank(
    batches: Iterable[TickBatch], n_symbols: int, config: DetectorConfig,
    progress: Progress | None = None,
) -> tuple[Trips, int, dict[str, Any]]:
    """All trips of ``batches`` through one bank; the ticks scored and the bank's counters."""
    bank = DetectorBank(config, n_symbols=n_symbols)
    parts, ticks = [], 0
    for batch in batches:
        res = bank.push(batch)
        if len(res.trips):
            parts.append(res.trips)
        ticks += len(batch)
        if progress is not None:
            progress(len(batch))
    return Trips.concat(parts), ticks, bank.counters()


@dataclass(frozen=True, slots=True)
class PassResult:
    report: TierReport
    ticks: int
    counters: dict[str, Any]


def run_pass(market: Market, config: DetectorConfig, *, incident_cooldown_ns: int =
             DEFAULT_INCIDENT_COOLDOWN_NS, progress: Progress | None = None) -> PassResult:
    trips, ticks, counters = run_bank(market.batches(), len(market.symbols), config, progress)
    # The warm-up is not scored: detectors cannot trip while their windows fill, and
    # counting those hours would dilute the false-trip rate of a short run.
    keep = np.asarray(trips.ts_ns) >= market.start_ns + market.warmup_ns
    trips = TripColumns(ts_ns=trips.ts_ns[keep], symbol_id=trips.symbol_id[keep],
                        metric=trips.metric[keep])
    buckets = [size_bucket(s) for s in SIZES]
    report = tier_report(trips, market.events, market.symbols, market.tier_of,
                         duration_ns=market.duration_ns - market.warmup_ns,
                         incident_cooldown_ns=incident_cooldown_ns, size_buckets=buckets,
                         labels=market.labels)
    return PassResult(report, ticks, counters)


def evaluation_json(spec: MarketSpec, quiet: PassResult | None, events: PassResult | None,
                    describe: dict[str, Any], budget: float = 1.0) -> dict[str, Any]:
    """The one JSON object of a run: per-tier rows (quiet false trips and LLM calls, event
    recall and delays side by side), the recall curve, and the headline figures."""
    q = quiet.report.to_json() if quiet else None
    e = events.report.to_json() if events else None
    tiers = []
    for i, name in enumerate(describe_tiers(quiet, events)):
        row: dict[str, Any] = {"tier": name}
        if q is not None:
            t = q["tiers"][i]
            row.update(symbols=t["symbols"], symbol_days=t["symbol_days"],
                       false_trips_per_symbol_day=t["false_trips_per_symbol_day"],
                       llm_calls_per_symbol_day=t["llm_calls_per_symbol_day"])
        if e is not None:
            t = e["tiers"][i]
            if q is not None:  # what the quiet pass's false trips alone would "detect"
                chance = events.report.tiers[i].chance_recall(
                    q["tiers"][i]["false_trips_per_symbol_day"])
                row["chance_recall"] = None if chance is None else round(chance, 4)
            row.update(symbols=t["symbols"], symbol_days=t["symbol_days"], events=t["events"],
                       detected=t["detected"], recall=t["recall"], delay_s=t["delay_s"],
                       false_trips_per_symbol_day_event_days=t["false_trips_per_symbol_day"],
                       llm_calls_per_symbol_day_event_days=t["llm_calls_per_symbol_day"])
        tiers.append(row)
    out: dict[str, Any] = {"scenario": describe, "tiers": tiers}
    if q is not None:
        out["false_trips_per_symbol_day"] = q["false_trips_per_symbol_day"]
        out["false_trips_per_symbol_day_worst_tier"] = q["false_trips_per_symbol_day_worst_tier"]
        out["llm_calls_per_symbol_day"] = q["llm_calls_per_symbol_day"]
        out["budget"] = budget
        out["budget_ok"] = q["false_trips_per_symbol_day_worst_tier"] <= budget
        out["quiet_ticks"] = quiet.ticks
    if e is not None:
        out["recall"] = e["recall"]
        out["recall_by_tier_kind"] = e["recall_by_tier_kind"]
        out["recall_curve"] = e["recall_curve"]
        out["delay_s_by_tier_kind"] = e["delay_s_by_tier_kind"]
        out["size_buckets"] = e["size_buckets"]
        out["precision"] = e["precision"]
        out["slow_trend_trips"] = e["slow_trend_trips"]
        out["llm_calls_per_symbol_day_event_days"] = e["llm_calls_per_symbol_day"]
        out["event_ticks"] = events.ticks
    return out


def describe_tiers(*passes: PassResult | None) -> list[str]:
    for p in passes:
        if p is not None:
            return [r.tier for r in p.report.tiers]
    return []
