"""Batch cutting and the bounded intake buffer of a feed actor (plain Python, no Ray).

:class:`BatchCutter` turns a stream of tick chunks of any size into batches of at most
``max_rows``, cut by size or by age (whichever comes first), so a quiet market still gets
its ticks scored within ``max_delay_ms`` and a flood gets large, cheap batches.

:class:`IntakeBuffer` sits between a feed and the dispatcher. It is bounded in ticks. When
it is full, a replayable source (scenario, CSV, replay) waits, which slows it down without
loss; a live source (an exchange stream that will not wait) has the chunk shed, and the
shed ticks are counted and reported as a dead letter, never dropped silently.
"""

from __future__ import annotations

import asyncio
from collections import deque

from tripwire.model import NS_PER_MS, TickBatch


class BatchCutter:
    """Accumulates ticks; hands out batches of ``max_rows`` or whatever is due by age.

    >>> from tripwire.model import TickBatch
    >>> cut = BatchCutter(max_rows=3, max_delay_ms=5)
    >>> b = TickBatch.from_columns([0] * 4, [1, 2, 3, 4], [1.0] * 4, [1.0] * 4)
    >>> [len(x) for x in cut.add(b, now_ns=0)], cut.pending
    ([3], 1)
    >>> cut.due(now_ns=4_000_000), cut.due(now_ns=5_000_000), len(cut.flush())
    (False, True, 1)
    """

    def __init__(self, max_rows: int, max_delay_ms: float) -> None:
        if max_rows < 1 or max_delay_ms < 0:
            raise ValueError(
                f"batch_rows must be >= 1 and batch_ms >= 0, got {max_rows}, {max_delay_ms}"
            )
        self.max_rows = max_rows
        self.max_delay_ns = int(max_delay_ms * NS_PER_MS)
        self._parts: list[TickBatch] = []
        self._rows = 0
        self._first_ns = 0

    @property
    def pending(self) -> int:
        return self._rows

    def add(self, ticks: TickBatch, now_ns: int) -> list[TickBatch]:
        """Buffer ``ticks``; return the full batches this completes."""
        if len(ticks) == 0:
            return []
        if self._rows == 0:
            self._first_ns = now_ns
        self._parts.append(ticks)
        self._rows += len(ticks)
        out = []
        while self._rows >= self.max_rows:
            whole = TickBatch.concat(self._parts) if len(self._parts) > 1 else self._parts[0]
            out.append(whole.take(slice(0, self.max_rows)))
            rest = whole.take(slice(self.max_rows, None))
            self._parts = [rest] if len(rest) else []
            self._rows = len(rest)
            self._first_ns = now_ns
        return out

    def due(self, now_ns: int) -> bool:
        return self._rows > 0 and now_ns - self._first_ns >= self.max_delay_ns

    def deadline_ns(self) -> int | None:
        """When the pending ticks become due (None when nothing is pending)."""
        return self._first_ns + self.max_delay_ns if self._rows else None

    def flush(self) -> TickBatch:
        whole = TickBatch.concat(self._parts)
        self._parts, self._rows = [], 0
        return whole


class IntakeBuffer:
    """A FIFO of feed chunks bounded by their tick count (see the module docstring)."""

    def __init__(self, max_ticks: int, *, live: bool) -> None:
        if max_ticks < 1:
            raise ValueError(f"buffer_ticks must be >= 1, got {max_ticks}")
        self.max_ticks = max_ticks
        self.live = live
        self._items: deque = deque()
        self._ticks = 0
        self._closed = False
        self._cond = asyncio.Condition()
        self.shed_ticks = 0
        self.shed_chunks = 0
        self.high_water = 0

    @property
    def ticks(self) -> int:
        return self._ticks

    async def put(self, item, n_ticks: int) -> bool:
        """Queue ``item``. Returns False when it was shed (live source, buffer full)."""
        async with self._cond:
            # An item bigger than the whole bound is still taken into an empty buffer,
            # otherwise a replayable source could never make progress.
            while self._ticks and self._ticks + n_ticks > self.max_ticks:
                if self.live:
                    self.shed_ticks += n_ticks
                    self.shed_chunks += 1
                    return False
                await self._cond.wait()
            self._items.append((item, n_ticks))
            self._ticks += n_ticks
            self.high_water = max(self.high_water, self._ticks)
            self._cond.notify_all()
            return True

    async def get(self, timeout_s: float | None = None):
        """Next item, or None at the end (closed and empty) or on timeout."""
        async with self._cond:
            if not self._items and not self._closed:
                try:
                    await asyncio.wait_for(self._cond.wait(), timeout_s)
                except TimeoutError:
                    return None
            if not self._items:
                return None
            item, n = self._items.popleft()
            self._ticks -= n
            self._cond.notify_all()
            return item

    @property
    def exhausted(self) -> bool:
        return self._closed and not self._items

    async def close(self) -> None:
        async with self._cond:
            self._closed = True
            self._cond.notify_all()
