"""Tick store conformance: every test runs against each backend the machine can provide.

Backend "chdb" is the embedded ClickHouse engine in a fresh temp directory per test. chdb
hosts one data directory per process, but a new directory opens fine once every client on
the previous one is closed, so per-test directories work and keep tests independent (the
store fixture always closes). There is no ClickHouse server on this machine, so the HTTP
backend is covered by the URL, redaction and connection-error tests only.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tripwire.model import (
    Anomaly,
    DeadLetter,
    DeadReason,
    EventKind,
    EventLabel,
    Metric,
    NewsItem,
    RecentTicks,
    SymbolTable,
    TickBatch,
)
from tripwire.store.tick_schema import SCHEMA_VERSION
from tripwire.store.tick_urls import parse_store_url, redact_url
from tripwire.store.ticks import TickStore, TickStoreError

T0 = 1_700_000_000_000_000_000  # 2023-11-14, ns
MS = 1_000_000
# Names sort differently from their ids, so a test notices if replay orders by id.
NAMES = ("ETHUSDT", "BTCUSDT", "SOLUSDT", "ADAUSDT")


@pytest.fixture(params=["chdb"])
def url(request, tmp_path) -> str:
    return f"chdb://{tmp_path / 'store'}"


@pytest.fixture
def store(url):
    with TickStore(url) as s:
        yield s


@pytest.fixture
def symbols() -> SymbolTable:
    return SymbolTable(list(NAMES))


# ----------------------------------------------------------------------------- helpers


def make_ticks(n: int, n_symbols: int = len(NAMES), *, seed: int = 0, per_ms: int = 3) -> TickBatch:
    """Random ticks in time order; ``per_ms`` ticks share each millisecond (runs of equal ts);
    (ts, symbol, trade_id) is unique."""
    rng = np.random.default_rng(seed)
    ts = T0 + (np.arange(n, dtype=np.int64) // per_ms) * MS
    return TickBatch.from_columns(
        symbol_id=rng.integers(0, n_symbols, n),
        ts_ns=ts,
        price=np.round(100 + rng.standard_normal(n), 2) + rng.random(n) * 1e-9,
        qty=rng.exponential(1.0, n),
        side=rng.integers(-1, 2, n),
        trade_id=np.arange(n, dtype=np.int64) + 10**12,
        recv_ns=ts + rng.integers(1, 10**6, n),
    )


def replay_order(b: TickBatch, symbols: SymbolTable) -> TickBatch:
    """``b`` sorted the way the store replays: ts, symbol *name*, trade id, then the rest."""
    rank = np.argsort(np.argsort(np.array(symbols.names)))
    keys = (b.side, b.qty, b.price, b.recv_ns, b.trade_id, rank[b.symbol_id], b.ts_ns)
    return b.take(np.lexsort(keys))


def assert_same_ticks(got: TickBatch, want: TickBatch) -> None:
    """Bit-identical columns (floats compared as bits, so NaN and -0.0 count)."""
    assert len(got) == len(want)
    for name, col in want.columns().items():
        other = getattr(got, name)
        assert other.dtype == col.dtype, name
        bits = f"u{col.itemsize}"
        assert np.array_equal(other.view(bits), col.view(bits)), name


def read_all(store: TickStore, symbols: SymbolTable, limit: int, **kw) -> list[TickBatch]:
    pages, after = [], None
    while True:
        page, after = store.read_ticks(symbols, after=after, limit=limit, **kw)
        pages.append(page)
        if after is None:
            return pages
        assert len(page) >= limit
        if page.symbol_id[-1] >= 0:
            assert after == key_of(page, symbols, -1)


def key_of(b: TickBatch, symbols: SymbolTable, row: int) -> tuple[int, str, int]:
    return int(b.ts_ns[row]), symbols.name(int(b.symbol_id[row])), int(b.trade_id[row])


def legacy_insert(store: TickStore, ticks: TickBatch, symbols: SymbolTable, source: str = "") -> None:
    """Write rows as a store from before idempotent inserts holds them: repeated
    (symbol, trade_id) keys and -1 ids, inserted as they are."""
    names = np.array(symbols.names, dtype=object)[ticks.symbol_id]
    cols = [names, ticks.ts_ns, ticks.price, ticks.qty, ticks.side, ticks.trade_id,
            ticks.recv_ns, [source] * len(ticks)]
    store._client.insert(f"{store._db}.ticks", cols, column_oriented=True,
                         column_names=["symbol", "ts", "price", "qty", "side", "trade_id",
                                       "recv_ns", "source"])


# ----------------------------------------------------------------------------- schema


def test_schema_creation_is_idempotent_and_data_survives_reopening(url, symbols):
    ticks = make_ticks(50)
    with TickStore(url) as first:
        assert first.schema_version() == SCHEMA_VERSION
        assert first.counts() == dict.fromkeys(first.counts(), 0)
        first.insert_ticks(ticks, symbols)
    for _ in range(2):
        with TickStore(url) as again:
            assert again.schema_version() == SCHEMA_VERSION
            assert again.counts()["ticks"] == 50
            got = TickBatch.concat(list(again.replay(symbols)))
            assert_same_ticks(got, replay_order(ticks, symbols))


def test_a_store_written_by_a_newer_schema_is_refused(url):
    with TickStore(url) as s:  # as a later tripwire would leave it
        s._client.command(f"INSERT INTO `{s.url.database}`.schema_version VALUES (99, 0)")
    with pytest.raises(TickStoreError, match="schema v99 was written by a newer tripwire"):
        TickStore(url)


def test_two_stores_on_one_directory_in_one_process_share_the_engine(url, symbols):
    with TickStore(url) as a, TickStore(url) as b:
        a.insert_ticks(make_ticks(10), symbols)
        assert b.counts()["ticks"] == 10


def test_counts_cover_every_table(store):
    assert set(store.counts()) == {"ticks", "anomalies", "dead_letters", "news", "labels"}


# ----------------------------------------------------------------------------- ticks


def test_ticks_round_trip_bit_identical(store, symbols):
    ticks = make_ticks(5_000, seed=1)
    # Awkward values the store must keep as they are: it stores, the feeds validate.
    price = ticks.price.copy()
    price[[3, 4, 5]] = [np.nan, -0.0, 5e-324]
    trade_id, recv_ns = ticks.trade_id.copy(), ticks.recv_ns.copy()
    trade_id[7], recv_ns[8], recv_ns[9] = 2**62 + 1, 0, 2**63 - 1
    ticks = TickBatch(ticks.symbol_id, ticks.ts_ns, price, ticks.qty, ticks.side, trade_id, recv_ns)
    assert store.insert_ticks(ticks, symbols, source="test") == 5_000
    got, cursor = store.read_ticks(symbols, limit=10_000)
    assert cursor is None
    assert_same_ticks(got, replay_order(ticks, symbols))


def test_insert_takes_several_batches_and_empty_ones(store, symbols):
    assert store.insert_ticks(TickBatch.empty(), symbols) == 0
    a, b = make_ticks(300, seed=2), make_ticks(200, seed=3)
    b = TickBatch(**{**b.columns(), "ts_ns": b.ts_ns + 10**9, "trade_id": b.trade_id + 10**6})
    store.insert_ticks(b, symbols)
    store.insert_ticks(a, symbols)
    got = TickBatch.concat(list(store.replay(symbols, chunk_rows=64)))
    assert_same_ticks(got, replay_order(TickBatch.concat([a, b]), symbols))


def test_replay_orders_by_time_then_symbol_name_then_trade_id(store, symbols):
    # Every symbol trades at the same instants; inserted one symbol at a time, newest first.
    n = 40
    for sid in reversed(range(len(NAMES))):
        ts = T0 + (np.arange(n) // 4) * MS
        batch = TickBatch.from_columns(
            [sid] * n, ts, 100.0 + np.arange(n), [1.0] * n, trade_id=np.arange(n)
        )
        store.insert_ticks(batch, symbols)
    got = TickBatch.concat(list(store.replay(symbols, chunk_rows=7)))
    keys = [key_of(got, symbols, i) for i in range(len(got))]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys) == n * len(NAMES)
    assert [symbols.name(int(s)) for s in got.symbol_id[:8]] == [
        "ADAUSDT", "ADAUSDT", "ADAUSDT", "ADAUSDT", "BTCUSDT", "BTCUSDT", "BTCUSDT", "BTCUSDT"
    ]  # fmt: skip


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 8, 13, 100])
def test_keyset_pagination_never_loses_or_repeats_a_tick(store, symbols, limit):
    # Long runs of one timestamp across symbols, and rows that share the whole key
    # (ts, symbol, trade_id = -1), so page boundaries fall inside runs of equal keys: what a
    # store written before idempotent inserts may hold, and must still replay exactly.
    rng = np.random.default_rng(limit)
    n = 120
    ts = T0 + (np.arange(n) // 10) * MS
    sid = rng.integers(0, 2, n)
    trade_id = np.where(rng.random(n) < 0.5, -1, rng.integers(0, 3, n))
    ticks = TickBatch.from_columns(sid, ts, 1 + rng.random(n), rng.random(n), trade_id=trade_id)
    legacy_insert(store, ticks, symbols)
    pages = read_all(store, symbols, limit)
    got = TickBatch.concat(pages)
    assert_same_ticks(got, replay_order(ticks, symbols))
    for page, following in itertools.pairwise(pages):
        if len(following):  # pages meet between distinct keys, strictly increasing
            assert key_of(page, symbols, -1) < key_of(following, symbols, 0)


def test_pagination_crosses_long_gaps_in_time(store, symbols):
    # Dense bursts years apart: the page window learnt on a burst must grow across a gap.
    parts = []
    for k, start in enumerate([T0, T0 + 10**9, T0 + 3 * 365 * 86_400 * 10**9]):
        b = make_ticks(500, seed=k)
        shift = start - T0
        parts.append(TickBatch(**{**b.columns(), "ts_ns": b.ts_ns + shift,
                                  "trade_id": b.trade_id + 10_000 * k}))  # fmt: skip
    ticks = TickBatch.concat(parts)
    store.insert_ticks(ticks, symbols)
    for limit in (100, 499, 500, 501, 2_000):
        got = TickBatch.concat(read_all(store, symbols, limit))
        assert_same_ticks(got, replay_order(ticks, symbols))


@pytest.mark.slow
def test_random_layouts_paginate_exactly(store):
    # Many small scenarios in one store, each under its own symbol names (read back with a
    # names filter): bursts, long gaps, equal timestamps, duplicate keys (a legacy store's),
    # odd page sizes.
    rng = np.random.default_rng(42)
    for case in range(30):
        table = SymbolTable([f"C{case}S{i}" for i in range(3)])
        n = int(rng.integers(1, 300))
        gaps = rng.choice([0, 1, MS, 10**9, 10**15], size=n, p=[0.3, 0.2, 0.3, 0.15, 0.05])
        ts = T0 + np.cumsum(gaps)
        trade_id = np.where(rng.random(n) < 0.2, -1, rng.integers(0, 50, n))
        ticks = TickBatch.from_columns(rng.integers(0, 3, n), ts, rng.random(n) + 1,
                                       rng.random(n), trade_id=trade_id)  # fmt: skip
        legacy_insert(store, ticks, table)
        want = replay_order(ticks, table)
        lo = int(rng.choice(ts)) if rng.random() < 0.3 else None
        hi = int(rng.choice(ts)) + 1 if rng.random() < 0.3 else None
        mask = np.ones(n, bool)
        if lo is not None:
            mask &= want.ts_ns >= lo
        if hi is not None:
            mask &= want.ts_ns < hi
        limit = int(rng.choice([3, 7, 50, 1000]))
        got = read_all(store, table, limit, names=list(table.names), start_ns=lo, end_ns=hi)
        assert_same_ticks(TickBatch.concat(got), want.take(np.flatnonzero(mask)))


def test_filters_by_names_and_time(store, symbols):
    ticks = make_ticks(2_000, seed=4)
    store.insert_ticks(ticks, symbols)
    want_all = replay_order(ticks, symbols)
    lo, hi = int(ticks.ts_ns[500]), int(ticks.ts_ns[1500])
    picked = [symbols.id("BTCUSDT"), symbols.id("ADAUSDT")]
    cases = [
        ({"names": ["BTCUSDT", "ADAUSDT"]}, np.isin(want_all.symbol_id, picked)),
        ({"start_ns": lo}, want_all.ts_ns >= lo),
        ({"end_ns": hi}, want_all.ts_ns < hi),
        ({"start_ns": lo, "end_ns": hi, "names": ["BTCUSDT"]},
         (want_all.ts_ns >= lo) & (want_all.ts_ns < hi) & (want_all.symbol_id == picked[0])),
        ({"names": []}, np.zeros(len(want_all), bool)),
        ({"names": ["NOPE"]}, np.zeros(len(want_all), bool)),
        ({"start_ns": hi, "end_ns": lo}, np.zeros(len(want_all), bool)),
    ]  # fmt: skip
    for kw, mask in cases:
        for limit in (97, 10_000):
            got = TickBatch.concat(read_all(store, symbols, limit, **kw))
            assert_same_ticks(got, want_all.take(np.flatnonzero(mask)))
        assert_same_ticks(
            TickBatch.concat(list(store.replay(symbols, chunk_rows=300, **kw))),
            want_all.take(np.flatnonzero(mask)),
        )


def test_symbols_missing_from_the_table_read_as_minus_one(store, symbols):
    ticks = make_ticks(400, seed=5)
    store.insert_ticks(ticks, symbols)
    partial = SymbolTable(["SOLUSDT", "BTCUSDT"])  # other ids, and two names missing
    got = TickBatch.concat(read_all(store, partial, 33))
    want = replay_order(ticks, symbols)
    assert np.array_equal(got.ts_ns, want.ts_ns) and np.array_equal(got.price, want.price)
    names = [symbols.name(int(s)) for s in want.symbol_id]
    expect = [partial.id(n) if n in partial else -1 for n in names]
    assert got.symbol_id.tolist() == expect
    # A page that ends on an unknown symbol still gives a cursor with its name.
    first_unknown = expect.index(-1)
    page, cursor = store.read_ticks(partial, limit=first_unknown + 1)
    assert page.symbol_id[-1] == -1
    assert cursor == (int(want.ts_ns[first_unknown]), names[first_unknown],
                      int(want.trade_id[first_unknown]))  # fmt: skip


def test_odd_symbol_names_round_trip(store):
    odd = SymbolTable(["A'B", "C\\D", "É/€", "x y"])
    ticks = make_ticks(100, n_symbols=4, seed=6)
    store.insert_ticks(ticks, odd)
    assert store.symbols() == sorted(odd.names)
    got = TickBatch.concat(read_all(store, odd, 9, names=["A'B", "C\\D", "É/€", "x y"]))
    assert_same_ticks(got, replay_order(ticks, odd))
    assert len(store.recent("A'B", odd, 1000)) == int((ticks.symbol_id == 0).sum())


def test_bad_symbol_id_is_refused_and_nothing_is_written(store, symbols):
    ticks = make_ticks(10)
    sid = ticks.symbol_id.copy()
    sid[[3, 6]] = [len(NAMES), -1]
    bad = TickBatch(sid, ticks.ts_ns, ticks.price, ticks.qty)
    with pytest.raises(ValueError, match=r"row 3 has symbol id 4, .*table of 4 \(2 bad rows\)"):
        store.insert_ticks(bad, symbols)
    assert store.counts()["ticks"] == 0


def test_recent_gives_the_last_ticks_oldest_first(store, symbols):
    ticks = make_ticks(3_000, seed=7)
    store.insert_ticks(ticks, symbols)
    eth = replay_order(ticks, symbols)
    eth = eth.take(np.flatnonzero(eth.symbol_id == symbols.id("ETHUSDT")))
    assert_same_ticks(store.recent("ETHUSDT", symbols, 25), eth.take(slice(-25, None)))
    assert_same_ticks(store.recent("ETHUSDT", symbols, 10**6), eth)
    assert len(store.recent("NOPE", symbols, 5)) == 0
    other = SymbolTable(["XRPUSDT"])
    assert store.recent("ETHUSDT", other, 3).symbol_id.tolist() == [-1, -1, -1]


def test_symbol_stats_match_numpy(store, symbols):
    ticks = make_ticks(4_000, seed=8)
    store.insert_ticks(ticks, symbols)
    zero = TickBatch.from_columns([0, 0], [T0 - 2, T0 - 1], [5.0, 6.0], [0.0, 0.0],
                                  trade_id=[1, 2])  # fmt: skip
    zero_syms = SymbolTable(["ZEROVOL"])
    store.insert_ticks(zero, zero_syms)
    lo, hi = int(ticks.ts_ns[1000]), int(ticks.ts_ns[3000])
    for start, end in ((None, None), (lo, hi)):
        stats = {s["symbol"]: s for s in store.symbol_stats(start_ns=start, end_ns=end)}
        mask = np.ones(len(ticks), bool)
        if start is not None:
            mask = (ticks.ts_ns >= start) & (ticks.ts_ns < end)
        for sid, name in enumerate(NAMES):
            sel = ticks.take(np.flatnonzero(mask & (ticks.symbol_id == sid)))
            s = stats[name]
            assert s["ticks"] == len(sel)
            assert (s["first_ts"], s["last_ts"]) == (sel.ts_ns.min(), sel.ts_ns.max())
            assert (s["min_price"], s["max_price"]) == (sel.price.min(), sel.price.max())
            assert s["last_price"] == sel.price[np.lexsort((sel.trade_id, sel.ts_ns))[-1]]
            assert math.isclose(s["volume"], sel.qty.sum(), rel_tol=1e-12)
            vwap = (sel.price * sel.qty).sum() / sel.qty.sum()
            assert math.isclose(s["vwap"], vwap, rel_tol=1e-12)
        assert ("ZEROVOL" in stats) == (start is None)
    assert math.isnan(stats_all(store)["ZEROVOL"]["vwap"])
    assert list(stats_all(store)) == sorted([*NAMES, "ZEROVOL"])


def stats_all(store: TickStore) -> dict:
    return {s["symbol"]: s for s in store.symbol_stats()}


def test_symbols_lists_distinct_names(store, symbols):
    assert store.symbols() == []
    store.insert_ticks(make_ticks(200), symbols)
    assert store.symbols() == sorted(NAMES)


# ----------------------------------------------------------------------------- events


def anomaly(i: int, **kw) -> Anomaly:
    base = dict(
        symbol_id=1, ts_ns=T0 + i * MS, metric=Metric.RETURN, z=6.5 + i, window_mean=1e-5,
        window_std=2e-4, value=0.01, row=i, symbol="BTCUSDT", id=f"a{i:03d}", price=100.5,
        qty=0.25, trade_id=77 + i, recv_ns=T0 + i * MS + 5, detected_ns=T0 + i * MS + 9,
        source="test",
        snapshot=RecentTicks(np.array([T0, T0 + MS], np.int64), np.array([100.0, 100.5]),
                             np.array([1.0, 0.25])),
        window={"return": {"count": 1000, "mean": 1e-5, "std": 2e-4}, "ticks": 12},
    )  # fmt: skip
    base.update(kw)
    return Anomaly(**base)


def assert_same_anomaly(got: Anomaly, want: Anomaly) -> None:
    for name in Anomaly.__slots__:
        a, b = getattr(got, name), getattr(want, name)
        if name == "snapshot":
            assert (a is None) == (b is None)
            if b is not None:
                for col in ("ts_ns", "price", "qty"):
                    x, y = getattr(a, col), getattr(b, col)
                    assert x.dtype == y.dtype and np.array_equal(x, y), col
        elif isinstance(b, float) and math.isnan(b):
            assert math.isnan(a), name
        else:
            assert a == b and type(a) is type(b), name


def test_anomalies_round_trip(store):
    items = [
        anomaly(0),
        anomaly(1, metric=Metric.VOLUME, snapshot=None, window=None, symbol=None, symbol_id=3),
        anomaly(2, metric=Metric.PRICE, price=float("nan"), qty=float("nan"), symbol="ETHUSDT",
                symbol_id=0, snapshot=RecentTicks(np.empty(0, np.int64), np.empty(0),
                                                  np.empty(0))),
    ]  # fmt: skip
    assert store.insert_anomalies(items) == 3
    got = store.anomalies()
    assert len(got) == 3
    for g, w in zip(got, items, strict=True):
        assert_same_anomaly(g, w)
    assert [a.id for a in store.anomalies(symbol="BTCUSDT")] == ["a000"]
    assert [a.id for a in store.anomalies(start_ns=T0 + MS)] == ["a001", "a002"]
    assert [a.id for a in store.anomalies(end_ns=T0 + MS)] == ["a000"]
    assert [a.id for a in store.anomalies(limit=1)] == ["a000"]
    remapped = store.anomalies(symbols=SymbolTable(["ETHUSDT"]))
    assert [a.symbol_id for a in remapped] == [-1, -1, 0]


def test_anomaly_window_must_be_json(store):
    with pytest.raises(TypeError, match="JSON cannot store"):
        store.insert_anomalies([anomaly(0, window={"x": object()})])
    assert store.counts()["anomalies"] == 0


def test_dead_letters_round_trip(store):
    items = [
        DeadLetter.make("binance-ws", DeadReason.BAD_PRICE, '{"p": "-1"}', T0, "BTCUSDT", "price=-1.0"),
        DeadLetter.make("binance-ws", "malformed", "not json\n\x00\u00e9", T0 + 1),
        DeadLetter.make("replay", DeadReason.UNKNOWN_SYMBOL, "x" * 5000, T0 + 2, None, "id=-1"),
    ]
    assert store.insert_dead_letters(items) == 3
    assert store.dead_letters() == items
    assert store.dead_letters(symbol="BTCUSDT") == items[:1]
    assert store.dead_letters(reason="malformed") == items[1:2]
    assert store.dead_letters(start_ns=T0 + 1, end_ns=T0 + 2) == items[1:2]
    assert store.dead_letters(limit=2) == items[:2]
    assert isinstance(store.dead_letters()[0].reason, DeadReason)


def test_news_round_trip(store):
    items = [
        NewsItem("n1", T0, "SEC approves ETF", ("BTCUSDT", "ETHUSDT"), "wire", "body\nline"),
        NewsItem("n2", T0 + 5, "Fed holds rates"),
        NewsItem("n3", T0 + 9, "ETH upgrade", ("ETHUSDT",), "blog", ""),
    ]
    assert store.insert_news(items) == 3
    assert store.news() == items
    assert store.news(symbol="BTCUSDT") == items[:2]  # mentions, plus market-wide
    assert store.news(start_ns=T0 + 1) == items[1:]
    assert store.news(end_ns=T0 + 9, limit=1) == items[:1]


def test_news_keeps_the_source_time_beside_the_arrival_time(store):
    """``ts`` is when the headline could be read; ``published_ns`` is the source's own
    time (earlier, or 0 when the source gave none): both come back as stored."""
    items = [NewsItem("rss:1", T0 + 10, "BTC ETF flows", ("BTCUSDT",), "rss:wire",
                      published_ns=T0 - 3_600 * 10**9),
             NewsItem("rss:2", T0 + 20, "No date in this feed", (), "rss:blog")]
    store.insert_news(items)
    got = store.news()
    assert [n.published_ns for n in got] == [T0 - 3_600 * 10**9, 0]
    assert got == items


def test_a_v2_store_gains_the_news_source_time_and_reads_old_rows_as_unknown(store):
    db = f"`{store.url.database}`"
    store._client.command(f"DROP TABLE {db}.news")  # the news table as v2 made it
    store._client.command(f"""CREATE TABLE {db}.news (id String, ts Int64, headline String,
        symbols Array(String), source LowCardinality(String), body String)
        ENGINE = MergeTree ORDER BY (ts, id)""")
    store._client.insert(f"{db}.news", [["old", T0, "Old headline", ["BTCUSDT"], "wire", ""]],
                         column_names=["id", "ts", "headline", "symbols", "source", "body"])
    store._client.command(f"TRUNCATE TABLE {db}.schema_version")
    store._client.insert(f"{db}.schema_version", [[2, 1]],
                         column_names=["version", "applied_ns"])
    store.close()
    with TickStore(store.url.redacted) as reopened:
        assert reopened.schema_version() == SCHEMA_VERSION == 3
        new = NewsItem("new", T0 + 5, "New headline", (), "rss:x", published_ns=T0 - 7)
        reopened.insert_news([new])
        assert reopened.news() == [NewsItem("old", T0, "Old headline", ("BTCUSDT",), "wire"),
                                   new]
    with TickStore(store.url.redacted) as again:  # migrated once: opens as it is
        assert [n.published_ns for n in again.news()] == [0, T0 - 7]


def test_labels_round_trip(store):
    items = [
        EventLabel("l1", EventKind.FLASH_CRASH, "BTCUSDT", T0, T0 + 100, -0.08, "n1"),
        EventLabel("l2", EventKind.VOLUME_BURST, "ETHUSDT", T0 + 50, T0 + 60),
        EventLabel("l3", EventKind.OUTAGE, "BTCUSDT", T0 + 200, T0 + 300, 0.0, None),
    ]
    assert store.insert_labels(items) == 3
    assert store.labels() == items
    assert store.labels(symbol="BTCUSDT") == [items[0], items[2]]
    # Overlap with [start, end): l1 runs to T0 + 100 inclusive, so it overlaps from T0 + 100.
    assert store.labels(start_ns=T0 + 100, end_ns=T0 + 201) == [items[0], items[2]]
    assert store.labels(start_ns=T0 + 101, end_ns=T0 + 200) == []
    assert isinstance(store.labels()[0].kind, EventKind)


def test_event_inserts_of_nothing_write_nothing(store):
    assert store.insert_anomalies([]) == store.insert_news([]) == 0
    assert store.insert_dead_letters([]) == store.insert_labels([]) == 0
    assert sum(store.counts().values()) == 0


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "must be a non-empty string"),
        ("ftp://u:s3cr3t@host/db", "scheme 'ftp' is not supported"),
        ("localhost:8123", "scheme 'localhost' is not supported"),
        ("/var/lib/tripwire", "scheme '' is not supported"),
        ("http://u:s3cr3t@:8123/db", "has no host"),
        ("http://u:s3cr3t@host:99999/db", "port must be a number"),
        ("http://u:s3cr3t@host:port/db", "port must be a number"),
        ("http://u:s3cr3t@host:8123/a/b", "one database name"),
        ("http://u:s3cr3t@host:8123/1db", "one database name"),
        ("http://u:s3cr3t@host:8123/db?secure=1", "query strings"),
        ("chdb://somehost/data", "chdb URLs take no host"),
        ("chdb://", "names no data directory"),
        ("chdb:", "names no data directory"),
        ("http://u:s3cr3t@[::1/db", "malformed"),
    ],
)
def test_bad_urls_are_named_without_the_password(bad, message):
    with pytest.raises(ValueError, match=message) as info:
        TickStore(bad)
    assert "s3cr3t" not in str(info.value)


def test_urls_parse_to_what_they_say(tmp_path, monkeypatch):
    u = parse_store_url("https://trader:p%40ss@ch.internal/market")
    assert (u.scheme, u.host, u.port, u.user, u.password, u.database) == (
        "https", "ch.internal", 8443, "trader", "p@ss", "market"
    )  # fmt: skip
    assert "p@ss" not in repr(u) and u.redacted == "https://trader:***@ch.internal:8443/market"
    u = parse_store_url("http://ch:8123")
    assert (u.user, u.password, u.database, u.port) == ("default", "", "tripwire", 8123)
    assert parse_store_url("chdb:///abs/dir").path == "/abs/dir"
    monkeypatch.chdir(tmp_path)
    rel = parse_store_url("chdb:data/ticks%20x")
    assert (rel.path, rel.database) == (str(tmp_path / "data" / "ticks x"), "tripwire")
    assert redact_url("http://u:secret@h/db") == "http://u:***@h/db"


def test_relative_chdb_url_opens_under_the_working_directory(tmp_path, monkeypatch, symbols):
    monkeypatch.chdir(tmp_path)
    with TickStore("chdb:rel/store") as s:
        s.insert_ticks(make_ticks(3), symbols)
    assert (tmp_path / "rel" / "store").is_dir()


def test_unreachable_server_names_url_but_not_password():
    with pytest.raises(TickStoreError, match=r"open failed") as info:
        TickStore("http://trader:hunter2@127.0.0.1:9/market", connect_timeout_s=2)
    text = str(info.value)
    assert "hunter2" not in text and "127.0.0.1" in text and "trader:***@" in text


def test_query_failure_names_the_operation_and_the_url(store, symbols):
    # Simulate a store broken behind our back (a table dropped by hand).
    store._client.command(f"DROP TABLE `{store.url.database}`.ticks")
    with pytest.raises(TickStoreError, match=r"tick store chdb:///.*: insert into ticks.* failed"):
        store.insert_ticks(make_ticks(3), symbols)
    with pytest.raises(TickStoreError, match=r"read tick"):
        store.read_ticks(symbols)


def test_closed_store_says_so(url, symbols):
    s = TickStore(url)
    s.close()
    s.close()  # idempotent
    assert s.closed and "closed" in repr(s)
    with pytest.raises(TickStoreError, match=r"is closed \(count rows\)"):
        s.counts()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit must be an int >= 1"),
        ({"limit": True}, "limit must be an int >= 1"),
        ({"after": (1, "X")}, "cursor"),
        ({"after": ("1", "X", 2)}, r"after\[0\] \(ts\) must be an int"),
        ({"start_ns": 1.5}, "start_ns must be an int"),
        ({"end_ns": 2**63}, "end_ns is outside int64"),
        ({"names": [""]}, "non-empty string"),
    ],
)
def test_bad_read_arguments(store, symbols, kwargs, message):
    with pytest.raises(ValueError, match=message):
        store.read_ticks(symbols, **kwargs)


def test_names_must_not_be_a_bare_string(store, symbols):
    with pytest.raises(TypeError, match="not the string 'BTCUSDT'"):
        store.read_ticks(symbols, names="BTCUSDT")


# ----------------------------------------------------------------------------- chdb rules


def test_chdb_second_directory_in_one_process_is_an_explicit_error(tmp_path, symbols):
    with TickStore(f"chdb://{tmp_path / 'one'}") as one:
        one.insert_ticks(make_ticks(5), symbols)
        with pytest.raises(TickStoreError, match="hosts one per process"):
            TickStore(f"chdb://{tmp_path / 'two'}")
        assert one.counts()["ticks"] == 5  # the open store is unharmed
    with TickStore(f"chdb://{tmp_path / 'two'}") as two:  # free once the first is closed
        assert two.counts()["ticks"] == 0


def test_chdb_directory_held_by_another_process_is_an_explicit_error(tmp_path, symbols):
    path = tmp_path / "shared"
    with TickStore(f"chdb://{path}") as mine:
        mine.insert_ticks(make_ticks(5), symbols)
        code = textwrap.dedent(f"""
            from tripwire.store.ticks import TickStore, TickStoreError
            try:
                TickStore("chdb://{path}")
            except TickStoreError as e:
                print(e)
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120, check=True)  # fmt: skip
        assert "another process has this chdb data directory open" in out.stdout
        assert mine.counts()["ticks"] == 5


