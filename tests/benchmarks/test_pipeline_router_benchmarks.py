"""The pipeline and router benchmarks run and report what the README promises (no timing
asserts: figures are for the README, behaviour is for tests)."""

import json

import pytest

from benchmarks import pipeline, router


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_pipeline_quick_json_prints_one_object_with_the_figures(ray_local, capsys):
    assert pipeline.main(["--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("ticks_per_s", "ticks_per_s_with_store", "ticks_per_s_with_decisions",
                "detect_latency_p99_ms", "peak_rss_mb", "private_growth_second_half_mb"):
        assert isinstance(result[key], int | float), key
    assert result["ticks_stored"] == result["ticks"]  # the store run kept every tick
    assert result["latency_trips_timed"] > 0
    # The live driver (through the Serve app's data plane, decisions on) took every tick
    # of the same scenario, and every incident it raised was decided.
    live = result["with_decisions"]
    assert live["ticks"] == live["ticks_sent"] == result["ticks"] and live["rejected"] == 0
    assert live["decisions"] == live["incidents"]
    assert set(result["meets_targets"]) == {"ticks_per_s", "ticks_per_s_with_store",
                                            "ticks_per_s_with_decisions",
                                            "detect_latency_p99_ms"}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_router_quick_json_prints_one_object_with_the_figures(capsys):
    assert router.main(["--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("overhead_p50_us", "overhead_p99_us", "cache_hit_us_p50", "failover_ms"):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert result["calls"] == 200
