"""The data plane on real Ray: parity with one bank, backpressure bounds, failures, checkpoints."""

from __future__ import annotations

import time

import numpy as np
import pytest
import ray.cloudpickle

from actors.feed import FlowConfig
from actors.pipeline import Pipeline, PipelineConfig
from actors.shard import DetectorShard
from tests.actors import feeds
from tests.actors.feeds import BurstFeed, ListFeed, random_market
from tripwire.detect import DetectorBank, DetectorConfig, MetricConfig
from tripwire.model import DeadReason, SymbolTable, TickBatch

# Ray workers import code by module name; the tests' helpers are shipped by value instead.
ray.cloudpickle.register_pickle_by_value(feeds)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SYMBOLS = SymbolTable([f"S{i:03d}USDT" for i in range(40)])
CONFIG = DetectorConfig(
    returns=MetricConfig(window=100, threshold=5.0),
    volume=MetricConfig(window=50, threshold=8.0, two_sided=False),
    price=MetricConfig(window=100, threshold=8.0),
    cooldown_ns=0,
)


def split(batch: TickBatch, size: int) -> list[TickBatch]:
    return [batch.take(slice(i, i + size)) for i in range(0, len(batch), size)]


def trip_keys(trips) -> list[tuple]:
    return sorted(zip(trips.ts_ns.tolist(), trips.symbol_id.tolist(), trips.metric.tolist(),
                      trips.z.tolist(), strict=True))


def test_pipeline_trips_exactly_like_one_bank(ray_local):
    market = random_market(SYMBOLS, 60_000)
    want = DetectorBank(CONFIG, n_symbols=len(SYMBOLS)).push(market).trips
    flow = FlowConfig(batch_rows=7_000, batch_ms=2.0, max_inflight=3)
    cfg = PipelineConfig(n_shards=3, detector=CONFIG, flow=flow)
    with Pipeline(lambda: ListFeed(SYMBOLS, split(market, 5_000)), SYMBOLS, cfg) as p:
        seen = []
        res = p.run(progress=seen.append, poll_s=0.05)
    assert trip_keys(res.trips) == trip_keys(want) and len(want) > 0
    assert res.feed["ticks_in"] == res.feed["ticks_scored"] == len(market)
    assert res.feed["batches"] >= -(-len(market) // 7_000)  # more when the age cut fires
    assert len(res.anomalies) == len(want)
    assert sum(s["ticks"] for s in res.shards) == len(market)
    assert seen and seen[-1]["state"] in ("running", "done")
    lat = res.latencies_ns["trip"]
    assert len(lat) == len(want) and (lat >= 0).all()


class SlowShard(DetectorShard):
    """A shard that takes 20 ms per batch: two of them score at most ~100k ticks/s."""

    def process(self, ticks, source=""):
        time.sleep(0.02)
        return super().process(ticks, source)


def burst(n_chunks: int = 60, size: int = 1_000) -> list[TickBatch]:
    return split(random_market(SYMBOLS, n_chunks * size, seed=5), size)


def test_replayable_source_is_slowed_not_dropped_and_bounds_hold(ray_local):
    chunks = burst()
    flow = FlowConfig(batch_rows=1_000, batch_ms=1.0, max_inflight=2, buffer_ticks=5_000)
    cfg = PipelineConfig(n_shards=2, detector=CONFIG, flow=flow)
    with Pipeline(lambda: ListFeed(SYMBOLS, chunks), SYMBOLS, cfg, shard_cls=SlowShard) as p:
        res = p.run(poll_s=0.05)
    f = res.feed
    assert f["ticks_scored"] == f["ticks_in"] == 60_000 and f["shed_ticks"] == 0
    assert max(f["inflight_high_water"]) == 2  # reached, never exceeded
    assert f["buffer_high_water"] <= 5_000


def test_live_burst_sheds_to_the_bound_and_counts_every_shed_tick(ray_local):
    # 1,000 ticks every millisecond: 1M ticks/s, ten times what the slow shards can take.
    chunks = burst()
    flow = FlowConfig(batch_rows=1_000, batch_ms=1.0, max_inflight=2, buffer_ticks=5_000)
    cfg = PipelineConfig(n_shards=2, detector=CONFIG, flow=flow)
    feed = lambda: BurstFeed(SYMBOLS, chunks, every_s=0.001)  # noqa: E731
    with Pipeline(feed, SYMBOLS, cfg, shard_cls=SlowShard) as p:
        res = p.run(poll_s=0.05)
        dead = ray.get(p.feed.dead_letters.remote())
    f = res.feed
    assert f["shed_ticks"] > 0 and f["shed_chunks"] > 0
    assert f["ticks_in"] == f["ticks_scored"] + f["shed_ticks"] == 60_000  # none silently lost
    assert f["buffer_high_water"] <= 5_000 and max(f["inflight_high_water"]) <= 2
    shed = [d for d in dead if d.reason == DeadReason.SHED]
    assert len(shed) == f["shed_chunks"]
    assert sum(int(d.raw.split()[0]) for d in shed) == f["shed_ticks"]
    assert "intake buffer full" in shed[0].detail


class BrokenShard(DetectorShard):
    def process(self, ticks, source=""):
        raise RuntimeError("detector exploded")


def test_a_failing_shard_fails_the_run_loudly(ray_local):
    market = random_market(SYMBOLS, 5_000)
    cfg = PipelineConfig(n_shards=1, detector=CONFIG)
    with Pipeline(lambda: ListFeed(SYMBOLS, [market]), SYMBOLS, cfg, shard_cls=BrokenShard) as p:
        with pytest.raises(Exception, match="detector exploded"):
            p.run(poll_s=0.05)


def test_pipeline_checkpoints_resume_on_a_fresh_shard(ray_local):
    market = random_market(SYMBOLS, 20_000)
    first, second = market.take(slice(0, 10_000)), market.take(slice(10_000, None))
    cfg = PipelineConfig(n_shards=1, detector=CONFIG)
    with Pipeline(lambda: ListFeed(SYMBOLS, [first]), SYMBOLS, cfg) as p:
        p.run(poll_s=0.05)
        (blob,) = p.checkpoint()
    resumed = DetectorShard(0, 1, SYMBOLS, CONFIG)
    resumed.restore(blob)
    whole = DetectorShard(0, 1, SYMBOLS, CONFIG)
    whole.process(first)
    assert np.array_equal(resumed.process(second).trips.z, whole.process(second).trips.z)


class Collector:
    """A subscriber actor: what triage will be, for now a list."""

    def __init__(self) -> None:
        self.items: list = []

    def on_anomalies(self, anomalies) -> int:
        self.items.extend(anomalies)
        return len(self.items)

    def ids(self) -> list[str]:
        return [a.id for a in self.items]


def test_a_subscriber_receives_every_anomaly(ray_local):
    market = random_market(SYMBOLS, 30_000)
    collector = ray.remote(Collector).options(num_cpus=0).remote()
    cfg = PipelineConfig(n_shards=2, detector=CONFIG)
    try:
        with Pipeline(lambda: ListFeed(SYMBOLS, split(market, 5_000)), SYMBOLS, cfg,
                      subscriber=collector) as p:
            res = p.run(poll_s=0.05)
        got = ray.get(collector.ids.remote())
    finally:
        ray.kill(collector)
    assert len(res.anomalies) > 0
    assert sorted(got) == sorted(a.id for a in res.anomalies)
