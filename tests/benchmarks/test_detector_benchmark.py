"""The detector benchmark runs and reports what the README promises (no timing asserts)."""

import json

import pytest

from benchmarks import detector

REQUIRED = (
    "bank_ns_per_tick", "rolling_ns_per_update", "limit_ns_per_update", "rolling_vs_limit_ratio",
    "single_push_ns", "numpy_reference_ns_per_update", "python_loop_ns_per_update",
    "max_abs_z_error", "bank_bytes_per_symbol", "bank_ns_per_tick_w10000",
    "bank_ns_per_tick_legacy", "bank_ns_per_tick_default", "bank_default_vs_legacy_ratio",
)


@pytest.mark.slow
def test_quick_json_run_prints_one_object_with_the_figures(capsys):
    assert detector.main(["--quick", "--json", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out)  # exactly one JSON object, nothing else on stdout
    for key in REQUIRED:
        assert isinstance(result[key], int | float), key
    # Behaviour, not speed: the exactness figure is a correctness property.
    assert result["max_abs_z_error"] <= 1e-7
    assert result["naive_sumsq_max_abs_z_error"] > 1e-3
    assert result["bank_bytes_per_symbol_w10000"] > result["bank_bytes_per_symbol"]
