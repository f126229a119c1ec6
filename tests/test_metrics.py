"""DecisionMetrics and InstrumentedBroker, asserted through the SDK's in-memory reader."""

from __future__ import annotations

import io
import json
import time

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from tripwire.execution import (
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    PaperBroker,
    Side,
    UnknownOrder,
)
from tripwire.metrics import (
    BACKEND_FAILURES,
    CANCELS,
    DECISION_LATENCY,
    DECISIONS,
    INCIDENTS_SKIPPED,
    METER_NAME,
    MODIFIES,
    NODE_LATENCY,
    ORDERS,
    RISK_REJECTS,
    VERDICTS,
    DecisionMetrics,
    InstrumentedBroker,
    console_provider,
    snapshot,
)
from tripwire.model import SimClock, SymbolTable, TickBatch


@pytest.fixture
def mem() -> tuple[DecisionMetrics, InMemoryMetricReader]:
    return DecisionMetrics.in_memory()


def wrapped(metrics: DecisionMetrics) -> InstrumentedBroker:
    return InstrumentedBroker(PaperBroker(SymbolTable(["BTCUSDT"]), SimClock(0)), metrics, "paper")


def limit_buy(coid: str, price: float = 90.0) -> OrderRequest:
    return OrderRequest(coid, "BTCUSDT", Side.BUY, 1.0, OrderType.LIMIT, limit_price=price)


@pytest.mark.parametrize(
    ("record", "name", "key"),
    [
        (lambda m: m.order_placed("paper"), ORDERS, "backend=paper"),
        (lambda m: m.order_cancelled("ccxt"), CANCELS, "backend=ccxt"),
        (lambda m: m.order_modified("backtest"), MODIFIES, "backend=backtest"),
        (lambda m: m.risk_reject("max_exposure"), RISK_REJECTS, "limit=max_exposure"),
        (lambda m: m.backend_failure("paper", "OrderRejected"), BACKEND_FAILURES, "backend=paper,error=OrderRejected"),
        (lambda m: m.verdict("NEWS_DRIVEN"), VERDICTS, "classification=NEWS_DRIVEN"),
        (lambda m: m.decision("REJECTED"), DECISIONS, "outcome=REJECTED"),
        (lambda m: m.incident_skipped("cooldown"), INCIDENTS_SKIPPED, "reason=cooldown"),
    ],
)
def test_each_counter_counts_per_attribute_set(mem, record, name, key):
    metrics, reader = mem
    record(metrics)
    record(metrics)
    assert snapshot(reader)[name] == {key: 2}


def test_counters_keep_attribute_values_apart(mem):
    metrics, reader = mem
    metrics.verdict("IGNORE")
    metrics.verdict("MANIPULATION")
    metrics.verdict("IGNORE")
    assert snapshot(reader)[VERDICTS] == {"classification=IGNORE": 2, "classification=MANIPULATION": 1}


def test_histograms_record_count_sum_min_max_in_ms(mem):
    metrics, reader = mem
    metrics.node_latency("signoff", "strategist", 12.5)
    metrics.node_latency("signoff", "strategist", 7.5)
    metrics.node_latency("triage", "classify", 3.0)
    metrics.decision_latency("signoff", 40.0)
    snap = snapshot(reader)
    assert snap[NODE_LATENCY] == {
        "graph=signoff,node=strategist": {"count": 2, "sum": 20.0, "min": 7.5, "max": 12.5},
        "graph=triage,node=classify": {"count": 1, "sum": 3.0, "min": 3.0, "max": 3.0},
    }
    assert snap[DECISION_LATENCY] == {"graph=signoff": {"count": 1, "sum": 40.0, "min": 40.0, "max": 40.0}}


def test_instruments_carry_their_units(mem):
    metrics, reader = mem
    metrics.order_placed("paper")
    metrics.node_latency("g", "n", 1.0)
    metrics.decision_latency("g", 1.0)
    data = reader.get_metrics_data()
    (scope,) = data.resource_metrics[0].scope_metrics
    assert scope.scope.name == METER_NAME
    units = {m.name: m.unit for m in scope.metrics}
    assert units == {ORDERS: "1", NODE_LATENCY: "ms", DECISION_LATENCY: "ms"}


def test_time_node_records_elapsed_ms(mem):
    metrics, reader = mem
    with metrics.time_node("signoff", "risk_gate"):
        time.sleep(0.01)
    point = snapshot(reader)[NODE_LATENCY]["graph=signoff,node=risk_gate"]
    assert point["count"] == 1
    assert point["sum"] >= 10.0  # milliseconds, not seconds


