"""The API benchmark drives the Serve app and the uvicorn baseline over real HTTP, with a
private PostgreSQL and Ray, and reports figures for both (no timing asserts)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import serve

ROOT = Path(__file__).resolve().parents[2]
TIMED = ("api_p50_ms", "api_p99_ms", "api_single_client_p50_ms", "ticks_post_p50_ms",
         "ticks_post_p99_ms", "ticks_post_json_p50_ms", "ticks_per_s_via_http",
         "ticks_per_s_json")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_serve_quick_json_prints_one_object_for_both_hosts():
    # A subprocess: the benchmark starts its own Ray and Serve, apart from the test session's.
    proc = subprocess.run([sys.executable, "-m", "benchmarks.serve", "--quick", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), proc.stderr[-3000:]
    result = json.loads(proc.stdout)  # exactly one JSON document on stdout
    load = serve.Load.of(quick=True)
    for host in (result, result["baseline_uvicorn"]):
        for key in TIMED:
            assert isinstance(host[key], float) and host[key] > 0, key
        # Every request answered 2xx and every tick was accepted (each symbol's time rises).
        assert host["errors"] == 0, host["first_error"]
        assert host["requests"] == {"single": load.single, "get": serve.CLIENTS * load.get,
                                    "arrow": serve.CLIENTS * load.arrow,
                                    "json": serve.CLIENTS * load.json}
        assert host["ticks_accepted"] == serve.BATCH_TICKS * serve.CLIENTS * (load.arrow
                                                                               + load.json)
    assert set(result["serve_overhead_ms"]) == {
        k for k in result if k.endswith("_ms") and k != "serve_overhead_ms"}
    assert result["machine"]["cpus"] >= 1


def test_tick_source_keeps_time_rising_per_symbol_and_encodes_both_forms():
    from serve_apps.codec import decode_arrow, decode_rows
    from tripwire.model import SymbolTable

    src = serve.TickSource(["AUSDT", "BUSDT"], seed=1)
    first, second = src.batch(10), src.batch(10)
    for name in ("AUSDT", "BUSDT"):
        ts = [t for s, t in zip(first["symbol"] + second["symbol"],
                                list(first["ts_ns"]) + list(second["ts_ns"]), strict=True)
              if s == name]
        assert ts == sorted(ts) and len(set(ts)) == len(ts)
    table = SymbolTable(["AUSDT", "BUSDT"])
    for decoded in (decode_arrow(serve.arrow_body(first), table),
                    decode_rows(serve.json_body(first), table)):
        assert len(decoded.batch) == 10 and not decoded.unknown
    with pytest.raises(ValueError, match="at least one symbol"):
        serve.TickSource([], seed=0)