# ----------------------------------------------------------------------------- idempotent ticks


def test_the_same_trades_inserted_twice_are_stored_once(store, symbols):
    ticks = make_ticks(3_000, seed=11)
    assert store.insert_ticks(ticks, symbols, source="a.csv") == 3_000
    # Again, cut differently and under another source name: the trades are the same.
    for part in (ticks.take(slice(0, 1_000)), ticks.take(slice(1_000, None))):
        assert store.insert_ticks(part, symbols, source="b.csv") == 0
    assert store.duplicates_skipped == 3_000
    assert store.counts()["ticks"] == 3_000
    assert_same_ticks(TickBatch.concat(read_all(store, symbols, 700)), replay_order(ticks, symbols))
    assert sum(s["ticks"] for s in store.symbol_stats()) == 3_000


def test_a_batch_that_overlaps_the_store_adds_only_the_new_trades(store, symbols):
    ticks = make_ticks(2_000, seed=12)
    store.insert_ticks(ticks.take(slice(0, 1_200)), symbols)
    assert store.insert_ticks(ticks.take(slice(800, None)), symbols) == 800
    assert_same_ticks(TickBatch.concat(read_all(store, symbols, 10_000)), replay_order(ticks, symbols))


def test_a_repeated_trade_inside_one_batch_keeps_its_first_copy(store, symbols):
    b = TickBatch.from_columns([0, 0, 1, 0], [T0, T0 + 1, T0, T0 + 2], [1.0, 2.0, 3.0, 4.0],
                               [1.0] * 4, trade_id=[7, 7, 7, 8])
    assert store.insert_ticks(b, symbols) == 3
    got, _ = store.read_ticks(symbols)
    assert sorted(zip(got.symbol_id.tolist(), got.trade_id.tolist(), got.price.tolist(),
                      strict=True)) == [
        (0, 7, 1.0), (0, 8, 4.0), (1, 7, 3.0)]


