"""The engine's detectors port over Ray :class:`~actors.shard.DetectorShard` actors.

:class:`RayDetectors` is the :class:`tripwire.engine.Detectors` port of every mode that
scores on shard actors: the live data plane (:class:`actors.dataplane.DataPlane`, which adds
restarts, checkpoints and dead letters) and the parity command's live leg
(``serve_apps.jobs.parity_live``). One copy: a batch is routed by
:func:`~actors.shard.routing_table`, one ``process`` call per shard and batch, concurrently;
the trips come back in shard order.

Self-healing (``max_restarts`` > 0): every ``checkpoint_every_batches`` batches or
``checkpoint_every_s`` seconds (whichever first) a shard returns its detector bank's
checkpoint with a batch's result, and the port keeps the latest one per shard. A restarted
shard refuses to score until it is restored (:meth:`RayDetectors.recover`: on the next batch
or from the owner's heartbeat); ``on_restart`` is told what was lost. Process calls are never
retried by Ray (``max_task_retries=0``): a retry could reach the new incarnation before its
restore; the shard also ignores a batch sequence number it has applied already.

Failures: with ``on_error`` a shard's failed part is handed to it (the data plane dead-letters
the ticks: stored, not scored) and the other shards' trips still count; without it the first
failure is raised (the parity leg fails loudly).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.shard import DetectorShard, ShardNotRestored, routing_table
from tripwire.model import Anomaly, SymbolTable, TickBatch, Trips

COUNTERS = ("shard_errors", "shard_restarts", "shard_restores_empty", "ticks_lost_to_restarts",
            "checkpoints", "checkpoint_bytes")


@dataclass
class ShardState:
    """The port's memory of one shard: its last checkpoint and what came after it."""

    next_seq: int = 0
    checkpoint: bytes | None = None
    checkpoint_seq: int = -1
    checkpoint_at: float = 0.0  # time.monotonic() when it was taken
    batches_since: int = 0  # batches applied after the checkpoint
    ticks_since: int = 0  # ticks scored after the checkpoint (lost to the windows on a crash)
    restarts: int = 0


@dataclass(frozen=True, slots=True)
class Restart:
    """A restarted shard restored by :meth:`RayDetectors.recover` (what its owner records)."""

    shard: int
    restarts: int
    checkpoint_seq: int  # -1: no checkpoint yet, it started empty
    ticks_lost: int  # scored after the checkpoint: missing from its windows (still stored)


OnError = Callable[[int, TickBatch, BaseException], Awaitable[None]]
OnRestart = Callable[[Restart], Awaitable[None]]


