"""DetectorShard without Ray: routing, parity with one big bank, snapshots, checkpoints."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from actors.shard import DetectorShard, routing_table, shard_of
from tripwire.detect import DetectorBank, DetectorConfig, MetricConfig
from tripwire.model import Metric, SymbolTable, TickBatch

SYMBOLS = SymbolTable([f"S{i:02d}USDT" for i in range(12)])
CONFIG = DetectorConfig(
    returns=MetricConfig(window=50, threshold=5.0),
    volume=MetricConfig(window=30, threshold=6.0, two_sided=False),
    price=MetricConfig(window=60, threshold=6.0),
    cooldown_ns=0,
    snapshot_len=16,
    # Trade-to-trade returns and raw volume sums (these tests step time by 1 ns).
    return_bucket_ns=0, volume_statistic="sum", min_bucket_trades=0,
)


def market(n: int = 6_000, seed: int = 3) -> TickBatch:
    rng = np.random.default_rng(seed)
    sid = rng.integers(0, len(SYMBOLS), n).astype(np.int32)
    ts = np.arange(n, dtype=np.int64) * 1_000 + 1
    price = 100.0 * np.exp(np.cumsum(1e-4 * rng.standard_normal(n)))
    price[[1_000, 3_000, 5_000]] *= 0.9  # three fat fingers
    qty = rng.exponential(1.0, n)
    return TickBatch.from_columns(sid, ts, price, qty, trade_id=np.arange(n), recv_ns=ts)


def shard_parts(batch: TickBatch, n_shards: int) -> list[TickBatch]:
    route = routing_table(SYMBOLS, n_shards)[batch.symbol_id]
    return [batch.take(np.flatnonzero(route == s)) for s in range(n_shards)]


def test_shard_of_is_stable_and_spreads_symbols():
    assert [shard_of(n, 3) for n in SYMBOLS.names] == [shard_of(n, 3) for n in SYMBOLS.names]
    assert shard_of("BTCUSDT", 8) == zlib.crc32(b"BTCUSDT") % 8 == 3  # fixed forever: CRC-32, not Python's salted hash
    assert len(set(routing_table(SYMBOLS, 3).tolist())) == 3
    with pytest.raises(ValueError, match="n_shards must be >= 1"):
        shard_of("BTCUSDT", 0)


def test_shards_together_trip_exactly_like_one_bank():
    batch = market()
    whole = DetectorBank(CONFIG, n_symbols=len(SYMBOLS)).push(batch).trips
    got = []
    for s, part in enumerate(shard_parts(batch, 3)):
        shard = DetectorShard(s, 3, SYMBOLS, CONFIG)
        res = shard.process(part)
        got += [(int(t), int(sym), int(m), float(z)) for t, sym, m, z in
                zip(res.trips.ts_ns, res.trips.symbol_id, res.trips.metric, res.trips.z,
                    strict=True)]
    want = [(int(t), int(s), int(m), float(z)) for t, s, m, z in
            zip(whole.ts_ns, whole.symbol_id, whole.metric, whole.z, strict=True)]
    assert sorted(got) == sorted(want) and len(want) >= 3


def test_anomaly_snapshot_ends_at_the_tripping_tick_and_carries_context():
    batch = market()
    for s, part in enumerate(shard_parts(batch, 2)):
        shard = DetectorShard(s, 2, SYMBOLS, CONFIG)
        for a in shard.process(part, source="test").anomalies:
            snap = a.snapshot
            assert snap.ts_ns[-1] == a.ts_ns and snap.price[-1] == a.price
            assert len(snap) == CONFIG.snapshot_len
            mine = part.take(np.flatnonzero(part.symbol_id == a.symbol_id))
            upto = mine.ts_ns[mine.ts_ns <= a.ts_ns][-CONFIG.snapshot_len:]
            assert snap.ts_ns.tolist() == upto.tolist()  # later ticks of the batch cut off
            assert a.symbol == SYMBOLS.name(a.symbol_id) and a.source == "test"
            assert a.recv_ns == a.ts_ns and a.detected_ns >= a.recv_ns and a.id
            assert set(a.window) >= {"as_of", "return", "volume", "price"}


def test_snapshot_draws_on_ticks_from_before_the_batch():
    shard = DetectorShard(0, 1, SymbolTable(["X"]), CONFIG)
    n = 200
    price = 100.0 + 0.01 * np.sin(np.arange(n))
    price[-1] = 90.0
    b = TickBatch.from_columns(np.zeros(n), np.arange(n) + 1, price, np.ones(n))
    shard.process(b.take(slice(0, n - 3)))
    res = shard.process(b.take(slice(n - 3, n)))
    trip = next(a for a in res.anomalies if a.metric == Metric.RETURN)
    assert trip.snapshot.ts_ns.tolist() == list(range(n - 15, n + 1))


def test_misrouted_or_unknown_symbols_raise_naming_them():
    shard = DetectorShard(0, 2, SYMBOLS, CONFIG)
    foreign = next(i for i in range(len(SYMBOLS)) if shard_of(SYMBOLS.name(i), 2) == 1)
    with pytest.raises(ValueError, match=f"{SYMBOLS.name(foreign)}.*owned by another shard"):
        shard.process(TickBatch.from_columns([foreign], [1], [1.0], [1.0]))
    with pytest.raises(ValueError, match="symbol id out of range"):
        shard.process(TickBatch.from_columns([99], [1], [1.0], [1.0]))
    with pytest.raises(ValueError, match="shard index 2 is outside"):
        DetectorShard(2, 2, SYMBOLS, CONFIG)


def test_checkpoint_restore_continues_identically():
    batch = market()
    part = shard_parts(batch, 1)[0]
    first, second = part.take(slice(0, 3_000)), part.take(slice(3_000, None))
    a = DetectorShard(0, 1, SYMBOLS, CONFIG)
    a.process(first)
    b = DetectorShard(0, 1, SYMBOLS, CONFIG)
    b.restore(a.checkpoint())
    ra, rb = a.process(second), b.process(second)
    assert ra.trips.z.tolist() == rb.trips.z.tolist() and len(ra.trips) > 0
    assert a.stats()["ticks"] == b.stats()["ticks"] == len(part)
    with pytest.raises(ValueError, match="checkpoint is for shard 0/1"):
        DetectorShard(0, 2, SYMBOLS, CONFIG).restore(a.checkpoint())


def test_a_busy_symbol_keeps_its_full_history_in_the_snapshot():
    # Regression: a cascade puts far more of a symbol's trades in one batch than the ring
    # holds; the ring after the push had lost everything before the batch, so a trip early
    # in the batch came with a snapshot of a handful of ticks.
    shard = DetectorShard(0, 1, SymbolTable(["X"]), CONFIG)
    n_hist, n_burst = 400, 2_000
    price = 100.0 + 0.01 * np.sin(np.arange(n_hist + n_burst))
    price[n_hist + 4] = 90.0  # trips on the fifth tick of the burst batch
    b = TickBatch.from_columns(np.zeros(len(price)), np.arange(len(price)) + 1, price,
                               np.ones(len(price)))
    shard.process(b.take(slice(0, n_hist)))
    res = shard.process(b.take(slice(n_hist, None)))
    trip = next(a for a in res.anomalies if a.metric == Metric.RETURN)
    assert trip.ts_ns == n_hist + 5
    assert trip.snapshot.ts_ns.tolist() == list(range(n_hist + 5 - 15, n_hist + 6))


def test_a_batch_sequence_number_is_applied_once():
    part = shard_parts(market(), 1)[0]
    shard = DetectorShard(0, 1, SYMBOLS, CONFIG)
    first = shard.process(part.take(slice(0, 100)), seq=0, checkpoint=True)
    again = shard.process(part.take(slice(0, 100)), seq=0)  # a retry of the same batch
    assert first.ticks == 100 and first.checkpoint is not None and not first.duplicate
    assert again.duplicate and again.ticks == 0
    assert shard.stats()["ticks"] == 100 and shard.stats()["duplicates"] == 1
    restored = DetectorShard(0, 1, SYMBOLS, CONFIG)
    restored.restore(first.checkpoint)  # the checkpoint remembers the batch, too
    assert restored.process(part.take(slice(0, 100)), seq=0).duplicate


# -- a killed shard actor, restarted by Ray and restored by the data plane ---------------------

WIDE = DetectorConfig(  # windows wider than a batch: the history before a batch matters
    returns=MetricConfig(window=300, threshold=4.0),
    volume=MetricConfig(window=300, threshold=50.0, two_sided=False),
    price=MetricConfig(window=300, threshold=4.0),
    cooldown_ns=0, volume_bucket_ns=0, snapshot_len=16, return_bucket_ns=0,
)
BATCH = 100


def _batches(n: int) -> list[TickBatch]:
    """``n`` batches of one symbol's smooth ticks, stamped in the last minute, each with a
    jump 20 ticks in (so every batch trips, at a z that depends on the windows' history)."""
    import time

    rng = np.random.default_rng(11)
    t0 = time.time_ns() - 60 * 10**9
    out = []
    for b in range(n):
        i = np.arange(b * BATCH, (b + 1) * BATCH)
        price = 100.0 + 0.05 * np.sin(i / 7.0) + 0.01 * rng.standard_normal(BATCH)
        price[20] *= 1.02 + 0.002 * b
        ts = t0 + i * 1_000_000
        out.append(TickBatch.from_columns(np.zeros(BATCH), ts, price, np.ones(BATCH),
                                          trade_id=i + 1, recv_ns=ts))
    return out


def _z(trips, lo: int, hi: int) -> list[tuple[int, int, float]]:
    keep = (trips.ts_ns >= lo) & (trips.ts_ns <= hi)
    return sorted((int(t), int(m), float(z)) for t, m, z in
                  zip(trips.ts_ns[keep], trips.metric[keep], trips.z[keep], strict=True))


async def _restarted(shard, timeout_s: float = 60.0) -> None:
    """Until the actor answers as its restarted incarnation (a kill is asynchronous: the
    old one may still answer a call sent right after it)."""
    import asyncio
    import time

    from ray.exceptions import ActorUnavailableError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if await shard.waiting_for_restore.remote():
                return
        except ActorUnavailableError:  # being restarted right now
            pass
        assert time.monotonic() < deadline, "the killed shard was not restarted"
        await asyncio.sleep(0.05)


def test_a_killed_shard_restarts_and_resumes_from_its_checkpoint(ray_local, migrated_db):
    """Regression: a killed shard actor was never restarted (every later batch of its
    symbols was dead-lettered ``shard_unavailable`` until a full restart). Now Ray restarts
    it, the data plane restores its last checkpoint before it scores again, and the z-scores
    after the restart are those of a shard that saw the checkpointed history: exactly what
    an uncrashed shard fed the same ticks gives. Ticks scored after the checkpoint are
    counted as lost to the windows."""
    import asyncio

    import ray

    from actors.dataplane import DataPlane, DataPlaneConfig
    from tripwire.store.pg_decisions import PgDecisionStore

    symbols = SymbolTable(["X"])
    b = _batches(6)

    async def handed(incidents, trace):
        return None

    async def scenario():
        store = await PgDecisionStore.connect(migrated_db)
        plane = DataPlane(symbols, DataPlaneConfig(
            n_shards=1, detector=WIDE.to_dict(), shard_max_restarts=2,
            checkpoint_every_batches=2, checkpoint_every_s=3_600.0), store, handed)
        await asyncio.to_thread(plane.start)
        try:
            for batch in b[:5]:  # checkpoints after the 2nd and the 4th batch
                await plane.ingest(batch, batch.ts_ns[-1])
            assert plane.shard_states()[0]["checkpoint_seq"] == 3
            ray.kill(plane.shards[0], no_restart=False)  # Ray restarts it
            await _restarted(plane.shards[0])
            await plane.ingest(b[5], b[5].ts_ns[-1])
            beat = await plane.beat(b[5].ts_ns[-1])
            stats = await plane.stats()
            beats = await store.heartbeats()
            letters = await store.dead_letters(limit=10)
            return plane.trips(), stats, beat, beats, letters
        finally:
            await plane.close()
            await store.close()

    trips, stats, beat, beats, letters = asyncio.run(scenario())
    after = (int(b[5].ts_ns[0]), int(b[5].ts_ns[-1]))
    reference = DetectorShard(0, 1, symbols, WIDE)  # fed what the checkpoint had seen
    for batch in [*b[:4], b[5]]:
        ref = reference.process(batch)
    empty = DetectorShard(0, 1, symbols, WIDE).process(b[5])  # a restart without restore
    want = _z(ref.trips, *after)
    assert want and _z(trips, *after) == want
    assert _z(empty.trips, *after) != want  # so the restore is what made them equal
    assert stats["shard_restarts"] == 1 and stats["ticks_lost_to_restarts"] == BATCH
    assert stats["shard_errors"] == 0  # the batch after the kill was scored, not dropped
    assert beat == {"shard:0": True} and beats["shard:0"][1] == "ping ok restarts=1"
    lost = [d for d in letters if d["reason"] == "shard_unavailable"]
    assert len(lost) == 1 and "restored the checkpoint after batch 3" in lost[0]["detail"]
    assert f"{BATCH} tick(s) scored after it" in lost[0]["detail"]


def test_anomalies_do_not_depend_on_how_the_stream_is_batched():
    """Regression (tripwire parity, live leg): a backtest's 5 s batches and a live feed's
    1 s batches gave incidents different ``recent`` facts: a trip's snapshot lost older
    ticks to the batch's later ticks of its symbol (the ring after the push), and the
    volume window was read at the batch's end (a bucket closed after the trip counted)."""
    import dataclasses

    config = dataclasses.replace(CONFIG, volume_bucket_ns=400_000)  # 400 ticks a bucket
    batch = market()

    def run(rows: int) -> list[tuple]:
        shard, out = DetectorShard(0, 1, SYMBOLS, config), []
        for lo in range(0, len(batch), rows):
            for a in shard.process(batch.take(slice(lo, lo + rows))).anomalies:
                assert len(a.snapshot) == config.snapshot_len
                out.append((a.ts_ns, a.symbol, int(a.metric), a.z, lo + a.row,
                            a.snapshot.ts_ns.tolist(), a.window["volume"]))
        return out

    whole = run(len(batch))
    assert len(whole) >= 3
    for rows in (7, 64, 1_000, 2_500):
        assert run(rows) == whole, rows
    # Ordered per symbol, not across symbols (a data plane's batch): the same trips.
    shuffled = np.concatenate([np.flatnonzero(batch.symbol_id == s)
                               for s in range(len(SYMBOLS))])
    got = DetectorShard(0, 1, SYMBOLS, config).process(batch.take(shuffled)).anomalies
    assert sorted((a.ts_ns, a.symbol, a.snapshot.ts_ns.tolist(), a.window["volume"],
                   int(shuffled[a.row])) for a in got) == \
        sorted((w[0], w[1], w[5], w[6], w[4]) for w in whole)
