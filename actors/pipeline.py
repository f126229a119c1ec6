"""The data plane's wiring: feed -> detector shards -> trips, with the tick sink beside it.

:class:`Pipeline` starts one :class:`~actors.shard.DetectorShard` actor per shard, an
optional :class:`~actors.sink.TickSink` (the tick store's only writer) and a
:class:`~actors.feed.FeedActor` for the feed, all with fractional or zero CPU requests so
the whole plane fits a 2-CPU laptop and spreads unchanged over a cluster. ``run`` waits for
the feed to end, reporting progress, and gathers trips, anomalies, latencies and counters.

>>> cfg = PipelineConfig(n_shards=2)
>>> cfg.flow.max_inflight, cfg.store_url is None
(4, True)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actors.feed import FeedActor, FlowConfig
from actors.runtime import ensure_command_ray, ensure_ray, kill_and_wait, process_rss_mb
from actors.shard import DetectorShard
from tripwire.detect import DetectorConfig
from tripwire.feeds.base import Feed
from tripwire.model import Anomaly, SymbolTable, Trips


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    n_shards: int = 2
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    store_url: str | None = None  # None: no tick store (ticks are scored, not kept)
    sink_flush_rows: int = 100_000
    sink_flush_ms: int = 1_000
    shard_cpus: float = 0.0  # Ray CPU requests: 0 lets everything share a small machine
    feed_cpus: float = 0.0
    sink_cpus: float = 0.0
    # Symbols whose prices are probabilities (a prediction market's instrument provider):
    # the shards score them on log-odds changes (tripwire.detect.transform).
    probability_symbols: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.n_shards, bool) or not isinstance(self.n_shards, int) or not (
            1 <= self.n_shards <= 1024
        ):
            raise ValueError(f"pipeline.n_shards must be an integer in [1, 1024], got "
                             f"{self.n_shards!r}")
        for key in ("shard_cpus", "feed_cpus", "sink_cpus"):
            v = getattr(self, key)
            if not isinstance(v, int | float) or v < 0:
                raise ValueError(f"pipeline.{key} must be a number >= 0, got {v!r}")


@dataclass
class PipelineResult:
    feed: dict[str, Any]
    shards: list[dict[str, Any]]
    sink: dict[str, Any] | None
    trips: Trips
    anomalies: list[Anomaly]
    latencies_ns: dict[str, np.ndarray]
    wall_s: float

    @property
    def ticks_per_s(self) -> float:
        return self.feed["ticks_scored"] / self.wall_s if self.wall_s > 0 else 0.0


class Pipeline:
    """Feed -> shards (-> sink). Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        make_feed: Callable[[], Feed],
        symbols: SymbolTable,
        config: PipelineConfig | None = None,
        *,
        subscriber: Any | None = None,
        address: str | None = None,
        data_dir: str | None = None,
        shard_cls: type[DetectorShard] = DetectorShard,
    ) -> None:
        self.make_feed = make_feed
        self.symbols = symbols
        self.config = config or PipelineConfig()
        self.subscriber = subscriber
        self.address = address
        self.data_dir = data_dir  # a command's: a local Ray is private to it (runtime doc)
        self.shard_cls = shard_cls  # a subclass may add instrumentation (tests slow one down)
        self.shards: list[Any] = []
        self.sink: Any | None = None
        self.feed: Any | None = None

    def start(self) -> Pipeline:
        import ray

        if self.data_dir is not None:
            ensure_command_ray(self.data_dir, self.address)
        else:  # a caller that started Ray itself, or a test session's
            ensure_ray(self.address)
        cfg = self.config
        shard_cls = ray.remote(self.shard_cls).options(num_cpus=cfg.shard_cpus, max_concurrency=1)
        self.shards = [
            shard_cls.remote(i, cfg.n_shards, self.symbols, cfg.detector.to_dict(),
                             probability_symbols=cfg.probability_symbols)
            for i in range(cfg.n_shards)
        ]
        if cfg.store_url is not None:
            from actors.sink import TickSink  # only a run with a store needs its client

            sink_cls = ray.remote(TickSink).options(num_cpus=cfg.sink_cpus)
            self.sink = sink_cls.remote(
                cfg.store_url, self.symbols, flush_rows=cfg.sink_flush_rows,
                flush_ms=cfg.sink_flush_ms,
            )
        feed_cls = ray.remote(FeedActor).options(num_cpus=cfg.feed_cpus, max_concurrency=64)
        self.feed = feed_cls.remote(
            self.make_feed, self.symbols, self.shards, self.sink, cfg.flow, self.subscriber
        )
        # Construction errors (bad store URL, bad config) surface here, not mid-run.
        ray.get([s.ping.remote() for s in self.shards] + [self.feed.stats.remote()])
        if self.sink is not None:
            ray.get(self.sink.stats.remote())
        return self

    def run(
        self, progress: Callable[[dict[str, Any]], None] | None = None, poll_s: float = 0.25
    ) -> PipelineResult:
        """Run the feed to its end; ``progress`` gets the feed actor's stats as it goes."""
        import ray

        if self.feed is None:
            self.start()
        t0 = time.perf_counter()
        done = self.feed.run.remote()
        while True:
            ready, _ = ray.wait([done], timeout=poll_s)
            if progress is not None:
                progress(ray.get(self.feed.stats.remote()))
            if ready:
                break
        feed_stats = ray.get(done)  # raises the feed's error, if it failed
        if self.sink is not None:
            ray.get(self.sink.flush.remote())
        wall = time.perf_counter() - t0
        return PipelineResult(
            feed=feed_stats,
            shards=ray.get([s.stats.remote() for s in self.shards]),
            sink=ray.get(self.sink.stats.remote()) if self.sink is not None else None,
            trips=ray.get(self.feed.trips.remote()),
            anomalies=ray.get(self.feed.anomalies.remote()),
            latencies_ns=ray.get(self.feed.latencies.remote()),
            wall_s=wall,
        )

    def stop(self) -> None:
        import ray

        if self.feed is not None:
            ray.get(self.feed.stop.remote())

    def checkpoint(self) -> list[bytes]:
        """Every shard's detector state, in shard order."""
        import ray

        return ray.get([s.checkpoint.remote() for s in self.shards])

    def memory(self) -> dict[str, dict[str, float]]:
        """Resident memory of every actor of the pipeline and of this driver, MiB."""
        import ray

        out = {"driver": process_rss_mb()}
        named = [(f"shard{i}", s) for i, s in enumerate(self.shards)] + [("feed", self.feed)]
        if self.sink is not None:
            named.append(("sink", self.sink))
        for name, handle in named:
            if handle is not None:
                out[name] = ray.get(handle.memory.remote())
        return out

    def close(self) -> None:
        """Flush and close the store, then end every actor this pipeline started."""
        import ray

        if self.sink is not None:
            try:
                ray.get(self.sink.close.remote())
            finally:
                kill_and_wait(self.sink)  # the store's files are free once close returns
        for handle in [self.feed, *self.shards]:
            if handle is not None:
                ray.kill(handle)
        self.feed, self.shards, self.sink = None, [], None

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