class RayDetectors:
    """The :class:`tripwire.engine.Detectors` port over ``n_shards`` shard actors.

    ``source`` labels the batches (the shards' anomalies carry it). ``checkpoint_every_*``
    None: no checkpoints (a shard that cannot restart has nothing to restore). ``counts``:
    the mapping the counters (:data:`COUNTERS`) are kept in (the owner's, so its stats
    keep their names); ``on_trips`` gets each shard result's trips (kept for evaluation).
    """

    def __init__(self, symbols: SymbolTable, n_shards: int, detector: Any, *,
                 source: str, max_restarts: int = 0, id_seed: int | None = None,
                 probability_symbols: Iterable[str] = (),
                 checkpoint_every_batches: int | None = None,
                 checkpoint_every_s: float | None = None,
                 on_error: OnError | None = None, on_restart: OnRestart | None = None,
                 on_trips: Callable[[Trips], None] | None = None,
                 counts: MutableMapping[str, int] | None = None) -> None:
        import ray

        # max_task_retries=0: a process call in flight when the actor dies fails (its ticks
        # are the owner's to record); a retry could reach the new incarnation before its
        # restore.
        shard_cls = ray.remote(DetectorShard).options(
            num_cpus=0, max_concurrency=1, max_restarts=max_restarts, max_task_retries=0)
        probability = tuple(probability_symbols)
        self.shards = [shard_cls.remote(i, n_shards, symbols, detector,
                                        id_seed=None if id_seed is None else id_seed + i,
                                        probability_symbols=probability)
                       for i in range(n_shards)]
        self.routing = routing_table(symbols, n_shards)
        self.source, self.max_restarts = source, max_restarts
        self.every_batches, self.every_s = checkpoint_every_batches, checkpoint_every_s
        self.on_error, self.on_restart, self.on_trips = on_error, on_restart, on_trips
        self.counts = counts if counts is not None else {}
        for key in COUNTERS:
            self.counts.setdefault(key, 0)
        self.state = [ShardState(checkpoint_at=time.monotonic()) for _ in range(n_shards)]
        self._restore_lock = asyncio.Lock()  # a batch and a heartbeat both may restore

    def wait_ready(self) -> None:
        """Block until every shard answers (construction errors surface here)."""
        import ray

        ray.get([s.ping.remote() for s in self.shards])

    def close(self) -> None:
        import ray

        for s in self.shards:
            ray.kill(s)
        self.shards = []

    # -- the port ----------------------------------------------------------------------------

    async def process(self, batch: TickBatch) -> list[Anomaly]:
        if not len(batch):
            return []
        shard = self.routing[batch.symbol_id]
        parts = [(int(s), batch.take(np.flatnonzero(shard == s))) for s in np.unique(shard)]
        results = await asyncio.gather(*(self._process(s, part) for s, part in parts),
                                       return_exceptions=True)
        anomalies: list[Anomaly] = []
        for (s, part), res in zip(parts, results, strict=True):
            if isinstance(res, BaseException):
                if self.on_error is None or not isinstance(res, Exception):
                    raise res
                self.counts["shard_errors"] += 1  # the ticks are the owner's to record
                await self.on_error(s, part, res)
                continue
            anomalies.extend(res.anomalies)
            if self.on_trips is not None:
                self.on_trips(res.trips)
        return anomalies

    def _due(self, st: ShardState) -> bool:
        if self.every_batches is None and self.every_s is None:
            return False
        return ((self.every_batches is not None and st.batches_since + 1 >= self.every_batches)
                or (self.every_s is not None
                    and time.monotonic() - st.checkpoint_at >= self.every_s))

    async def _process(self, s: int, part: TickBatch) -> Any:
        """One shard's part of a batch, restoring the shard first if Ray restarted it."""
        st = self.state[s]
        for _ in range(2):  # at most one restore per batch: a second refusal is a failure
            try:
                res = await self.shards[s].process.remote(part, self.source, st.next_seq,
                                                          self._due(st))
            except Exception as exc:
                if not is_not_restored(exc):
                    raise
                await self.recover(s)
                continue
            st.next_seq += 1
            if res.checkpoint is not None:
                self._checkpointed(st, res.checkpoint, st.next_seq - 1)
            else:
                st.batches_since += 1
                st.ticks_since += res.ticks
            return res
        raise ShardNotRestored(f"shard {s} still refuses to score after a restore")

    def _checkpointed(self, st: ShardState, blob: bytes, seq: int) -> None:
        st.checkpoint, st.checkpoint_seq = blob, seq
        st.checkpoint_at, st.batches_since, st.ticks_since = time.monotonic(), 0, 0
        self.counts["checkpoints"] += 1
        self.counts["checkpoint_bytes"] = len(blob)  # the latest one's size (bounded by the bank)

    # -- health ------------------------------------------------------------------------------

    async def recover(self, s: int) -> bool:
        """Hand shard ``s`` its last checkpoint if it is a restarted incarnation waiting for
        one; count the restart and tell ``on_restart``. True when this call restored it."""
        async with self._restore_lock:
            st = self.state[s]
            if not await self.shards[s].recover.remote(st.checkpoint):
                return False
            st.restarts += 1
            lost, st.ticks_since, st.batches_since = st.ticks_since, 0, 0
            st.checkpoint_at = time.monotonic()
            self.counts["shard_restarts"] += 1
            self.counts["ticks_lost_to_restarts"] += lost
            if st.checkpoint is None:
                self.counts["shard_restores_empty"] += 1
            if self.on_restart is not None:
                await self.on_restart(Restart(s, st.restarts, st.checkpoint_seq, lost))
            return True

    def states(self) -> list[dict[str, Any]]:
        """Per shard: restarts, the checkpoint's batch and size, what came after it."""
        return [{"shard": i, "restarts": st.restarts, "checkpoint_seq": st.checkpoint_seq,
                 "checkpoint_bytes": len(st.checkpoint or b""), "next_seq": st.next_seq,
                 "batches_since_checkpoint": st.batches_since,
                 "ticks_since_checkpoint": st.ticks_since} for i, st in enumerate(self.state)]


def is_not_restored(exc: BaseException) -> bool:
    """A shard's ShardNotRestored, as Ray delivers it (a RayTaskError subclassing it, or
    wrapping it as its cause)."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, ShardNotRestored):
            return True
        seen = getattr(seen, "cause", None) or seen.__cause__
    return False
