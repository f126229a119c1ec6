"""BatchCutter and IntakeBuffer: size/age cuts, and the buffer's bound for both policies."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from actors.batching import BatchCutter, IntakeBuffer
from tripwire.model import TickBatch


def ticks(n: int, start: int = 0) -> TickBatch:
    ids = np.arange(start, start + n)
    return TickBatch.from_columns(np.zeros(n), ids + 1, np.ones(n), np.ones(n), trade_id=ids)


def test_cuts_by_size_across_chunks_keeping_order_and_every_tick():
    cut = BatchCutter(max_rows=4, max_delay_ms=1_000)
    out = []
    start = 0
    for n in (3, 3, 7, 1):
        out += cut.add(ticks(n, start), now_ns=0)
        start += n
    out.append(cut.flush())
    assert [len(b) for b in out] == [4, 4, 4, 2]
    assert np.concatenate([b.trade_id for b in out]).tolist() == list(range(14))


def test_age_deadline_starts_with_the_first_pending_tick():
    cut = BatchCutter(max_rows=100, max_delay_ms=2)
    assert cut.deadline_ns() is None and not cut.due(10**12)
    cut.add(ticks(1), now_ns=1_000_000)
    cut.add(ticks(1, 1), now_ns=2_500_000)  # a later chunk does not move the deadline
    assert cut.deadline_ns() == 3_000_000
    assert not cut.due(2_999_999) and cut.due(3_000_000)
    assert len(cut.flush()) == 2 and cut.pending == 0


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="batch_rows must be >= 1"):
        BatchCutter(0, 1)
    with pytest.raises(ValueError, match="buffer_ticks must be >= 1"):
        IntakeBuffer(0, live=False)


def test_live_buffer_sheds_and_counts_when_full():
    async def scenario():
        buf = IntakeBuffer(10, live=True)
        accepted = [await buf.put(f"c{i}", 4) for i in range(4)]
        return buf, accepted

    buf, accepted = asyncio.run(scenario())
    assert accepted == [True, True, False, False]
    assert (buf.ticks, buf.shed_ticks, buf.shed_chunks, buf.high_water) == (8, 8, 2, 8)


def test_replayable_buffer_waits_instead_of_shedding():
    async def scenario():
        buf = IntakeBuffer(10, live=False)
        await buf.put("a", 6)
        blocked = asyncio.create_task(buf.put("b", 6))
        await asyncio.sleep(0.05)
        assert not blocked.done()  # it waits for room
        assert await buf.get(1.0) == "a"
        assert await blocked is True
        await buf.close()
        got = [await buf.get(1.0), await buf.get(1.0)]
        return buf, got

    buf, got = asyncio.run(scenario())
    assert got == ["b", None] and buf.exhausted and buf.shed_ticks == 0 and buf.high_water == 6


def test_an_oversized_chunk_still_enters_an_empty_buffer():
    async def scenario():
        buf = IntakeBuffer(5, live=False)
        return await buf.put("big", 50), buf.ticks

    assert asyncio.run(scenario()) == (True, 50)


def test_get_times_out_with_none_while_open():
    async def scenario():
        buf = IntakeBuffer(5, live=False)
        return await buf.get(0.01), buf.exhausted

    assert asyncio.run(scenario()) == (None, False)
