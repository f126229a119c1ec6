"""RollingStats: exactness against exact references, edge cases, bad input, pickling."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.detect.series import (
    adversarial_walk,
    fsum_zscore,
    max_error_vs_exact,
    sample_indices,
)
from tripwire.detect import RollingStats, reference
from tripwire.detect.reference import exact_zscore

TOL = 1e-7


def state(rs: RollingStats) -> tuple:
    return (rs.count, rs.mean, rs.variance, rs.rejected)


# ------------------------------------------------------------------ exactness


@pytest.mark.slow
@pytest.mark.parametrize("window, samples", [(100, 200), (1000, 40)])
def test_adversarial_walk_1e7_updates_within_1e7_of_exact(window, samples):
    x = adversarial_walk(10_000_000)
    z = RollingStats(window).push_many(x)
    err = max_error_vs_exact(x, z, window, sample_indices(len(x), window, samples))
    assert err <= TOL, f"max |z - exact| = {err:.3g}"


def test_the_adversarial_series_defeats_the_naive_update():
    # Guards the test above: on this series the textbook update is visibly wrong, so an
    # implementation that fell back to it would fail there.
    x = adversarial_walk(200_000)
    idx = sample_indices(len(x), 100, 100)
    naive = reference.naive_sumsq_zscores(x, 100, idx)
    exact = np.array([exact_zscore(x[i - 100 : i], x[i]) for i in idx])
    assert np.nanmax(np.abs(naive - exact)) > 1e-3
    assert max_error_vs_exact(x, RollingStats(100).push_many(x), 100, idx) <= TOL


# The detectors' numeric domain: zero, or magnitudes from 1e-100 up. Below ~1e-154 a
# squared deviation underflows in double arithmetic, the variance reads 0 and z is 0 by
# the zero-variance rule (hypothesis found [0, 1.7e-205, 0]: exact z -1, ours 0).
DOMAIN = st.one_of(st.just(0.0), st.floats(1e-100, 1e6), st.floats(-1e6, -1e-100))


@given(
    values=st.lists(DOMAIN, min_size=1, max_size=120),
    window=st.integers(1, 40),
    min_periods=st.integers(1, 40),
    ddof=st.sampled_from([0, 1]),
)
def test_matches_exact_reference_on_random_data(values, window, min_periods, ddof):
    min_periods = min(min_periods, window)
    x = np.array(values)
    z = RollingStats(window, min_periods=min_periods, ddof=ddof).push_many(x)
    need = max(min_periods, ddof + 1)
    for i in range(len(x)):
        w = x[max(0, i - window) : i]
        if len(w) < need:
            assert math.isnan(z[i])
        else:
            exact = exact_zscore(w, x[i], ddof)
            assert abs(z[i] - exact) <= TOL + 1e-9 * abs(exact), (i, z[i], exact)


@given(
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from([1e-3, 1.0, 1e5, 1e9]),
    noise=st.sampled_from([1e-9, 1e-4, 1.0]),
    window=st.sampled_from([2, 7, 50]),
)
def test_matches_numpy_reference_on_offset_noise(seed, level, noise, window):
    rng = np.random.default_rng(seed)
    x = level + noise * level * rng.standard_normal(400)
    z = RollingStats(window).push_many(x)
    ref = reference.rolling_zscores(x, window)
    np.testing.assert_array_equal(np.isnan(z), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert np.max(np.abs(z[ok] - ref[ok]) / (1 + np.abs(ref[ok])), initial=0) < 1e-6


def test_level_jump_then_quiet_stays_exact():
    # A large value leaving the window collapses the variance: the case where a sliding
    # update without re-synchronisation reports garbage (and false trips).
    rng = np.random.default_rng(5)
    quiet = 1e5 + 1e-4 * rng.standard_normal(500)
    jumped = 2e5 + 1e-4 * rng.standard_normal(800)
    spike = quiet.copy()
    spike[250] = 1e12
    for x in (np.concatenate([quiet, jumped]), spike):
        z = RollingStats(100).push_many(x)
        for i in range(100, len(x)):
            exact = exact_zscore(x[i - 100 : i], x[i])
            # z reaches ~1e9 at the jump, where one ulp is ~1e-7: relative there.
            assert abs(z[i] - exact) <= TOL + 1e-12 * abs(exact), (i, z[i], exact)


@pytest.mark.slow
def test_window_one_million_stays_exact():
    w = 1_000_000
    x = adversarial_walk(w + 200_000, seed=11)
    z = RollingStats(w).push_many(x)
    assert np.isnan(z[:w]).all()
    for i in (w, w + 77_777, len(x) - 1):
        assert abs(z[i] - fsum_zscore(x[i - w : i], x[i])) <= TOL


@pytest.mark.parametrize("window", [1, 2, 3, 10, 1000, 1_000_000])
@pytest.mark.parametrize("ddof", [0, 1])
def test_constant_series_gives_zero_after_warm_up(window, ddof):
    x = np.full(window + 5, 12345.678)
    z = RollingStats(window, ddof=ddof).push_many(x)
    if window <= ddof:
        assert np.isnan(z).all()  # never enough values for a sample variance
    else:
        assert np.isnan(z[:window]).all()
        assert (z[window:] == 0.0).all()


def test_single_and_batch_pushes_agree_bit_for_bit():
    x = adversarial_walk(30_000, seed=2)
    one = RollingStats(100, min_periods=10)
    singles = np.array([one.push(v) for v in x])
    batch = RollingStats(100, min_periods=10).push_many(x)
    np.testing.assert_array_equal(singles, batch)
    assert one.get() == batch[-1]


# ------------------------------------------------------------------ edge cases


def test_fewer_than_min_periods_is_nan():
    rs = RollingStats(10, min_periods=4)
    z = [rs.push(v) for v in (1.0, 2.0, 4.0, 8.0, 16.0)]
    assert all(math.isnan(v) for v in z[:4])
    assert not math.isnan(z[4])


def test_zero_variance_window_gives_zero_even_for_a_far_value():
    rs = RollingStats(5)
    rs.push_many(np.full(5, 7.0))
    assert rs.zscore(-3.0) == 0.0
    assert rs.push(1e9) == 0.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_is_rejected_counted_and_window_untouched(bad):
    rs = RollingStats(4, min_periods=2)
    rs.push_many(np.array([1.0, 2.0, 3.0]))
    before = state(rs)
    assert math.isnan(rs.push(bad))
    z = rs.push_many(np.array([bad, 2.5, bad]))
    assert math.isnan(z[0]) and math.isnan(z[2]) and not math.isnan(z[1])
    assert rs.rejected == 3
    assert (rs.count, rs.mean) == (4, np.mean([1.0, 2.0, 3.0, 2.5]))
    assert before[0] == 3


@pytest.mark.parametrize("bad", [0.0, -1.0, -1e-300])
def test_positive_only_rejects_non_positive(bad):
    rs = RollingStats(3, min_periods=2, positive_only=True)
    rs.push_many(np.array([1.0, 2.0]))
    before = state(rs)
    assert math.isnan(rs.push(bad))
    assert state(rs)[:3] == before[:3] and rs.rejected == 1


def test_strict_mode_raises_naming_value_and_index_and_changes_nothing():
    rs = RollingStats(3, min_periods=2, strict=True, positive_only=True)
    rs.push_many(np.array([1.0, 2.0]))
    before = state(rs)
    with pytest.raises(ValueError, match=r"value -5 at index 1 rejected: must be finite and > 0"):
        rs.push_many(np.array([3.0, -5.0, 4.0]))
    with pytest.raises(ValueError, match="nan"):
        rs.push(math.nan)
    assert state(rs) == before


# ------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize(
    "values, exc, message",
    [
        (np.ones(3, dtype=np.float32), TypeError, "values must have dtype float64, got float32"),
        (np.ones(3, dtype=np.int64), TypeError, "values must have dtype float64, got int64"),
        ([1.0, 2.0], TypeError, "values must be a numpy array of float64, got list"),
        (np.ones((2, 2)), ValueError, "values must be 1-D, got 2 dimensions"),
    ],
)
def test_bad_arrays_raise_clearly_and_change_nothing(values, exc, message):
    rs = RollingStats(3)
    rs.push_many(np.array([1.0, 2.0]))
    before = state(rs)
    with pytest.raises(exc, match=message):
        rs.push_many(values)
    assert state(rs) == before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"window": 0}, "window must be >= 1"),
        ({"window": 5, "min_periods": 6}, "min_periods must be <= window"),
        ({"window": 5, "min_periods": 0}, "min_periods must be >= 1"),
        ({"window": 5, "ddof": 2}, "ddof must be 0 or 1"),
    ],
)
def test_bad_construction_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RollingStats(**kwargs)


def test_non_contiguous_input_is_read_correctly():
    x = adversarial_walk(2_000)
    strided = x[::2]
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(
        RollingStats(10).push_many(strided), RollingStats(10).push_many(strided.copy())
    )


# ------------------------------------------------------------------ pickling, river API


def test_pickle_round_trip_continues_identically():
    x = adversarial_walk(5_000, seed=9)
    rs = RollingStats(100, min_periods=20, ddof=0, positive_only=True)
    rs.push_many(x[:3_000])
    rs.push(-1.0)  # a rejection, so the counter travels too
    clone = pickle.loads(pickle.dumps(rs))
    twin = copy.deepcopy(rs)
    assert (clone.window, clone.min_periods, clone.ddof, clone.positive_only) == (100, 20, 0, True)
    assert state(clone) == state(rs) and clone.resyncs == rs.resyncs
    a = rs.push_many(x[3_000:])
    np.testing.assert_array_equal(a, clone.push_many(x[3_000:]))
    np.testing.assert_array_equal(a, twin.push_many(x[3_000:]))


def test_corrupt_pickle_is_refused():
    rs = RollingStats(10)
    reducer = rs.__reduce_ex__(2)
    args = list(reducer[2]) if isinstance(reducer[2], tuple) else None
    assert args is not None
    args[8] = b"short"
    with pytest.raises(ValueError, match="wrong size"):
        reducer[0](*reducer[1]).__setstate__(tuple(args))


def test_river_style_update_get_and_batch_forms():
    rs = RollingStats(3, min_periods=2)
    assert rs.update(1.0).update(2.0) is rs
    assert math.isnan(rs.get())
    rs.update_many(np.array([3.0]))
    assert rs.get() == pytest.approx(2.1213203435596424)
    assert rs.count == 3 and rs.mean == 2.0 and rs.std == 1.0
    rs.clear()
    assert rs.count == 0 and math.isnan(rs.mean) and math.isnan(rs.get())
