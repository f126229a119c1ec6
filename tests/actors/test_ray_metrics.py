"""RayMetrics: Tripwire's counters reach Ray's metrics endpoint from inside an actor, and
outside Ray the same calls only keep local totals (and never start Ray)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from actors.ray_metrics import MAX_TAG_VALUES, OTHER, RayMetrics

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
SCRAPE_WAIT_S = 90  # Ray exports custom metrics every few seconds; a bound, not an assert


def _record(m: RayMetrics) -> None:
    m.ticks(1_000)
    m.ticks(234)
    m.trips(3)
    m.incident()
    m.verdict("NEWS_DRIVEN")
    m.verdict("NEWS_DRIVEN")
    m.verdict("IGNORE")
    m.decision("EXECUTED", latency_ms=420.0)
    m.order("paper")
    m.llm_call("rules")
    m.llm_cost(0.25, route="rules")
    m.queue_depth("incidents", 5)


EXPECTED = {
    "tripwire_ticks_ingested": 1234.0,
    "tripwire_trips": 3.0,
    "tripwire_incidents": 1.0,
    "tripwire_verdicts{class=NEWS_DRIVEN}": 2.0,
    "tripwire_verdicts{class=IGNORE}": 1.0,
    "tripwire_decisions{outcome=EXECUTED}": 1.0,
    "tripwire_decision_latency_ms": 1.0,
    "tripwire_orders{backend=paper}": 1.0,
    "tripwire_llm_calls{route=rules}": 1.0,
    "tripwire_llm_cost_usd{route=rules}": 0.25,
    "tripwire_queue_depth{queue=incidents}": 5.0,
}


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _value(text: str, metric: str, label: str = "") -> float:
    """Sum of a Prometheus metric's samples (over workers), optionally with one label."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(metric + "{") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_ray_metrics_reach_the_ray_metrics_endpoint(ray_local) -> None:
    ray = ray_local

    @ray.remote(num_cpus=0)
    class Host:
        def __init__(self) -> None:
            self.m = RayMetrics()

        def run(self) -> tuple[bool, dict[str, float]]:
            _record(self.m)
            return self.m.enabled, self.m.totals()

    host = Host.remote()
    enabled, totals = ray.get(host.run.remote(), timeout=120)
    assert enabled
    assert totals == EXPECTED
    port = ray._private.worker.global_worker.node.metrics_export_port
    assert port, "Ray has no metrics export port: the dashboard would show nothing"
    deadline = time.monotonic() + SCRAPE_WAIT_S
    text = ""
    while time.monotonic() < deadline:
        text = _scrape(port)
        if _value(text, "ray_tripwire_orders_total") >= 1:
            break
        time.sleep(1)
    assert _value(text, "ray_tripwire_ticks_ingested_total") >= 1234
    assert _value(text, "ray_tripwire_verdicts_total", 'class="NEWS_DRIVEN"') >= 2
    assert _value(text, "ray_tripwire_orders_total", 'backend="paper"') >= 1
    assert _value(text, "ray_tripwire_llm_cost_usd_total", 'route="rules"') >= 0.25
    ray.kill(host)


def test_without_ray_it_is_a_no_op_that_still_counts() -> None:
    code = (
        "import ray\n"
        "from actors.ray_metrics import RayMetrics\n"
        "from tests.actors.test_ray_metrics import EXPECTED, _record\n"
        "m = RayMetrics()\n"
        "assert not m.enabled\n"
        "_record(m)\n"
        "assert m.totals() == EXPECTED, m.totals()\n"
        "assert not ray.is_initialized()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_bad_amounts_are_refused_and_tag_values_are_bounded() -> None:
    m = RayMetrics(enabled=False)
    with pytest.raises(ValueError, match="tripwire_ticks_ingested: amount must be a finite"):
        m.ticks(-1)
    with pytest.raises(ValueError, match="must be a finite number"):
        m.llm_cost(float("nan"))
    with pytest.raises(TypeError, match="amount must be a number, got str"):
        m.trips("3")  # type: ignore[arg-type]
    m.ticks(0)  # nothing happened: nothing recorded
    assert m.totals() == {}
    for i in range(MAX_TAG_VALUES + 5):
        m.verdict(f"class-{i}")
    assert m.totals()[f"tripwire_verdicts{{class={OTHER}}}"] == 5
    assert m.tags_overflowed == 5
    m.verdict("class-0")  # a value seen before the bound keeps its own series
    assert m.totals()["tripwire_verdicts{class=class-0}"] == 2
