"""The engine's step: the same trips give the same incidents however the stream is cut, the
venue step moves the market clock by one rule, and the drivers (the backtest and the live
data plane) build equal incidents for the same trip."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from actors.shard import DetectorShard
from tripwire.engine import Engine, LocalDetectors, MarketState, Venue, segments
from tripwire.engine.step import run_inline, sub_batches
from tripwire.execution.paper import PaperBroker
from tripwire.feeds.scenario import Scenario, ScenarioConfig
from tripwire.model import SimClock, SymbolTable, SystemClock, TickBatch

S = 1_000_000_000
SMALL = ScenarioConfig(seed=3, n_symbols=6, duration_s=4 * 3600,
                       events_per_kind={"fat_finger": 2, "news_shock": 2,
                                        "liquidation_cascade": 1})


def _engine(sc: Scenario) -> Engine:
    market = MarketState(sc.symbols)
    market.on_news(sc.news)
    return Engine(market, LocalDetectors(DetectorShard(0, 1, sc.symbols, id_seed=3)))


def _incidents(seconds: float | None, exclude: frozenset = frozenset({"id"})) -> list[dict]:
    """The small scenario through a fresh engine, cut in ``seconds`` (None: whole blocks)."""
    sc = Scenario(SMALL)
    engine, out = _engine(sc), []
    for chunk in sc.blocks():
        parts = [chunk.ticks] if seconds is None else sub_batches(chunk.ticks, seconds)
        for batch in parts:
            out += run_inline(engine.step(batch))
    # The trip's own id numbers the detector's batches; everything else is the market's.
    return [i.model_dump(mode="json", exclude=set(exclude)) for i in out]


@pytest.fixture(scope="module")
def five_seconds() -> list[dict]:
    return _incidents(5)


def test_the_same_stream_cut_differently_gives_the_same_incidents(five_seconds):
    assert len(five_seconds) >= 3 and all(i["market"] for i in five_seconds)
    # The detector's snapshot (``recent``) holds fewer ticks when a batch ends near a trip
    # (the native shard's business, not the market's); everything else is the market's.
    market_only = frozenset({"id", "recent"})
    want = [{k: v for k, v in i.items() if k not in market_only} for i in five_seconds]
    assert _incidents(None, market_only) == want  # 60-second blocks
    assert _incidents(1.7, market_only) == want


def test_segments_cut_at_each_trip_time_even_out_of_order():
    b = TickBatch.from_columns([0, 1, 0, 1], [5, 3, 9, 12], [1.0, 2.0, 3.0, 4.0], [1] * 4)
    got = [(p.ts_ns.tolist(), t) for p, t in segments(b, [5, 9])]
    assert got == [([5, 3], 5), ([9], 9), ([12], None)]
    ordered = TickBatch.from_columns([0, 0, 0], [1, 5, 9], [1.0, 2.0, 3.0], [1] * 3)
    assert [(p.ts_ns.tolist(), t) for p, t in segments(ordered, [5])] == [([1, 5], 5),
                                                                           ([9], None)]


def test_the_venue_step_moves_market_time_by_one_rule():
    syms = SymbolTable(["A"])
    clock = SimClock(0)
    paper = PaperBroker(syms, clock)
    venue = Venue(paper, None, clock)
    venue.step(TickBatch.from_columns([0, 0], [10 * S, 20 * S], [1.0, 1.1], [1, 1]))
    assert clock.now_ns() == 20 * S  # the latest tick the venue took
    venue.step(TickBatch.from_columns([0], [15 * S], [1.2], [1]))  # late: refused
    assert clock.now_ns() == 20 * S and paper.refused_rows == 1
    venue.step(TickBatch.from_columns([0], [25 * S], [1.3], [1]), until_ns=30 * S)
    assert clock.now_ns() == 30 * S  # a replay: the segment's end over every symbol
    venue.step(TickBatch.from_columns([0], [26 * S], [1.3], [1]), until_ns=1)
    assert clock.now_ns() == 30 * S  # never back
    wall = SystemClock()
    Venue(PaperBroker(syms, wall), None, wall).step(
        TickBatch.from_columns([0], [5 * S], [1.0], [1]))  # live: the wall clock is its own


def test_the_backtest_and_the_data_plane_build_equal_incidents(ray_local, migrated_db,
                                                               five_seconds):
    """One trip, two drivers: the backtest's replay (in process) and the live data plane
    (Ray shard actors, market time) hand the decisions the same incident."""
    from actors.backtest import ShardConfig, ShardData, ShardSpec, _llm_config, _Replay
    from actors.dataplane import DataPlane, DataPlaneConfig
    from tripwire.store.pg_decisions import PgDecisionStore

    sc = Scenario(SMALL)
    spec = ShardSpec("all", tuple(sc.symbols.names), SMALL.start_ns,
                     SMALL.start_ns + int(SMALL.duration_s * S), seed=3)
    config = ShardConfig()
    replay = _Replay(spec, config, ShardData(sc.symbols, (c.ticks for c in sc.blocks()),
                                             list(sc.news)), _llm_config(config))
    asyncio.run(replay.run())
    backtest = [inc.model_dump(mode="json", exclude={"id"}) for inc, _ in replay.results]

    handed: list = []

    async def on_incidents(incidents, trace):
        handed.extend(incidents)

    async def live():
        store = await PgDecisionStore.connect(migrated_db)
        plane = DataPlane(sc.symbols, DataPlaneConfig(n_shards=1, market_time=True,
                                                      source="scenario"), store, on_incidents)
        await asyncio.to_thread(plane.start)
        news = sorted(sc.news, key=lambda n: n.ts_ns)
        try:
            for chunk in Scenario(SMALL).blocks():
                for batch in sub_batches(chunk.ticks):
                    end = int(batch.ts_ns[-1])
                    due = [n for n in news if n.ts_ns <= end]
                    news = news[len(due):]
                    if due:
                        await plane.on_news(due)
                    await plane.ingest(batch, end)
        finally:
            await plane.close()
            await store.close()

    asyncio.run(live())
    plane = [inc.model_dump(mode="json", exclude={"id"}) for inc in handed]
    assert plane and plane == backtest
    assert plane == five_seconds
    assert np.isfinite([i["z"] for i in plane]).all()


def test_the_engine_imports_no_runtime_layer():
    import subprocess
    import sys

    code = ("import sys, tripwire.engine, tripwire.engine.parity; print(sorted({m.split('.')[0] "
            "for m in sys.modules} & {'ray', 'langgraph', 'graphs', 'actors', 'serve_apps'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
