"""``/metrics`` is real Prometheus exposition: parsed back with prometheus_client's own parser.

The unit test feeds :func:`serve_apps.prometheus.exposition` what the services report (flat
sections and :func:`tripwire.metrics.families` of real OpenTelemetry instruments); the live
test asks the running Serve app (session fixture ``serve_app``) over HTTP.
"""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from serve_apps.prometheus import CONTENT_TYPE, exposition
from tests.serve_apps.conftest import LiveApp
from tripwire.metrics import DecisionMetrics, families

ODD = 'limit,a=b "quoted" \\ back\nslash'  # every character the text format must escape


def parsed(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fam, name: str, **labels: str) -> float:
    found = [s.value for s in fam.samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, fam.samples)
    return found[0]


def test_types_buckets_and_escaped_labels_survive_the_parser() -> None:
    metrics, reader = DecisionMetrics.in_memory()
    metrics.order_placed("paper")
    metrics.order_placed("paper")
    metrics.risk_reject(ODD)
    for ms in (0.5, 3.0, 3.0, 70_000.0, 500_000.0):  # the last one beyond every bound
        metrics.node_latency("signoff", "risk_gate", ms)
    sections = {"dataplane": {"ticks_in": 5, "checkpoint_bytes": 1024, "validator": {"x": 1}},
                "signoff": {"decided": 2, "inflight": 1, "queued": 0},
                "otel": families(reader)}
    fams = parsed(exposition(sections))

    # Running counts are counters (the parser strips the _total of the sample name).
    assert fams["tripwire_dataplane_ticks_in"].type == "counter"
    assert sample(fams["tripwire_dataplane_ticks_in"], "tripwire_dataplane_ticks_in_total") == 5
    assert fams["tripwire_signoff_decided"].type == "counter"
    # Levels are gauges; nested dicts are left out.
    for name in ("tripwire_dataplane_checkpoint_bytes", "tripwire_signoff_inflight",
                 "tripwire_signoff_queued"):
        assert fams[name].type == "gauge", name
    assert not any(name.startswith("tripwire_dataplane_validator") for name in fams)

    orders = fams["tripwire_orders"]
    assert orders.type == "counter"
    assert sample(orders, "tripwire_orders_total", backend="paper") == 2
    rejects = fams["tripwire_risk_rejects"]
    assert sample(rejects, "tripwire_risk_rejects_total", limit=ODD) == 1  # intact, one label

    hist = fams["tripwire_node_latency_milliseconds"]
    assert hist.type == "histogram"
    labels = {"graph": "signoff", "node": "risk_gate"}
    buckets = {s.labels["le"]: s.value for s in hist.samples
               if s.name.endswith("_bucket") and s.labels.items() >= labels.items()}
    assert buckets["1.0"] == 1 and buckets["5.0"] == 3  # cumulative
    assert buckets["60000.0"] == 3 and buckets["120000.0"] == 4 and buckets["+Inf"] == 5
    bounds = sorted(float(le) for le in buckets)
    assert bounds[-1] == math.inf and len(bounds) == 17  # 16 explicit bounds + +Inf
    assert sample(hist, "tripwire_node_latency_milliseconds_count", **labels) == 5
    assert sample(hist, "tripwire_node_latency_milliseconds_sum", **labels) == 570_006.5


def test_an_empty_report_is_an_empty_exposition() -> None:
    assert exposition({}) == ""
    assert exposition({"otel": [], "signoff": {}}) == ""


def test_the_live_app_serves_parseable_exposition(serve_app: LiveApp) -> None:
    serve_app.push_ticks(n=3)
    with serve_app.client(auth=False) as c:
        r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == CONTENT_TYPE
    fams = parsed(r.text)
    ticks = fams["tripwire_dataplane_ticks_in"]
    assert ticks.type == "counter" and sample(ticks, "tripwire_dataplane_ticks_in_total") >= 3
    assert fams["tripwire_signoff_inflight"].type == "gauge"
    assert fams["tripwire_signoff_submitted"].type == "counter"
    for fam in fams.values():  # every family is typed; nothing falls back to 'unknown'
        assert fam.type in ("counter", "gauge", "histogram"), fam.name
