"""Small feeds for pipeline tests: a replayable list of batches, and a live burst."""

from __future__ import annotations

import asyncio

import numpy as np

from tripwire.feeds.base import FeedChunk, IterableFeed
from tripwire.model import SymbolTable, TickBatch


def random_market(symbols: SymbolTable, n: int, seed: int = 1, start_ts: int = 1) -> TickBatch:
    """Interleaved random walks with a few fat fingers, time-ordered, consecutive ids."""
    rng = np.random.default_rng(seed)
    sid = rng.integers(0, len(symbols), n).astype(np.int32)
    ts = start_ts + np.arange(n, dtype=np.int64) * 1_000
    steps = 1e-4 * rng.standard_normal(n)
    price = 100.0 * np.exp(np.cumsum(steps))
    price[rng.integers(1_000, n, max(1, n // 5_000))] *= 0.9
    return TickBatch.from_columns(sid, ts, price, rng.exponential(1.0, n), trade_id=np.arange(n))


class ListFeed(IterableFeed):
    """Replays fixed batches (a replayable source: it can be slowed without loss)."""

    source = "list"

    def __init__(self, symbols: SymbolTable, batches: list[TickBatch], **kw) -> None:
        super().__init__(**kw)
        self.symbols = symbols
        self.batches = batches

    def iter_chunks(self):
        for b in self.batches:
            yield FeedChunk(b)

    def stats(self) -> dict:
        return {"batches": len(self.batches)}


class BurstFeed:
    """A live source: pushes a chunk every ``every_s`` whether or not anyone keeps up, as an
    exchange does in a cascade."""

    source = "burst"
    live = True

    def __init__(self, symbols: SymbolTable, batches: list[TickBatch], every_s: float) -> None:
        self.symbols = symbols
        self.batches = batches
        self.every_s = every_s

    async def chunks(self):
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, b in enumerate(self.batches):
            yield FeedChunk(b)
            await asyncio.sleep(max(0.0, start + (i + 1) * self.every_s - loop.time()))

    def stats(self) -> dict:
        return {}
