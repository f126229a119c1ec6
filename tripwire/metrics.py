"""OpenTelemetry metrics of the decision core: orders, rejects, verdicts, latencies.

:class:`DecisionMetrics` creates the instruments once from a ``Meter`` (injectable; by default
the global meter provider's meter ``"tripwire"``) and offers one plainly named method per
event. :class:`InstrumentedBroker` wraps any execution backend and counts what it does.
:func:`snapshot` turns an in-memory reader's contents into a plain, JSON-serialisable dict for
the CLI summary and the HTTP ``/metrics`` route.

Exporting: :meth:`DecisionMetrics.in_memory` builds its provider with
:func:`tripwire.telemetry.meter_provider`, so the in-memory reader behind ``/metrics`` and,
when ``[telemetry]`` names an exporter (``otlp``: ``<endpoint>/v1/metrics``), a periodic
exporting reader see the same instruments. :func:`families` gives the reader's contents
with their types, label sets and histogram buckets (what ``serve_apps.prometheus`` turns
into the exposition format); :func:`snapshot` is the compact ``"k=v"`` view tests and
summaries read. Without an injected meter the instruments use the global meter provider,
a no-op until one is installed.

>>> metrics, reader = DecisionMetrics.in_memory()
>>> metrics.order_placed("paper")
>>> metrics.risk_reject("max_exposure")
>>> with metrics.time_node("signoff", "risk_gate"):
...     pass
>>> snap = snapshot(reader)
>>> snap[ORDERS], snap[RISK_REJECTS]
({'backend=paper': 1}, {'limit=max_exposure': 1})
>>> snap[NODE_LATENCY]["graph=signoff,node=risk_gate"]["count"]
1
>>> fams = {f["name"]: f for f in families(reader)}
>>> fams[ORDERS]["kind"], fams[ORDERS]["points"]
('counter', [{'labels': {'backend': 'paper'}, 'value': 1}])
>>> fams[NODE_LATENCY]["kind"], fams[NODE_LATENCY]["points"][0]["bounds"][:3]
('histogram', [1.0, 2.0, 5.0])
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    Gauge,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricReader,
    NumberDataPoint,
    PeriodicExportingMetricReader,
    Sum,
)

from tripwire import telemetry
from tripwire.execution.base import Account, Broker, Fill, Order, OrderRequest, Position

__all__ = [
    "BACKEND_FAILURES",
    "CANCELS",
    "DECISIONS",
    "DECISION_LATENCY",
    "INCIDENTS_SKIPPED",
    "METER_NAME",
    "MODIFIES",
    "NODE_LATENCY",
    "ORDERS",
    "RISK_REJECTS",
    "VERDICTS",
    "DecisionMetrics",
    "InstrumentedBroker",
    "console_provider",
    "families",
    "snapshot",
]

METER_NAME = "tripwire"

# Instrument names are a public interface (dashboards and alerts key on them): never rename.
ORDERS = "tripwire.orders"
CANCELS = "tripwire.cancels"
MODIFIES = "tripwire.modifies"
RISK_REJECTS = "tripwire.risk_rejects"
BACKEND_FAILURES = "tripwire.backend_failures"
VERDICTS = "tripwire.verdicts"
DECISIONS = "tripwire.decisions"
INCIDENTS_SKIPPED = "tripwire.incidents_skipped"
NODE_LATENCY = "tripwire.node_latency"
DECISION_LATENCY = "tripwire.decision_latency"

_COUNTERS = {
    ORDERS: "Orders accepted by an execution backend (attr: backend)",
    CANCELS: "Orders cancelled through a backend (attr: backend)",
    MODIFIES: "Orders amended through a backend (attr: backend)",
    RISK_REJECTS: "Proposals stopped by a risk limit or gate (attr: limit)",
    BACKEND_FAILURES: "Backend calls that raised (attrs: backend, error)",
    VERDICTS: "Triage verdicts (attr: classification)",
    DECISIONS: "Sign-off decisions (attr: outcome)",
    INCIDENTS_SKIPPED: "Incidents not triaged (attr: reason)",
}

# The SDK's default buckets stop at 10 s; a decision waits on LLM calls that can take a
# minute, so the upper buckets reach two minutes to keep slow tails distinguishable.
_LATENCY_BUCKETS_MS = (
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000,
)


class DecisionMetrics:
    """The decision core's counters and latency histograms, created once per meter."""

    provider: MeterProvider | None = None  # set by in_memory (its own provider)

    def __init__(self, meter: Meter | None = None) -> None:
        meter = meter if meter is not None else otel_metrics.get_meter(METER_NAME)
        self._counters = {
            name: meter.create_counter(name, unit="1", description=text)
            for name, text in _COUNTERS.items()
        }
        self._node_latency = meter.create_histogram(
            NODE_LATENCY,
            unit="ms",
            description="Time spent in one graph node (attrs: graph, node)",
            explicit_bucket_boundaries_advisory=_LATENCY_BUCKETS_MS,
        )
        self._decision_latency = meter.create_histogram(
            DECISION_LATENCY,
            unit="ms",
            description="End-to-end time of one decision graph run (attr: graph)",
            explicit_bucket_boundaries_advisory=_LATENCY_BUCKETS_MS,
        )

    @classmethod
    def in_memory(cls) -> tuple[DecisionMetrics, InMemoryMetricReader]:
        """Metrics on their own SDK provider: an in-memory reader (returned, for
        :func:`snapshot`, :func:`families` and ``/metrics``) plus the exporter that
        :func:`tripwire.telemetry.configure` chose. Own, not global: each orchestrator
        (several per process in tests and the local app) counts its own decisions."""
        reader = InMemoryMetricReader()
        provider = telemetry.meter_provider(reader)
        metrics = cls(provider.get_meter(METER_NAME))
        metrics.provider = provider  # to flush or shut down the exporter
        return metrics, reader

    def _add(self, name: str, attributes: Mapping[str, str]) -> None:
        self._counters[name].add(1, attributes)

    def order_placed(self, backend: str) -> None:
        self._add(ORDERS, {"backend": backend})

    def order_cancelled(self, backend: str) -> None:
        self._add(CANCELS, {"backend": backend})

    def order_modified(self, backend: str) -> None:
        self._add(MODIFIES, {"backend": backend})

    def risk_reject(self, limit: str) -> None:
        """``limit`` names the limit or gate that said no."""
        self._add(RISK_REJECTS, {"limit": limit})

    def backend_failure(self, backend: str, error: str) -> None:
        """``error`` is the exception's class name (a bounded set, unlike its message)."""
        self._add(BACKEND_FAILURES, {"backend": backend, "error": error})

    def verdict(self, classification: str) -> None:
        self._add(VERDICTS, {"classification": classification})

    def decision(self, outcome: str) -> None:
        self._add(DECISIONS, {"outcome": outcome})

    def incident_skipped(self, reason: str) -> None:
        self._add(INCIDENTS_SKIPPED, {"reason": reason})

    def node_latency(self, graph: str, node: str, ms: float) -> None:
        self._node_latency.record(ms, {"graph": graph, "node": node})

    def decision_latency(self, graph: str, ms: float) -> None:
        self._decision_latency.record(ms, {"graph": graph})

    @contextmanager
    def time_node(self, graph: str, node: str) -> Iterator[None]:
        """Record the block's wall time as node latency, also when it raises (a node that
        fails slowly, e.g. on a timeout, is exactly the one worth seeing)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.node_latency(graph, node, (time.perf_counter() - start) * 1e3)


# ----------------------------------------------------------------------------- broker


class InstrumentedBroker:
    """A :class:`tripwire.execution.base.Broker` that counts what the wrapped one does.

    Successful place/cancel/replace count orders/cancels/modifies; any exception counts a
    backend failure (by class name) and propagates unchanged. An idempotent re-place returns
    an order already counted, so an order counts only the first time its id is returned.
    """

    # Remembered order ids are bounded (oldest forgotten first): retries of a place come soon
    # after it, so forgetting very old ids cannot double count in practice.
    SEEN_LIMIT = 100_000

    def __init__(self, broker: Broker, metrics: DecisionMetrics, backend: str) -> None:
        self.broker = broker
        self.metrics = metrics
        self.backend = backend
        self._seen: dict[str, None] = {}  # insertion-ordered, so the oldest is evicted first

    def place(self, request: OrderRequest) -> Order:
        order = self._call(self.broker.place, request)
        if order.id not in self._seen:
            self._remember(order.id)
            self.metrics.order_placed(self.backend)
        return order

    def cancel(self, order_id: str) -> Order:
        order = self._call(self.broker.cancel, order_id)
        self.metrics.order_cancelled(self.backend)
        return order

    def replace(
        self,
        order_id: str,
        *,
        qty: float | None = None,
        limit_price: float | None = None,
        stop_loss: float | None = None,
        take_profit: float | None = None,
    ) -> Order:
        order = self._call(
            self.broker.replace,
            order_id,
            qty=qty,
            limit_price=limit_price,
            stop_loss=stop_loss,
            take_profit=take_profit,
        )
        self.metrics.order_modified(self.backend)
        return order

    def get_order(self, order_id: str) -> Order:
        return self.broker.get_order(order_id)

    def orders(self, symbol: str | None = None, *, working_only: bool = False) -> list[Order]:
        return self.broker.orders(symbol, working_only=working_only)

    def positions(self) -> dict[str, Position]:
        return self.broker.positions()

    def fills(self, order_id: str | None = None) -> list[Fill]:
        return self.broker.fills(order_id)

    def account(self) -> Account:
        return self.broker.account()

    def __getattr__(self, name: str) -> Any:
        # Backend extras (on_ticks, equity_curve...) pass through. Guard our own fields so a
        # half-built instance (e.g. during unpickling) fails plainly instead of recursing.
        if name in ("broker", "metrics", "backend", "_seen"):
            raise AttributeError(name)
        return getattr(self.broker, name)

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Order:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            self.metrics.backend_failure(self.backend, type(exc).__name__)
            raise

    def _remember(self, order_id: str) -> None:
        self._seen[order_id] = None
        if len(self._seen) > self.SEEN_LIMIT:
            del self._seen[next(iter(self._seen))]


# ----------------------------------------------------------------------------- export


def _key(attributes: Mapping[str, Any] | None) -> str:
    """``{"backend": "paper", "error": "X"}`` -> ``"backend=paper,error=X"`` (sorted)."""
    return ",".join(f"{k}={v}" for k, v in sorted((attributes or {}).items()))


def _point(point: NumberDataPoint | HistogramDataPoint) -> Any:
    if isinstance(point, HistogramDataPoint):
        return {"count": point.count, "sum": point.sum, "min": point.min, "max": point.max}
    return point.value


def snapshot(reader: InMemoryMetricReader) -> dict[str, dict[str, Any]]:
    """The reader's current values as ``{name: {"k=v,...": value}}``; a histogram's value is
    ``{"count", "sum", "min", "max"}``. Plain str/int/float only, so ``json.dumps`` takes it.
    """
    out: dict[str, dict[str, Any]] = {}
    data = reader.get_metrics_data()
    if data is None:  # nothing recorded yet
        return out
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points = out.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    points[_key(point.attributes)] = _point(point)
    return out


def _labels(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in sorted((attributes or {}).items())}


def _family_point(point: NumberDataPoint | HistogramDataPoint) -> dict[str, Any]:
    if isinstance(point, HistogramDataPoint):
        return {"labels": _labels(point.attributes), "count": int(point.count),
                "sum": float(point.sum), "bounds": [float(b) for b in point.explicit_bounds],
                "counts": [int(c) for c in point.bucket_counts]}
    return {"labels": _labels(point.attributes), "value": point.value}


def families(reader: InMemoryMetricReader) -> list[dict[str, Any]]:
    """The reader's metrics as plain, JSON-able families, sorted by name::

        {"name", "kind": "counter" | "gauge" | "histogram", "unit", "description",
         "points": [{"labels": {str: str}, "value"}                        # counter, gauge
                    {"labels", "count", "sum", "bounds", "counts"}]}       # histogram

    A histogram's ``counts`` are per bucket (``len(bounds) + 1``, the last above the last
    bound), as OpenTelemetry keeps them; values are cumulative since the provider started.
    A non-monotonic sum is a gauge. Labels are a mapping, so a value may hold any text.
    """
    out: dict[str, dict[str, Any]] = {}
    data = reader.get_metrics_data()
    if data is None:
        return []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                d = metric.data
                if isinstance(d, Histogram):
                    kind = "histogram"
                elif isinstance(d, Sum) and d.is_monotonic:
                    kind = "counter"
                elif isinstance(d, Sum | Gauge):
                    kind = "gauge"
                else:  # an exponential histogram: not used by tripwire's instruments
                    continue
                fam = out.setdefault(metric.name, {
                    "name": metric.name, "kind": kind, "unit": metric.unit or "",
                    "description": metric.description or "", "points": []})
                fam["points"].extend(_family_point(p) for p in d.data_points)
    return [out[name] for name in sorted(out)]


def console_provider(
    export_interval_ms: float = 60_000, out: IO[str] = sys.stdout
) -> MeterProvider:
    """An SDK provider printing metrics as JSON to ``out`` every interval (and on shutdown).

    Not installed globally: pass it to ``opentelemetry.metrics.set_meter_provider`` or use
    ``DecisionMetrics(provider.get_meter(METER_NAME))``.
    """
    reader: MetricReader = PeriodicExportingMetricReader(
        ConsoleMetricExporter(out=out), export_interval_millis=export_interval_ms
    )
    return MeterProvider(metric_readers=[reader])
