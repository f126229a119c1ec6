"""Bootstrap intervals and the paired test on inputs whose answers are known."""

import math

import pytest

from tripwire.lab.stats import bootstrap_ci, paired_test, sign_flip_p


def test_bootstrap_of_a_constant_is_the_constant_and_is_deterministic():
    ci = bootstrap_ci([2.0] * 7)
    assert (ci.mean, ci.lo, ci.hi, ci.n) == (2.0, 2.0, 2.0, 7)
    assert bootstrap_ci([1.0, 5.0, 2.0, 8.0]) == bootstrap_ci([1.0, 5.0, 2.0, 8.0])


def test_bootstrap_interval_brackets_the_mean_and_skips_missing_values():
    ci = bootstrap_ci([1.0, 2.0, 3.0, 4.0, float("nan"), None])
    assert ci.n == 4 and ci.mean == 2.5 and 1.0 <= ci.lo < 2.5 < ci.hi <= 4.0
    one = bootstrap_ci([3.0])
    assert one.mean == 3.0 and math.isnan(one.lo) and one.text() == "3"
    assert bootstrap_ci([]).n == 0


def test_sign_flip_p_is_exact_for_small_samples():
    # six positive differences: only the all-plus and all-minus patterns are as extreme
    assert sign_flip_p(__import__("numpy").array([1.0] * 6)) == pytest.approx(2 / 64)


def test_paired_test_verdicts():
    better = paired_test([5.0, 6.0, 7.0, 5.0, 6.0, 7.0], [1.0] * 6)
    assert better.verdict == "better" and better.mean_diff == 5.0 and better.p_value < 0.05
    worse = paired_test([0.0] * 6, [3.0, 4.0, 5.0, 3.0, 4.0, 5.0])
    assert worse.verdict == "worse"
    mixed = paired_test([1.0, -1.0, 2.0, -2.0, 1.0, -1.0], [0.0] * 6)
    assert mixed.verdict == "no significant difference" and mixed.p_value == 1.0
    # three seeds cannot reach p < 0.05 whatever the data: said plainly
    assert paired_test([9.0, 9.0, 9.0], [0.0] * 3).verdict == "underpowered"


def test_paired_test_refuses_unpaired_inputs():
    with pytest.raises(ValueError, match="same seeds"):
        paired_test([1.0, 2.0], [1.0])
