"""The sign-off benchmark runs against a real private PostgreSQL and reports its figures
(no timing asserts: figures are for the README, behaviour is for tests)."""

import json

import pytest

from benchmarks import signoff


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_signoff_quick_json_prints_one_object_with_the_figures(capsys):
    assert signoff.main(["--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("signoff_overhead_ms_p50", "signoff_overhead_ms_p99", "triage_ms_p50",
                "decisions_per_s"):
        assert isinstance(result[key], float) and result[key] > 0, key
    # Every decision ran every node and placed exactly one order: none doubled, none lost.
    assert result["executed"] == result["sequential_decisions"] + result["concurrent_decisions"]
    assert result["orders"] == result["executed"] + 10  # plus the warm-up's ten
    assert set(result["meets_targets"]) == {"signoff_overhead_ms_p99"}