def test_time_node_records_when_the_block_raises(mem):
    metrics, reader = mem
    with pytest.raises(TimeoutError, match="llm"), metrics.time_node("triage", "classify"):
        raise TimeoutError("llm")
    assert snapshot(reader)[NODE_LATENCY]["graph=triage,node=classify"]["count"] == 1


def test_time_node_works_as_a_decorator(mem):
    metrics, reader = mem

    @metrics.time_node("g", "n")
    def node() -> int:
        return 7

    assert node() + node() == 14
    assert snapshot(reader)[NODE_LATENCY]["graph=g,node=n"]["count"] == 2


def test_default_meter_is_the_global_providers_and_costs_nothing_unset():
    # Without an SDK provider installed globally the API hands out no-op instruments.
    metrics = DecisionMetrics()
    metrics.order_placed("paper")
    metrics.decision_latency("signoff", 1.0)
    with metrics.time_node("g", "n"):
        pass


def test_snapshot_of_an_empty_reader_is_empty(mem):
    _, reader = mem
    assert snapshot(reader) == {}


def test_snapshot_is_json_serialisable_and_stable_across_reads(mem):
    metrics, reader = mem
    metrics.backend_failure("paper", "OrderRejected")
    metrics.decision("EXECUTED")
    metrics.node_latency("signoff", "execute", 2.0)
    first = snapshot(reader)
    # Cumulative temporality: reading again does not reset the counts.
    assert snapshot(reader) == first
    assert json.loads(json.dumps(first)) == first


# ----------------------------------------------------------------------------- broker


def test_broker_counts_place_cancel_replace(mem):
    metrics, reader = mem
    broker = wrapped(metrics)
    broker.place(limit_buy("tw-1"))
    broker.place(limit_buy("tw-2"))
    amended = broker.replace("tw-1", limit_price=95.0)
    cancelled = broker.cancel("tw-2")
    assert amended.request.limit_price == 95.0
    assert cancelled.status is OrderStatus.CANCELLED
    snap = snapshot(reader)
    assert snap[ORDERS] == {"backend=paper": 2}
    assert snap[MODIFIES] == {"backend=paper": 1}
    assert snap[CANCELS] == {"backend=paper": 1}
    assert BACKEND_FAILURES not in snap


def test_broker_idempotent_replace_does_not_double_count(mem):
    metrics, reader = mem
    broker = wrapped(metrics)
    first = broker.place(limit_buy("tw-1"))
    again = broker.place(limit_buy("tw-1"))
    assert again.id == first.id
    assert len(broker.orders()) == 1
    assert snapshot(reader)[ORDERS] == {"backend=paper": 1}


def test_broker_failing_place_counts_failure_and_reraises(mem):
    metrics, reader = mem
    broker = wrapped(metrics)
    bad = OrderRequest("tw-bad", "BTCUSDT", Side.BUY, 0.0)
    with pytest.raises(OrderRejected) as info:
        broker.place(bad)
    assert info.value.field == "qty"  # the backend's own exception, unchanged
    snap = snapshot(reader)
    assert snap[BACKEND_FAILURES] == {"backend=paper,error=OrderRejected": 1}
    assert ORDERS not in snap


def test_broker_failing_cancel_and_replace_count_failures(mem):
    metrics, reader = mem
    broker = wrapped(metrics)
    with pytest.raises(UnknownOrder):
        broker.cancel("nope")
    with pytest.raises(UnknownOrder):
        broker.replace("nope", qty=2.0)
    snap = snapshot(reader)
    assert snap[BACKEND_FAILURES] == {"backend=paper,error=UnknownOrder": 2}
    assert CANCELS not in snap
    assert MODIFIES not in snap


def test_broker_counts_non_execution_errors_by_class_name(mem):
    metrics, reader = mem

    class Down:
        def place(self, request):
            raise ConnectionError("venue unreachable")

    broker = InstrumentedBroker(Down(), metrics, "ccxt")
    with pytest.raises(ConnectionError, match="unreachable"):
        broker.place(limit_buy("tw-1"))
    assert snapshot(reader)[BACKEND_FAILURES] == {"backend=ccxt,error=ConnectionError": 1}


