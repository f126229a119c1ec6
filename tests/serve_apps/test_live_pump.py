"""The live job's loop (``serve_apps.jobs.live._pump_chunks``) on the session's Serve app:
chunks reach the data plane through its Ray handle, a chunk over the plane's batch bound
goes in parts, and a stop never drops a chunk already taken from the feed."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from rich.console import Console

from serve_apps.jobs.live import READ_AHEAD_CHUNKS, _pump_chunks, _SourceHeartbeats
from tripwire.feeds.base import FeedChunk
from tripwire.model import TickBatch

SYMBOL = "SOLUSDT"  # one of the session app's symbols


class _Feed:
    """Chunks given up front; counts what the job took from it."""

    source = "test"

    def __init__(self, chunks: list[FeedChunk]) -> None:
        self._chunks = chunks
        self.taken = 0
        self.stopped = False

    async def chunks(self):
        for chunk in self._chunks:
            self.taken += 1
            yield chunk

    def stop(self) -> None:
        self.stopped = True


def _ticks(live_app, n: int, end_ns: int) -> TickBatch:
    sid = live_app.app.spec.table().id(SYMBOL)
    ts = np.arange(end_ns - n * 1_000, end_ns, 1_000, dtype=np.int64)  # 1 us apart
    return TickBatch.from_columns(np.full(n, sid), ts, np.full(n, 150.0), np.ones(n))


def _pump(live_app, feed: _Feed, stop_now: bool) -> dict[str, int]:
    counts = dict.fromkeys(("chunks", "ticks", "accepted", "rejected", "trips", "incidents",
                            "news"), 0)
    asyncio.run(_pump_chunks(feed, live_app.app, counts, {"now": stop_now}, None,
                             Console(quiet=True), _SourceHeartbeats(feed, None)))
    return counts


def _accepted(live_app) -> int:
    return live_app.app.dataplane.stats.remote().result(timeout_s=60)["accepted"]


def test_a_chunk_over_the_batch_bound_goes_in_parts(serve_app):
    """Old code handed the whole chunk over and the plane refused it (max 100,000)."""
    n = 150_000
    before = _accepted(serve_app)
    feed = _Feed([FeedChunk(_ticks(serve_app, n, time.time_ns()))])
    counts = _pump(serve_app, feed, stop_now=False)
    assert counts["ticks"] == counts["accepted"] == n and counts["chunks"] == 1
    assert _accepted(serve_app) - before == n
    assert feed.stopped


def test_a_stop_ingests_every_chunk_already_read_and_reads_a_bounded_number(serve_app):
    now = time.time_ns()
    chunks = [FeedChunk(_ticks(serve_app, 10, now - (20 - i) * 1_000_000)) for i in range(20)]
    feed = _Feed(chunks)
    before = _accepted(serve_app)
    counts = _pump(serve_app, feed, stop_now=True)  # stop after the first chunk
    assert 1 < feed.taken <= 1 + READ_AHEAD_CHUNKS + 1  # read ahead, bounded
    # every chunk taken from the feed reached the plane, none twice
    assert counts["chunks"] == feed.taken and counts["accepted"] == 10 * feed.taken
    assert _accepted(serve_app) - before == 10 * feed.taken
