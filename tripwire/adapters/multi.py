"""Several live sources in one process as one feed.

:class:`MultiFeed` runs every feed's ``chunks()`` concurrently and hands their chunks on as
they come, with each feed's symbol ids moved into one table (symbols in source order). A
symbol name two sources share is refused at construction (naming both sources): the
detectors keep per-symbol state, and two venues' prices of "BTCUSDT" are two series. Each
source keeps its own stats and heartbeat (:meth:`MultiFeed.heartbeats`: component
``feed:<source>`` -> last message time), so the watchdog sees one silent venue among
several. One feed failing ends the whole feed with its error: a partial market view must
not pass for a whole one (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from tripwire.feeds.base import FeedChunk
from tripwire.model import SymbolTable


class MultiFeed:
    """Chunks of several feeds, merged as they arrive, symbol ids remapped."""

    def __init__(self, feeds: Sequence[Any], queue_chunks: int = 64) -> None:
        if len(feeds) < 1:
            raise ValueError("MultiFeed needs at least one feed")
        self.feeds = list(feeds)
        self.source = "+".join(f.source for f in self.feeds)
        self.live = any(getattr(f, "live", False) for f in self.feeds)
        owner: dict[str, str] = {}
        self.symbols = SymbolTable()
        self._maps: list[np.ndarray] = []
        for f in self.feeds:
            ids = []
            for name in f.symbols.names:
                if name in owner:
                    raise ValueError(
                        f"symbol {name} comes from both {owner[name]} and {f.source}: "
                        "give one of them other symbols"
                    )
                owner[name] = f.source
                ids.append(self.symbols.add(name))
            self._maps.append(np.asarray(ids, dtype=np.int32))
        self._queue: asyncio.Queue | None = None
        self._queue_chunks = queue_chunks
        self._chunks = dict.fromkeys((f.source for f in self.feeds), 0)

    async def chunks(self) -> AsyncIterator[FeedChunk]:
        """Every feed's chunks until all end; the first feed error is raised."""
        self._queue = queue = asyncio.Queue(self._queue_chunks)  # bounded: backpressure
        done = object()
        tasks = [
            asyncio.create_task(self._pump(i, f, queue, done), name=f"multi {f.source}")
            for i, f in enumerate(self.feeds)
        ]
        running = len(tasks)
        try:
            while running:
                item = await queue.get()
                if item is done:
                    running -= 1
                    continue
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.stop()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(self, i: int, feed: Any, queue: asyncio.Queue, done: object) -> None:
        try:
            async with contextlib.aclosing(feed.chunks()) as stream:
                async for chunk in stream:
                    self._chunks[feed.source] += 1
                    await queue.put(self._remap(i, chunk))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the consumer, which raises it
            await queue.put(exc)
        finally:
            await queue.put(done)

    def _remap(self, i: int, chunk: FeedChunk) -> FeedChunk:
        m = self._maps[i]
        ticks = chunk.ticks
        if len(ticks):
            ticks = replace(ticks, symbol_id=m[ticks.symbol_id])
        gaps = [replace(g, symbol_id=int(m[g.symbol_id])) for g in chunk.gaps]
        return replace(chunk, ticks=ticks, gaps=gaps)

    def stop(self) -> None:
        for f in self.feeds:
            if hasattr(f, "stop"):
                f.stop()

    async def aclose(self) -> None:
        self.stop()
        for f in self.feeds:
            if hasattr(f, "aclose"):
                await f.aclose()

    def heartbeats(self) -> dict[str, int]:
        """``feed:<source>`` -> the source's last message time (ns, 0 before the first)."""
        beats: dict[str, int] = {}
        for f in self.feeds:
            if hasattr(f, "heartbeats"):
                beats.update(f.heartbeats())
            else:
                beats[f"feed:{f.source}"] = int(f.stats().get("last_message_ns", 0))
        return beats

    def stats(self) -> dict[str, Any]:
        per = {f.source: f.stats() for f in self.feeds}
        total = {
            key: sum(int(s.get(key, 0)) for s in per.values())
            for key in ("messages", "ticks", "reconnects", "gaps", "missing_trade_ids")
        }
        return {"source": self.source, **total, "heartbeats": self.heartbeats(), "sources": per}