def test_broker_delegates_reads_and_extras(mem):
    metrics, _ = mem
    broker = wrapped(metrics)
    broker.place(OrderRequest("tw-m", "BTCUSDT", Side.BUY, 2.0))
    # on_ticks is a PaperBroker extra, reached through __getattr__.
    fills = broker.on_ticks(TickBatch.from_columns([0], [5], [100.0], [1.0]))
    assert [f.order_id for f in fills] == ["tw-m"]
    assert broker.fills("tw-m") == fills
    assert broker.get_order("tw-m").status is OrderStatus.FILLED
    assert [o.id for o in broker.orders("BTCUSDT")] == ["tw-m"]
    assert broker.orders(working_only=True) == []
    assert broker.positions()["BTCUSDT"].qty == 2.0
    assert broker.account() == broker.broker.account()
    with pytest.raises(AttributeError):
        _ = broker.no_such_method


def test_broker_forgets_oldest_ids_beyond_its_bound(mem):
    metrics, reader = mem
    broker = wrapped(metrics)
    broker.SEEN_LIMIT = 2
    for coid in ("tw-1", "tw-2", "tw-3"):
        broker.place(limit_buy(coid))
    broker.place(limit_buy("tw-3"))  # still remembered
    assert snapshot(reader)[ORDERS] == {"backend=paper": 3}


def test_console_provider_prints_the_instruments():
    out = io.StringIO()
    provider = console_provider(export_interval_ms=60_000, out=out)
    DecisionMetrics(provider.get_meter(METER_NAME)).order_placed("paper")
    provider.shutdown()  # flushes one last export
    assert ORDERS in out.getvalue()


# ----------------------------------------------------------------------------- export


def test_families_keep_types_labels_and_buckets(mem):
    metrics, reader = mem
    metrics.backend_failure("paper", "OrderRejected")
    metrics.decision_latency("signoff", 7.0)
    from tripwire.metrics import families

    fams = {f["name"]: f for f in families(reader)}
    assert fams[BACKEND_FAILURES]["kind"] == "counter"
    assert fams[BACKEND_FAILURES]["points"] == [
        {"labels": {"backend": "paper", "error": "OrderRejected"}, "value": 1}]
    hist = fams[DECISION_LATENCY]
    assert hist["kind"] == "histogram" and hist["unit"] == "ms"
    point = hist["points"][0]
    assert point["count"] == 1 and point["sum"] == 7.0
    assert len(point["counts"]) == len(point["bounds"]) + 1
    assert point["counts"][point["bounds"].index(10.0)] == 1  # 7 ms falls in (5, 10]
    json.dumps(families(reader))  # plain data: it crosses Ray process boundaries


def test_metrics_go_to_the_otlp_collector_when_configured():
    """[telemetry] exporter = "otlp": the same instruments that feed /metrics are exported
    to <endpoint>/v1/metrics (a loopback HTTP collector decodes the OTLP protobuf)."""
    import http.server
    import threading

    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    from tripwire import telemetry

    got: list[tuple[str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        telemetry.configure("otlp", endpoint=f"http://127.0.0.1:{server.server_port}",
                            service_name="tw-test")
        metrics, reader = DecisionMetrics.in_memory()
        metrics.order_placed("paper")
        metrics.node_latency("signoff", "risk_gate", 3.0)
        assert metrics.provider.force_flush(10_000)
        metrics.provider.shutdown()
    finally:
        telemetry.configure("off")
        server.shutdown()
        server.server_close()
    paths = {path for path, _ in got}
    assert "/v1/metrics" in paths
    names, services = set(), set()
    for path, body in got:
        if path != "/v1/metrics":
            continue
        req = ExportMetricsServiceRequest.FromString(body)
        for rm in req.resource_metrics:
            services |= {a.value.string_value for a in rm.resource.attributes
                         if a.key == "service.name"}
            for sm in rm.scope_metrics:
                names |= {m.name for m in sm.metrics}
    assert {ORDERS, NODE_LATENCY} <= names and services == {"tw-test"}
    # /metrics still reads the same instruments through the in-memory reader.
    assert snapshot(reader)[ORDERS] == {"backend=paper": 1}


def test_the_memory_exporter_sees_the_same_instruments():
    from tripwire import telemetry

    telemetry.configure("memory")
    try:
        metrics, _ = DecisionMetrics.in_memory()
        metrics.order_placed("paper")
        exported = telemetry.memory_metric_readers()
        assert len(exported) == 1
        assert snapshot(exported[0])[ORDERS] == {"backend=paper": 1}
    finally:
        telemetry.configure("off")
    with pytest.raises(RuntimeError, match="not configured with the 'memory' exporter"):
        telemetry.memory_metric_readers()
