"""The markets the lab replays: what each holds for scoring (labels, event sizes, news).

* ``realistic`` (the default): :class:`tripwire.feeds.realistic.RealisticMarket` with its
  graded events (kind x size ladder per liquidity tier) -- 24 symbols, one day;
* ``default``: the original scenario generator (:mod:`tripwire.feeds.scenario`), each
  labelled event's size read from its magnitude;
* ``store``: a tick-store period (real data: no labels, so no triage table; windows before
  a model's training cutoff are flagged, see :mod:`tripwire.lab.leakage`).

A seed of the lab is the market's seed: seed ``s`` of ``realistic`` is
``RealisticConfig(seed=s)``, so every policy sees the same market for the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tripwire.model import NS_PER_SECOND, EventLabel, NewsItem, SymbolTable, TickBatch

SCENARIOS = ("realistic", "default")


@dataclass(frozen=True, slots=True)
class LabEvent:
    """A labelled event and its unsigned size (fraction), for recall against size."""

    label: EventLabel
    size: float


@dataclass(slots=True)
class LabMarket:
    """One seed's market: replayable ticks, news, labels, and its scored window."""

    name: str
    seed: int
    symbols: SymbolTable
    chunks: Callable[[], Iterator[TickBatch]]
    news: list[NewsItem]
    events: list[LabEvent]
    start_ns: int  # first scored instant (after the warm-up)
    end_ns: int
    warmup_s: float
    describe: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """``scenario`` in :data:`SCENARIOS`; ``symbols``/``days``: None for its defaults."""

    scenario: str = "realistic"
    symbols: int | None = None
    days: float | None = None

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"--scenario must be one of {', '.join(SCENARIOS)}, "
                             f"got {self.scenario!r}")
        if self.symbols is not None and self.symbols < 1:
            raise ValueError(f"--symbols must be >= 1, got {self.symbols}")
        if self.days is not None and not self.days > 0:
            raise ValueError(f"--days must be > 0, got {self.days}")


def build(spec: MarketSpec, seed: int) -> LabMarket:
    """The market of ``spec`` with ``seed``."""
    if spec.scenario == "realistic":
        return _realistic(spec, seed)
    return _default(spec, seed)


def _realistic(spec: MarketSpec, seed: int) -> LabMarket:
    from tripwire.feeds.realistic import RealisticConfig, RealisticMarket

    over: dict[str, Any] = {"seed": seed}
    if spec.symbols is not None:
        over["n_symbols"] = spec.symbols
    if spec.days is not None:
        over["days"] = spec.days
    cfg = RealisticConfig(**over)
    m = RealisticMarket(cfg)
    warm = m.warmup_s
    return LabMarket(
        name="realistic", seed=seed, symbols=m.symbols, chunks=m.batches, news=list(m.news),
        events=[LabEvent(e.label, e.size) for e in m.events],
        start_ns=cfg.start_ns + round(warm * NS_PER_SECOND), end_ns=cfg.end_ns, warmup_s=warm,
        describe={"scenario": "realistic", "symbols": len(m.symbols),
                  "days": cfg.minutes / 1440, "nu": cfg.nu, "regimes": list(m.regimes),
                  "events_per_symbol_day": cfg.events_per_symbol_day})  # fmt: skip


def _default(spec: MarketSpec, seed: int) -> LabMarket:
    from dataclasses import replace

    from tripwire.feeds.scenario import Scenario, default_scenario_config

    cfg = default_scenario_config(seed)
    over: dict[str, Any] = {}
    if spec.symbols is not None:
        over["n_symbols"] = spec.symbols
    if spec.days is not None:
        over["duration_s"] = round(spec.days * 86_400)
    cfg = replace(cfg, **over) if over else cfg
    sc = Scenario(cfg)
    warm = float(cfg.effective_warmup_s)

    def chunks() -> Iterator[TickBatch]:
        for c in sc.blocks():
            yield c.ticks

    return LabMarket(
        name="default", seed=seed, symbols=sc.symbols, chunks=chunks, news=list(sc.news),
        events=[LabEvent(lab, abs(lab.magnitude)) for lab in sc.labels],
        start_ns=cfg.start_ns + round(warm * NS_PER_SECOND), end_ns=cfg.end_ns, warmup_s=warm,
        describe={"scenario": "default", "symbols": cfg.n_symbols,
                  "days": cfg.duration_s / 86_400})  # fmt: skip