def test_ticks_without_an_id_get_a_deterministic_one_and_are_stored_once(url, tmp_path, symbols):
    rng = np.random.default_rng(3)
    n = 600
    ts = T0 + (np.arange(n) // 6) * MS  # runs of equal timestamps...
    price = np.round(100 + rng.random(n), 1)  # ...and genuinely identical trades among them
    ticks = TickBatch.from_columns(rng.integers(0, 2, n), ts, price, np.ones(n),
                                   side=np.ones(n, dtype=np.int8))
    identical = len(ticks) - len({(int(a), int(b), float(c)) for a, b, c in
                                  zip(ticks.symbol_id, ticks.ts_ns, ticks.price, strict=True)})
    assert identical > 10  # the case the ordinal is for
    with TickStore(url) as first:
        # Batches cut inside runs of identical trades: the ids do not depend on the cuts.
        for lo in range(0, n, 7):
            first.insert_ticks(ticks.take(slice(lo, lo + 7)), symbols, source="api")
        stored, _ = first.read_ticks(symbols, limit=10_000)
    assert len(stored) == n  # identical trades are distinct trades
    assert (stored.trade_id < -1).all() and len(np.unique(stored.trade_id)) == n
    with TickStore(url) as again:  # another process's run, the same ticks in one batch
        assert again.insert_ticks(ticks, symbols, source="api") == 0
        assert again.counts()["ticks"] == n
        # Another source's id-less ticks are other trades: never matched against these.
        assert again.insert_ticks(ticks.take(slice(0, 5)), symbols, source="other") == 5


def as_v1_store(store: TickStore) -> None:
    """Make ``store`` look as a tripwire of schema v1 left it (it recorded version 1)."""
    db = f"`{store.url.database}`"
    store._client.command(f"TRUNCATE TABLE {db}.schema_version")
    store._client.insert(f"{db}.schema_version", [[1, 1]], column_names=["version", "applied_ns"])


def test_a_v1_store_is_migrated_once_to_one_copy_of_each_trade(store, symbols, caplog):
    ticks = make_ticks(1_000, seed=13)
    no_id = TickBatch.from_columns([0, 0], [T0, T0], [5.0, 5.0], [1.0, 1.0])  # trade_id -1
    legacy_insert(store, ticks, symbols)
    legacy_insert(store, ticks.take(slice(0, 100)), symbols)  # an old double ingest
    legacy_insert(store, no_id, symbols)  # two identical id-less trades: both kept
    as_v1_store(store)
    store.close()
    with caplog.at_level("WARNING", logger="tripwire.store.ticks"):
        reopened = TickStore(store.url.redacted)
    with reopened:
        assert reopened.schema_version() == SCHEMA_VERSION == 3
        assert "schema v1 holds 100 repeated trades" in caplog.text
        assert reopened.counts()["ticks"] == 1_002
        pages = TickBatch.concat(read_all(reopened, symbols, 300))
        assert_same_ticks(pages, replay_order(TickBatch.concat([ticks, no_id]), symbols))
        assert reopened.insert_ticks(ticks, symbols) == 0  # and new inserts stay idempotent
    caplog.clear()
    with TickStore(store.url.redacted) as again:  # migrated once: nothing to do now
        assert again.counts()["ticks"] == 1_002
    assert "repeated trades" not in caplog.text


def test_a_v1_store_without_repeats_is_left_as_it_is(store, symbols):
    ticks = make_ticks(300, seed=14)
    legacy_insert(store, ticks, symbols)
    as_v1_store(store)
    store.close()
    with TickStore(store.url.redacted) as reopened:
        assert reopened.schema_version() == 3 and reopened.counts()["ticks"] == 300
        assert reopened.insert_ticks(make_ticks(310, seed=14).take(slice(300, None)),
                                     symbols) == 10  # fmt: skip


def test_the_sink_counts_every_tick_it_flushed_and_the_repeats_among_them(url, symbols):
    """A second run of the same data (a demo re-run on its data directory) stores nothing
    new, yet every tick it handed over is in the store: 'ticks' counts those (what a caller
    compares with what it sent, so nothing looks lost) and 'duplicates' the repeats."""
    from actors.sink import TickSink

    ticks = make_ticks(500, seed=15)
    sink = TickSink(url, symbols, flush_rows=200, flush_ms=10**6)
    try:
        for _ in range(2):
            for lo in range(0, 500, 100):
                sink.write_ticks(ticks.take(slice(lo, lo + 100)), "demo")
            sink.flush()
        assert sink.counts()["ticks"] == 500
        stats = sink.stats()
        assert (stats["ticks"], stats["duplicates"], stats["pending_rows"]) == (1_000, 500, 0)
    finally:
        sink.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tripwire_ingest_of_a_csv_twice_replays_like_one_ingest(ray_local, tmp_path, capsys):
    """`tripwire ingest` of one Binance CSV twice, then a replay of the store: the same
    ticks and trips as after one ingest, and the replay dead-letters nothing."""
    import json

    from tripwire.cli import main

    path = tmp_path / "ETHUSDT-trades-2024-01-01.csv"
    rows = [f"{i},{2000 + (i % 50) / 10},{1 + i % 3},1.0,{1_704_067_200_000 + i * 10},false,true"
            for i in range(1, 3_001)]  # fmt: skip
    path.write_text("\n".join(rows) + "\n")

    def run(*argv: str) -> dict:
        assert main(["ingest", *argv, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    once, twice = f"chdb://{tmp_path / 'once'}", f"chdb://{tmp_path / 'twice'}"
    run("--source", "binance-csv", str(path), "--store", once)
    run("--source", "binance-csv", str(path), "--store", twice)
    second = run("--source", "binance-csv", str(path), "--store", twice)
    assert second["store_rows"]["ticks"] == 3_000
    replay_once = run("--source", "replay", "--store", once)
    replay_twice = run("--source", "replay", "--store", twice)
    assert replay_twice["ticks_in"] == replay_twice["ticks_scored"] == 3_000
    assert replay_twice["dead_letters"] == 0 and replay_twice["dead_by_reason"] == {}
    for key in ("ticks_scored", "trips", "anomalies", "gaps"):
        assert replay_twice[key] == replay_once[key], key
