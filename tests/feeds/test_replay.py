"""Replay feed: ingest -> store -> replay gives the same ticks, paced or as fast as possible."""

from __future__ import annotations

import asyncio
import pickle
import time

import numpy as np
import pytest

from tripwire.feeds.base import FeedChunk
from tripwire.feeds.replay import ReplayFeed
from tripwire.feeds.validate import TickValidator
from tripwire.model import DeadReason, NewsItem, SimClock, SymbolTable, TickBatch
from tripwire.store.ticks import TickStore

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
NAMES = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@pytest.fixture
def store(tmp_path):
    with TickStore(f"chdb://{tmp_path / 'store'}") as s:
        yield s


@pytest.fixture
def symbols() -> SymbolTable:
    return SymbolTable(list(NAMES))


def market(n: int, *, seed: int = 0, step_ns: int = MS) -> TickBatch:
    """Ticks in replay order (time, then symbol name, then trade id), trade ids rising per
    symbol, arrival stamps set: what a live feed hands the sink."""
    rng = np.random.default_rng(seed)
    ts = T0 + (np.arange(n, dtype=np.int64) // 2) * step_ns
    sid = rng.integers(0, len(NAMES), n)
    order = np.lexsort((sid, ts))  # NAMES are in name order, so id order is name order
    ts, sid = ts[order], sid[order]
    return TickBatch.from_columns(
        sid, ts, 100 + rng.random(n), rng.exponential(1.0, n), rng.integers(-1, 2, n),
        np.arange(n, dtype=np.int64) + 1, ts + rng.integers(1, 10**6, n),
    )  # fmt: skip


def collect(feed: ReplayFeed) -> list[FeedChunk]:
    async def run() -> list[FeedChunk]:
        return [chunk async for chunk in feed.chunks()]

    return asyncio.run(run())


def ticks_of(chunks: list[FeedChunk]) -> TickBatch:
    return TickBatch.concat([c.ticks for c in chunks])


def assert_same(got: TickBatch, want: TickBatch, *, recv: bool = True) -> None:
    assert len(got) == len(want)
    for name, col in want.columns().items():
        if name != "recv_ns" or recv:
            assert np.array_equal(getattr(got, name), col), name


def ingest(store: TickStore, symbols: SymbolTable, batches: list[TickBatch]) -> TickBatch:
    """What a live feed and the tick sink do: validate each batch, store the clean ticks."""
    validator = TickValidator(len(symbols), source="test-feed", symbols=symbols)
    clean = []
    for batch in batches:
        checked = validator.validate(batch)
        store.insert_ticks(checked.ticks, symbols, source="test-feed")
        clean.append(checked.ticks)
    return TickBatch.concat(clean)


def test_replay_round_trip_gives_the_ingested_ticks(store, symbols):
    data = market(5_000, seed=1)
    bad = TickBatch.from_columns([0, 1], [T0, T0], [-1.0, np.nan], [1.0, 1.0])  # dead-lettered
    batches = [data.take(slice(i, i + 700)) for i in range(0, len(data), 700)] + [bad]
    stored = ingest(store, symbols, batches)
    assert_same(stored, data)

    feed = ReplayFeed(store.read_ticks, symbols, chunk_rows=1_000, keep_recv_ns=True)
    chunks = collect(feed)
    assert_same(ticks_of(chunks), data)
    assert all(not c.dead for c in chunks)
    assert feed.stats()["accepted"] == 5_000 and feed.stats()["pages"] == 6

    # By default arrival times are the replay's own, stamped as chunks are released.
    fresh = ticks_of(collect(ReplayFeed(store.read_ticks, symbols, chunk_rows=1_000)))
    assert_same(fresh, data, recv=False)
    assert (fresh.recv_ns > data.recv_ns).all() and (np.diff(fresh.recv_ns) >= 0).all()


def test_replay_through_a_pickling_reader_like_a_remote_call(store, symbols):
    # In Ray the reader is a call to the sink actor: arguments and results are pickled.
    data = market(600, seed=2)
    store.insert_ticks(data, symbols)

    def remote(table: SymbolTable, **kw):
        table, kw = pickle.loads(pickle.dumps((table, kw)))
        return pickle.loads(pickle.dumps(store.read_ticks(table, **kw)))

    chunks = collect(ReplayFeed(remote, symbols, chunk_rows=128, keep_recv_ns=True))
    assert_same(ticks_of(chunks), data)
    assert [len(c.ticks) for c in chunks][:4] == [128, 128, 128, 128]


def test_replay_filters_names_and_time(store, symbols):
    data = market(2_000, seed=3)
    store.insert_ticks(data, symbols)
    lo, hi = int(data.ts_ns[400]), int(data.ts_ns[1600])
    feed = ReplayFeed(store.read_ticks, symbols, names=["ETHUSDT"], start_ns=lo, end_ns=hi,
                      chunk_rows=100, keep_recv_ns=True)  # fmt: skip
    want = data.take(np.flatnonzero((data.symbol_id == 1) & (data.ts_ns >= lo) & (data.ts_ns < hi)))
    assert_same(ticks_of(collect(feed)), want)


def test_unknown_symbols_in_the_store_become_dead_letters(store, symbols):
    data = market(300, seed=4)
    store.insert_ticks(data, symbols)
    partial = SymbolTable(["ETHUSDT", "BTCUSDT"])  # SOLUSDT is not known to this feed
    feed = ReplayFeed(store.read_ticks, partial, chunk_rows=50, clock=SimClock(123))
    chunks = collect(feed)
    dead = [d for c in chunks for d in c.dead]
    n_sol = int((data.symbol_id == 2).sum())
    assert len(dead) == n_sol and {d.reason for d in dead} == {DeadReason.UNKNOWN_SYMBOL}
    assert {d.source for d in dead} == {"replay"} and dead[0].ts_ns == 123
    got = ticks_of(chunks)
    assert len(got) == len(data) - n_sol
    assert set(got.symbol_id.tolist()) == {0, 1}
    assert feed.stats()["dead"] == {"unknown_symbol": n_sol}


def test_ticks_stored_twice_replay_once_and_dead_letter_nothing(store, symbols):
    data = market(200, seed=5)
    store.insert_ticks(data, symbols)
    store.insert_ticks(data, symbols)  # a day re-imported by mistake: the store keeps one copy
    chunks = collect(ReplayFeed(store.read_ticks, symbols, chunk_rows=64, keep_recv_ns=True))
    assert_same(ticks_of(chunks), data)
    assert [d for c in chunks for d in c.dead] == []


def test_news_are_replayed_in_time_order_with_the_ticks(store, symbols):
    data = market(1_000, seed=6)
    store.insert_ticks(data, symbols)
    news = [
        NewsItem("before", T0 - 5, "pre-open", ()),
        NewsItem("first-tick", int(data.ts_ns[0]), "at the first tick", ("BTCUSDT",)),
        NewsItem("mid", int(data.ts_ns[333]) + 1, "mid", ("ETHUSDT",)),
        NewsItem("edge", int(data.ts_ns[599]), "on a page edge", ()),
        NewsItem("other", int(data.ts_ns[700]), "not ours", ("DOGEUSDT",)),
        NewsItem("after", int(data.ts_ns[-1]) + 10, "after the close", ()),
    ]
    store.insert_news(news)
    feed = ReplayFeed(store.read_ticks, symbols, chunk_rows=300, news_reader=store.news,
                      keep_recv_ns=True, names=list(NAMES))  # fmt: skip
    chunks = collect(feed)
    assert_same(ticks_of(chunks), data)
    seen = [n.id for c in chunks for n in c.news]
    assert seen == ["before", "first-tick", "mid", "edge", "after"]  # "other" is filtered out
    # Each item comes after every tick older than it and before every tick at or after it.
    released = 0
    for chunk in chunks:
        for item in chunk.news:
            assert (data.ts_ns[:released] < item.ts_ns).all()
            assert (data.ts_ns[released:] >= item.ts_ns).all()
        released += len(chunk.ticks)
    assert feed.stats()["news"] == 5


def test_news_limit_refuses_rather_than_drops(store, symbols):
    store.insert_ticks(market(10), symbols)
    store.insert_news([NewsItem(f"n{i}", T0 + i, "x") for i in range(3)])
    feed = ReplayFeed(store.read_ticks, symbols, news_reader=store.news, news_limit=3)
    with pytest.raises(RuntimeError, match="news_limit=3"):
        collect(feed)


def test_as_fast_as_possible_and_stop(store, symbols):
    # Ten minutes of exchange time, released unpaced; arrival stamps come from the clock.
    data = market(2_000, seed=7, step_ns=600 * MS)
    store.insert_ticks(data, symbols)
    feed = ReplayFeed(store.read_ticks, symbols, chunk_rows=500, clock=SimClock(T0 + 42))
    assert feed.speed is None
    got = ticks_of(collect(feed))
    assert_same(got, data, recv=False)
    assert (got.recv_ns == T0 + 42).all()

    stopping = ReplayFeed(store.read_ticks, symbols, chunk_rows=500)

    async def first_then_stop() -> int:
        n = 0
        async for _chunk in stopping.chunks():
            n += 1
            stopping.stop()
        return n

    assert asyncio.run(first_then_stop()) == 1


def test_paced_replay_takes_at_least_the_scaled_time(store, symbols):
    # 20 s of exchange time at 50x: 0.4 s of wall time. Only a lower bound is asserted.
    data = market(400, seed=8, step_ns=100 * MS)
    assert data.ts_ns[-1] - data.ts_ns[0] == 19_900 * MS
    store.insert_ticks(data, symbols)
    feed = ReplayFeed(store.read_ticks, symbols, chunk_rows=150, speed=50.0)
    started = time.monotonic()
    chunks = collect(feed)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.398 * 0.9
    got = ticks_of(chunks)
    assert_same(got, data, recv=False)
    span_wall = (got.recv_ns[-1] - got.recv_ns[0]) / 1e9
    assert span_wall >= 0.398 * 0.9


def test_bad_arguments():
    syms = SymbolTable(["X"])
    with pytest.raises(ValueError, match="chunk_rows must be an int >= 1"):
        ReplayFeed(lambda *a, **k: None, syms, chunk_rows=0)
    with pytest.raises(ValueError, match="speed must be"):
        ReplayFeed(lambda *a, **k: None, syms, speed=0)
    with pytest.raises(TypeError, match="not the string"):
        ReplayFeed(lambda *a, **k: None, syms, names="X")
