"""TickSink: the tick store's only writer (and, for chdb, its only reader).

chdb allows one process per data directory, so exactly one actor opens the store; writers
send it ticks, anomalies, dead letters, news and labels, and readers (replay, queries) ask
it. Ticks are buffered into large columnar inserts (ClickHouse wants 10k-100k rows per
insert, not one per batch) and flushed when ``flush_rows`` are buffered, when the oldest
buffered tick is older than ``flush_ms``, or on :meth:`flush`.

Inserts are idempotent (:meth:`tripwire.store.ticks.TickStore.insert_ticks`): a trade the
store already holds is not written again, so ingesting the same file twice, or a feed
re-sending after a reconnect, stores each trade once. ``stats()["ticks"]`` counts every
tick flushed (each is in the store afterwards, new or not: what a caller compares with
what it sent), ``stats()["duplicates"]`` those of them the store already held.

The buffer is bounded by ``flush_rows``: a write that fills it inserts before returning, so
a slow store slows its callers (whose in-flight bounds then slow the feed) instead of
growing memory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from actors.runtime import process_rss_mb
from tripwire.model import (
    Anomaly,
    DeadLetter,
    EventLabel,
    NewsItem,
    SymbolTable,
    TickBatch,
)
from tripwire.store.ticks import TickStore


class TickSink:
    def __init__(
        self, url: str, symbols: SymbolTable, *, flush_rows: int = 100_000, flush_ms: int = 1_000
    ) -> None:
        if flush_rows < 1 or flush_ms < 0:
            raise ValueError(f"flush_rows must be >= 1 and flush_ms >= 0, got {flush_rows}, "
                             f"{flush_ms}")
        self.store = TickStore(url)
        self.symbols = symbols
        self.flush_rows = flush_rows
        self.flush_ms = flush_ms
        self._pending: dict[str, list[TickBatch]] = {}  # by source
        self._pending_rows = 0
        self._oldest_ns = 0
        self._counts = {"ticks": 0, "duplicates": 0, "anomalies": 0, "dead_letters": 0,
                        "news": 0, "labels": 0, "inserts": 0, "insert_ms": 0.0}

    # -- writes ----------------------------------------------------------------------------

    def write_ticks(self, ticks: TickBatch, source: str = "") -> int:
        if len(ticks):
            if not self._pending_rows:
                self._oldest_ns = time.monotonic_ns()
            self._pending.setdefault(source, []).append(ticks)
            self._pending_rows += len(ticks)
        self._maybe_flush()
        return self._pending_rows

    def write_anomalies(self, items: Sequence[Anomaly]) -> int:
        return self._count("anomalies", self.store.insert_anomalies(items) if items else 0)

    def write_dead_letters(self, items: Sequence[DeadLetter]) -> int:
        return self._count("dead_letters", self.store.insert_dead_letters(items) if items else 0)

    def write_news(self, items: Sequence[NewsItem]) -> int:
        return self._count("news", self.store.insert_news(items) if items else 0)

    def write_labels(self, items: Sequence[EventLabel]) -> int:
        return self._count("labels", self.store.insert_labels(items) if items else 0)

    def _count(self, key: str, n: int) -> int:
        self._counts[key] += n
        return n

    def _maybe_flush(self) -> None:
        if not self._pending_rows:
            return
        age_ms = (time.monotonic_ns() - self._oldest_ns) / 1e6
        if self._pending_rows >= self.flush_rows or age_ms >= self.flush_ms:
            self.flush()

    def flush(self) -> int:
        """Insert everything buffered; returns the ticks flushed (now all in the store)."""
        done = 0
        for source, parts in self._pending.items():
            batch = TickBatch.concat(parts)
            t0 = time.perf_counter()
            written = self.store.insert_ticks(batch, self.symbols, source=source)
            done += len(batch)
            self._counts["duplicates"] += len(batch) - written
            self._counts["insert_ms"] += (time.perf_counter() - t0) * 1e3
            self._counts["inserts"] += 1
        self._pending.clear()
        self._pending_rows = 0
        self._counts["ticks"] += done
        return done

    # -- reads (the store's other users ask here) -------------------------------------------

    def read_ticks(self, symbols: SymbolTable, **kwargs: Any):
        self.flush()  # a reader sees everything written before its call
        return self.store.read_ticks(symbols, **kwargs)

    def store_symbols(self) -> list[str]:
        self.flush()
        return self.store.symbols()

    def counts(self) -> dict[str, int]:
        self.flush()
        return self.store.counts()

    def symbol_stats(self, **kwargs: Any) -> list[dict]:
        self.flush()
        return self.store.symbol_stats(**kwargs)

    def memory(self) -> dict[str, float]:
        return process_rss_mb()

    def stats(self) -> dict[str, Any]:
        return {**self._counts, "pending_rows": self._pending_rows}

    def close(self) -> dict[str, Any]:
        self.flush()
        self.store.close()
        return self.stats()


class SinkReader:
    """``TickStore.read_ticks`` through the sink actor, for feeds that replay the store.

    Picklable (it holds only the actor handle), so a feed built inside another actor can
    page through a chdb store that only the sink's process may open.
    """

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    def __call__(self, symbols: SymbolTable, **kwargs: Any):
        import ray

        return ray.get(self.sink.read_ticks.remote(symbols, **kwargs))
