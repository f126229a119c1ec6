"""DetectorBank: parity with the Python reference, cool-down, buckets, rejections, pickling."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tripwire.detect import DetectorBank, DetectorConfig, Metric, MetricConfig, RejectReason
from tripwire.detect.reference import ReferenceBank
from tripwire.model import TickBatch


def small_config(**over) -> DetectorConfig:
    base = dict(
        returns=MetricConfig(window=20, threshold=2.5, min_periods=10),
        volume=MetricConfig(window=15, threshold=2.5, min_periods=5, two_sided=False),
        price=MetricConfig(window=25, threshold=2.0, min_periods=10),
        cooldown_ns=0,
        snapshot_len=8,
        # The statistics before issue 16 (trade-to-trade returns, raw volume sums); the
        # bucketed ones have their own tests in test_statistics.py.
        return_bucket_ns=0,
        volume_statistic="sum",
        min_bucket_trades=0,
    )
    base.update(over)
    return DetectorConfig(**base)


def random_batch(rng, n, n_symbols, start_ts=0, bad_rate=0.0):
    sym = rng.integers(0, n_symbols, n).astype(np.int32)
    ts = start_ts + np.cumsum(rng.integers(0, 3, n)).astype(np.int64)
    price = 100 * np.exp(np.cumsum(0.01 * rng.standard_t(3, n)))
    qty = rng.lognormal(0, 1, n)
    if bad_rate:
        k = rng.random(n) < bad_rate
        kinds = rng.integers(0, 6, n)
        price = np.where(k & (kinds == 0), np.nan, price)
        price = np.where(k & (kinds == 1), -price, price)
        price = np.where(k & (kinds == 2), 0.0, price)
        price = np.where(k & (kinds == 3), np.inf, price)
        qty = np.where(k & (kinds == 4), -qty, qty)
        ts = np.where(k & (kinds == 5), ts - 50, ts)
    return sym, ts, price, qty


def assert_same_as_reference(res, ref_trips, ref_rejected):
    t = res.trips
    got = list(zip(t.row.tolist(), t.ts_ns.tolist(), t.symbol_id.tolist(), t.metric.tolist(), strict=True))
    want = [(r[0], r[1], r[2], r[3]) for r in ref_trips]
    assert got == want
    for i, r in enumerate(ref_trips):
        z, mean, sd, value = r[4:]
        assert t.z[i] == pytest.approx(z, rel=1e-9, abs=1e-9)
        assert t.mean[i] == pytest.approx(mean, rel=1e-12, abs=1e-12)
        assert t.std[i] == pytest.approx(sd, rel=1e-9, abs=1e-12)
        assert t.value[i] == pytest.approx(value, rel=1e-15, abs=0)
    rej = list(zip(res.rejected.row.tolist(), res.rejected.reason.tolist(), strict=True))
    assert rej == [(r, int(reason)) for r, reason in ref_rejected]


@given(
    seed=st.integers(0, 2**32 - 1),
    bucket=st.sampled_from([0, 4]),
    cooldown=st.sampled_from([0, 15]),
    ddof=st.sampled_from([0, 1]),
    bad_rate=st.sampled_from([0.0, 0.05]),
)
def test_matches_reference_bank(seed, bucket, cooldown, ddof, bad_rate):
    rng = np.random.default_rng(seed)
    cfg = small_config(volume_bucket_ns=bucket, cooldown_ns=cooldown, ddof=ddof)
    bank, ref = DetectorBank(cfg, n_symbols=3), ReferenceBank(cfg, n_symbols=3)
    ts0 = 0
    for n in (150, 1, 0, 200):  # several batches, state carries across them
        cols = random_batch(rng, n, 3, ts0, bad_rate)
        ts0 = int(cols[1].max(initial=ts0)) + 1
        assert_same_as_reference(bank.push_batch(*cols), *ref.push_batch(*cols))
    for s in range(3):
        got = bank.snapshot(s)
        want = list(ref.recent[s])
        assert list(zip(got.ts_ns.tolist(), got.price.tolist(), got.qty.tolist(), strict=True)) == want
    assert bank.counters()["suppressed"] == ref.suppressed


def test_flash_crash_trips_return_and_price_once_per_cooldown():
    rng = np.random.default_rng(1)
    n = 3_000
    price = 100 * np.exp(np.cumsum(1e-4 * rng.standard_normal(n)))
    price[2_000:2_050] *= np.linspace(0.9, 0.95, 50)  # crash, slow partial recovery
    ts = np.arange(n, dtype=np.int64) * 1_000_000  # 1 ms apart
    cfg = DetectorConfig(
        returns=MetricConfig(window=500, threshold=8.0),
        price=MetricConfig(window=500, threshold=8.0),
        volume=MetricConfig(enabled=False),
        cooldown_ns=10**9,  # 1 s = 1000 ticks
        return_bucket_ns=0,  # trade to trade
    )
    bank = DetectorBank(cfg, n_symbols=1)
    res = bank.push_batch(np.zeros(n, np.int32), ts, price, np.ones(n))
    assert set(res.trips.row.tolist()) == {2_000}
    assert set(res.trips.metric.tolist()) == {Metric.RETURN, Metric.PRICE}
    ret = res.trips.z[res.trips.metric == Metric.RETURN][0]
    assert ret < -8.0  # two-sided: a drop trips with negative z
    c = bank.counters()
    assert c["trips"] == 1 and c["suppressed"] >= 1 and c["ticks"] == n


def test_volume_burst_trips_before_its_bucket_closes_and_quiet_buckets_count_as_zero():
    sec = 10**9
    cfg = DetectorConfig(
        returns=MetricConfig(enabled=False),
        price=MetricConfig(enabled=False),
        volume=MetricConfig(window=20, threshold=4.0, two_sided=False),
        volume_bucket_ns=sec,
        cooldown_ns=0,
        volume_statistic="sum",
        min_bucket_trades=0,
    )
    bank = DetectorBank(cfg, n_symbols=1)
    rng = np.random.default_rng(4)
    # 30 one-second buckets of ~10 units, 3 trades each.
    ts = np.repeat(np.arange(30, dtype=np.int64) * sec, 3) + np.tile([0, 1, 2], 30)
    qty = rng.uniform(3.0, 3.6, len(ts))
    res = bank.push_batch(np.zeros(len(ts), np.int32), ts, np.full(len(ts), 5.0), qty)
    assert len(res.trips) == 0
    # Bucket 30: the burst. The second trade already exceeds mean + 4 std.
    burst_ts = np.array([30 * sec, 30 * sec + 5, 30 * sec + 9], dtype=np.int64)
    res = bank.push_batch(np.zeros(3, np.int32), burst_ts, np.full(3, 5.0), np.array([3.0, 50, 50]))
    assert res.trips.row.tolist() == [1, 2]
    assert res.trips.value.tolist() == [53.0, 103.0]  # the running bucket sum
    stats = bank.window_stats(0)["volume"]
    assert stats["count"] == 20
    # 25 quiet seconds: the window fills with zeros (capped at its size), so the mean drops.
    bank.push_batch(np.zeros(1, np.int32), np.array([56 * sec]), np.array([5.0]), np.array([1.0]))
    stats = bank.window_stats(0)["volume"]
    assert stats["count"] == 20 and stats["mean"] == 0.0


def test_rejections_are_reported_counted_and_leave_state_untouched():
    cfg = small_config()
    bank, clean = DetectorBank(cfg, n_symbols=2), DetectorBank(cfg, n_symbols=2)
    good = (
        np.array([0, 1, 0, 1], np.int32),
        np.array([10, 10, 20, 20], np.int64),
        np.array([100.0, 50.0, 101.0, 51.0]),
        np.array([1.0, 2.0, 1.0, 2.0]),
    )
    bank.push_batch(*good)
    clean.push_batch(*good)
    bad = (
        np.array([0, 0, 0, 0, 0, 1, 1], np.int32),
        np.array([30, 31, 32, 33, 5, 30, 31], np.int64),
        np.array([math.nan, math.inf, -1.0, 0.0, 100.0, 52.0, 52.0]),
        np.array([1.0, 1.0, 1.0, 1.0, 1.0, -2.0, math.nan]),
    )
    res = bank.push_batch(*bad)
    assert res.rejected.row.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert [RejectReason(r) for r in res.rejected.reason] == [
        RejectReason.BAD_PRICE, RejectReason.BAD_PRICE, RejectReason.BAD_PRICE,
        RejectReason.BAD_PRICE, RejectReason.OUT_OF_ORDER, RejectReason.BAD_QTY,
        RejectReason.BAD_QTY,
    ]
    c = bank.counters()
    assert c["rejected"] == 7 and c["ticks"] == 4
    assert c["rejected_by_reason"] == {"bad_price": 4, "bad_qty": 2, "out_of_order": 1}
    for s in (0, 1):
        np.testing.assert_equal(bank.window_stats(s), clean.window_stats(s))
        assert bank.snapshot(s).ts_ns.tolist() == clean.snapshot(s).ts_ns.tolist()


def _structural_cases():
    n = 3
    ok = dict(
        symbol_ids=np.zeros(n, np.int32), ts_ns=np.arange(n, dtype=np.int64),
        price=np.ones(n), qty=np.ones(n),
    )
    return [
        ({**ok, "price": np.ones(2)}, ValueError, "array lengths differ: symbol_ids=3, ts_ns=3, price=2"),
        ({**ok, "symbol_ids": np.zeros(n, np.int64)}, TypeError, "symbol_ids must have dtype int32, got int64"),
        ({**ok, "ts_ns": np.arange(n, dtype=np.float64)}, TypeError, "ts_ns must have dtype int64"),
        ({**ok, "price": np.ones(n, np.float32)}, TypeError, "price must have dtype float64, got float32"),
        ({**ok, "qty": [1.0, 1.0, 1.0]}, TypeError, "qty must be a numpy array of float64, got list"),
        ({**ok, "symbol_ids": np.array([0, 2, 0], np.int32)}, ValueError, r"symbol id 2 at row 1 is out of range \[0, 2\)"),
        ({**ok, "symbol_ids": np.array([0, 0, -1], np.int32)}, ValueError, "symbol id -1 at row 2"),
        ({**ok, "price": np.array([1.0, math.nan, 1.0]), "strict": True}, ValueError, r"row 1 rejected \(bad_price\).*batch not applied"),
        ({**ok, "ts_ns": np.array([5, 4, 6], np.int64), "strict": True}, ValueError, r"row 1 rejected \(out_of_order\)"),
    ]


@pytest.mark.parametrize("kwargs, exc, message", _structural_cases())
def test_bad_batches_raise_clearly_and_apply_nothing(kwargs, exc, message):
    bank = DetectorBank(small_config(), n_symbols=2)
    bank.push_batch(np.zeros(1, np.int32), np.zeros(1, np.int64), np.ones(1), np.ones(1))
    before = (bank.counters(), bank.window_stats(0), bank.snapshot(0).ts_ns.tolist())
    with pytest.raises(exc, match=message):
        bank.push_batch(**kwargs)
    after = (bank.counters(), bank.window_stats(0), bank.snapshot(0).ts_ns.tolist())
    np.testing.assert_equal(after, before)  # NaN-aware


def test_strict_mode_accepts_a_clean_batch():
    bank = DetectorBank(small_config(), n_symbols=1)
    res = bank.push_batch(
        np.zeros(3, np.int32), np.array([1, 1, 2], np.int64), np.ones(3), np.zeros(3), strict=True
    )
    assert len(res.rejected) == 0 and bank.counters()["ticks"] == 3


def test_snapshot_holds_the_last_ticks_oldest_first():
    bank = DetectorBank(small_config(snapshot_len=4), n_symbols=2)
    n = 10
    bank.push_batch(
        np.array([0] * n, np.int32), np.arange(n, dtype=np.int64), 100.0 + np.arange(n),
        np.arange(n, dtype=np.float64),
    )
    snap = bank.snapshot(0)
    assert snap.ts_ns.tolist() == [6, 7, 8, 9]
    assert snap.price.tolist() == [106.0, 107.0, 108.0, 109.0]
    assert len(bank.snapshot(1)) == 0
    with pytest.raises(ValueError, match="symbol id 2 is out of range"):
        bank.snapshot(2)


def test_pickle_round_trip_continues_identically():
    rng = np.random.default_rng(8)
    cfg = small_config(volume_bucket_ns=3, cooldown_ns=7)
    bank = DetectorBank(cfg, n_symbols=4)
    bank.push_batch(*random_batch(rng, 500, 4, bad_rate=0.02))
    clone = pickle.loads(pickle.dumps(bank))
    assert clone.config == bank.config and clone.counters() == bank.counters()
    nxt = random_batch(rng, 500, 4, start_ts=10_000)
    a, b = bank.push_batch(*nxt), clone.push_batch(*nxt)
    for field in ("row", "symbol_id", "metric", "z", "mean", "std", "value"):
        np.testing.assert_array_equal(getattr(a.trips, field), getattr(b.trips, field))
    assert bank.counters() == clone.counters()
    for s in range(4):
        np.testing.assert_equal(bank.window_stats(s), clone.window_stats(s))


def test_reset_symbol_forgets_windows_but_keeps_counters():
    bank = DetectorBank(small_config(), n_symbols=1)
    n = 50
    bank.push_batch(np.zeros(n, np.int32), np.arange(n, dtype=np.int64), np.ones(n) * 3, np.ones(n))
    bank.reset_symbol(0)
    stats = bank.window_stats(0)
    assert stats["price"]["count"] == 0 and stats["symbol"]["ticks"] == n
    # Time may restart after a reset (e.g. a replay).
    res = bank.push_batch(np.zeros(1, np.int32), np.zeros(1, np.int64), np.ones(1), np.ones(1))
    assert len(res.rejected) == 0


def test_tick_batch_and_empty_batch():
    bank = DetectorBank(small_config(), n_symbols=1)
    res = bank.push(TickBatch.empty())
    assert len(res.trips) == 0 and len(res.rejected) == 0
    res = bank.push(TickBatch.from_columns([0], [1], [10.0], [1.0]))
    assert bank.counters()["ticks"] == 1


def test_memory_is_o_window_per_symbol():
    small = DetectorBank(small_config(), n_symbols=1).bytes_per_symbol
    cfg = small_config(price=MetricConfig(window=10_025, min_periods=10))
    assert DetectorBank(cfg, n_symbols=1).bytes_per_symbol - small == 8 * 10_000


def test_bad_construction_is_refused():
    with pytest.raises(ValueError, match="n_symbols must be an integer"):
        DetectorBank(small_config(), n_symbols=0)


def test_arrays_with_equal_but_distinct_dtype_objects_are_accepted():
    # Regression: arrays unpickled out-of-band (as Ray's object store hands them over)
    # carry a dtype equal to, but not the same object as, np.dtype(np.int64).
    batch = TickBatch.from_columns([0, 0], [1, 2], [10.0, 10.5], [1.0, 1.0])
    cols = [pickle.loads(pickle.dumps(c, protocol=5)) for c in (batch.symbol_id, batch.ts_ns)]
    assert cols[1].dtype is not np.dtype(np.int64)
    bank = DetectorBank(small_config(), n_symbols=1)
    res = bank.push_batch(cols[0], cols[1], batch.price, batch.qty)
    assert len(res.rejected) == 0 and bank.counters()["ticks"] == 2
