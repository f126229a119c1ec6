"""Traces that follow one incident end to end: configuration, propagation, spans.

One incident is one trace: the tick batch that tripped, triage, every sign-off node, every
LLM call and the order share a trace id, across Ray actors and Serve deployments. Process
boundaries carry the trace as a W3C ``traceparent`` carrier (a plain ``dict[str, str]``,
picklable and JSON-able): :func:`inject` writes the current span's, :func:`extract` reads
one back, and :func:`span` starts a span as the carrier's child.

:func:`configure` picks the exporter: ``"otlp"`` (OTLP/HTTP to ``endpoint``, or to
``TRIPWIRE_OTLP_ENDPOINT`` / the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``), ``"console"``,
``"memory"`` (tests; read it with :func:`memory_exporter`) or ``"off"``. Without an explicit
choice it reads the ``[telemetry]`` table (``exporter``, ``endpoint``, ``service_name``),
then the environment: an OTLP endpoint set means ``"otlp"``, nothing set means ``"off"``.
A process starts it with ``configure(settings=load_settings().table("telemetry"))``
(``TRIPWIRE_TELEMETRY__EXPORTER=console`` and the like override the table as usual).

Why a forwarding global provider: OpenTelemetry lets a process set its global tracer
provider once, but tests (and a long-lived process whose settings are reloaded) need to
switch exporters. So the global provider is installed once and forwards every span to the
provider of the latest :func:`configure` call. Tracers handed out earlier (the LLM router
takes its tracer at construction) follow the switch, because the lookup happens per span.

>>> provider = configure("memory")
>>> with span("parent") as parent:
...     carrier = inject()
>>> with span("child", carrier=carrier) as child:
...     pass
>>> child.get_span_context().trace_id == parent.get_span_context().trace_id
True
>>> [s.name for s in memory_exporter().get_finished_spans()]
['parent', 'child']
>>> _ = configure("off")

Metrics follow the same choice: :func:`meter_provider` builds an SDK ``MeterProvider`` with
the caller's readers (the in-memory one behind ``/metrics``) plus the configured exporter's
periodic reader -- OTLP/HTTP to ``<endpoint>/v1/metrics`` for ``"otlp"``, the console for
``"console"``, an in-memory reader for ``"memory"`` (tests: :func:`memory_metric_readers`).
So the same instruments feed ``/metrics`` and the collector. The export interval is the
SDK's (``OTEL_METRIC_EXPORT_INTERVAL``, 60 s by default). A provider built before a
:func:`configure` call keeps the exporter it was built with: each process configures first,
then builds its metrics (the Serve replicas do).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import default_getter, default_setter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from pydantic import Field, field_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from tripwire.config_model import STRICT, validate

__all__ = [
    "EXPORTERS",
    "TRACER_NAME",
    "TelemetrySettings",
    "configure",
    "current_trace_id",
    "extract",
    "inject",
    "memory_exporter",
    "memory_metric_readers",
    "meter_provider",
    "span",
    "telemetry_settings",
]

log = logging.getLogger(__name__)

Exporter = Literal["otlp", "console", "off", "memory"]
EXPORTERS: tuple[str, ...] = ("otlp", "console", "off", "memory")
TRACER_NAME = "tripwire"
ENDPOINT_ENV = ("TRIPWIRE_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
OTLP_TIMEOUT_S = 5.0  # per export; a dead collector must not stall shutdown for long
MAX_CARRIER_VALUE = 512  # a traceparent is 55 chars; anything far longer is not one

# W3C trace context only (no baggage): the carrier holds ids, never data.
_PROPAGATOR = TraceContextTextMapPropagator()


# A pydantic dataclass (the [telemetry] section's model; positional construction kept).
@pydantic_dataclass(frozen=True, config=STRICT)
class TelemetrySettings:
    """``[telemetry]``: where spans and metrics go (an empty endpoint: the environment's)."""

    exporter: str = Field("off", json_schema_extra={"enum": list(EXPORTERS)})
    endpoint: str | None = None
    service_name: str = "tripwire"

    @field_validator("exporter")
    @classmethod
    def _known(cls, value: str) -> str:
        _check_exporter(value, "telemetry.exporter")
        return value


def telemetry_settings(table: Mapping[str, Any] | None = None,
                       env: Mapping[str, str] | None = None) -> TelemetrySettings:
    """The ``[telemetry]`` table, completed from the environment; bad values raise naming
    the key."""
    table = dict(table or {})
    env = os.environ if env is None else env
    for key, value in table.items():  # every key a string: "" means "not set"
        if not isinstance(value, str):
            raise ValueError(f"telemetry.{key} must be a string, got {value!r}"
                             if key in ("exporter", "endpoint", "service_name") else
                             f"telemetry.{key} is not a known key of [telemetry]")
    validate(TelemetrySettings, {k: v for k, v in table.items() if v}, "telemetry")
    endpoint = table.get("endpoint") or next((env[k] for k in ENDPOINT_ENV if env.get(k)), None)
    exporter = table.get("exporter") or ("otlp" if endpoint else "off")
    _check_exporter(exporter, "telemetry.exporter")
    service = table.get("service_name") or "tripwire"
    return TelemetrySettings(exporter, endpoint, service)


def _check_exporter(exporter: str, what: str) -> None:
    if exporter not in EXPORTERS:
        raise ValueError(f"{what} must be one of {', '.join(EXPORTERS)}, got {exporter!r}")


# -- the switchable global provider ----------------------------------------------------------


class _State:
    """What the latest configure() installed (guarded: Serve replicas configure on threads)."""

    lock = threading.Lock()
    provider: trace.TracerProvider = trace.NoOpTracerProvider()
    memory: InMemorySpanExporter | None = None
    installed = False  # our forwarding provider is the global one
    configured = False  # configure() has run: its provider decides, even when it is "off"
    # What meter_provider() adds: the latest configure()'s exporter, endpoint and service.
    metrics: TelemetrySettings = TelemetrySettings()
    metric_memory: ClassVar[list[InMemoryMetricReader]] = []  # "memory": readers handed out


class _ForwardingTracer(trace.Tracer):
    """A tracer that asks the currently configured provider for the real one per span."""

    def __init__(self, name: str, version: str | None, schema_url: str | None) -> None:
        self._args = (name, version, schema_url)

    def _real(self) -> trace.Tracer:
        return _State.provider.get_tracer(*self._args)

    def start_span(self, *args: Any, **kwargs: Any) -> Span:
        return self._real().start_span(*args, **kwargs)

    @contextmanager
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Iterator[Span]:
        with self._real().start_as_current_span(*args, **kwargs) as s:
            yield s


class _ForwardingProvider(trace.TracerProvider):
    def get_tracer(self, instrumenting_module_name: str,
                   instrumenting_library_version: str | None = None,
                   schema_url: str | None = None, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _ForwardingTracer(instrumenting_module_name, instrumenting_library_version,
                                 schema_url)


def _install_global() -> None:
    if _State.installed:
        return
    trace.set_tracer_provider(_ForwardingProvider())
    _State.installed = isinstance(trace.get_tracer_provider(), _ForwardingProvider)
    if not _State.installed:  # someone else set theirs first; ours still serves span()
        log.warning("a global tracer provider was already set; tripwire spans from "
                    "libraries using the global one (the LLM router) go there")


def configure(exporter: Exporter | None = None, endpoint: str | None = None,
              service_name: str | None = None, *,
              settings: Mapping[str, Any] | TelemetrySettings | None = None,
              env: Mapping[str, str] | None = None) -> trace.TracerProvider:
    """Install the exporter and return the provider now in charge (call again to switch;
    the previous provider is flushed and shut down). Never contacts the collector: an
    unreachable OTLP endpoint shows up as failed exports later, not as an error here."""
    s = settings if isinstance(settings, TelemetrySettings) else telemetry_settings(settings, env)
    exporter = exporter or s.exporter  # type: ignore[assignment]
    _check_exporter(str(exporter), "exporter")
    endpoint = endpoint or s.endpoint
    service_name = service_name or s.service_name
    memory = None
    if exporter == "off":
        provider: trace.TracerProvider = trace.NoOpTracerProvider()
    else:
        sdk = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
        if exporter == "memory":
            memory = InMemorySpanExporter()
            sdk.add_span_processor(SimpleSpanProcessor(memory))
        elif exporter == "console":
            sdk.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        else:
            sdk.add_span_processor(BatchSpanProcessor(_otlp_exporter(endpoint)))
        provider = sdk
    with _State.lock:
        old, _State.provider, _State.memory = _State.provider, provider, memory
        _State.configured = True
        _State.metrics = TelemetrySettings(str(exporter), endpoint, service_name)
        _State.metric_memory = []
        _install_global()
    if isinstance(old, TracerProvider):
        old.shutdown()
    return provider


def _otlp_exporter(endpoint: str | None) -> Any:
    # Imported here: the OTLP exporter pulls in protobuf and requests, needed only for it.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if endpoint:
        # The base endpoint convention (as OTEL_EXPORTER_OTLP_ENDPOINT): traces go to
        # <base>/v1/traces; a full .../v1/traces URL is taken as it is.
        endpoint = endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        return OTLPSpanExporter(endpoint=endpoint, timeout=OTLP_TIMEOUT_S)
    return OTLPSpanExporter(timeout=OTLP_TIMEOUT_S)  # reads the OTEL_* variables itself


def _otlp_metric_exporter(endpoint: str | None) -> Any:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    if endpoint:  # the base endpoint convention, as for traces: <base>/v1/metrics
        endpoint = endpoint.rstrip("/")
        if endpoint.endswith("/v1/traces"):
            endpoint = endpoint[: -len("/v1/traces")]
        if not endpoint.endswith("/v1/metrics"):
            endpoint += "/v1/metrics"
        return OTLPMetricExporter(endpoint=endpoint, timeout=OTLP_TIMEOUT_S)
    return OTLPMetricExporter(timeout=OTLP_TIMEOUT_S)  # reads the OTEL_* variables itself


def meter_provider(*readers: MetricReader) -> MeterProvider:
    """An SDK meter provider with ``readers`` and the configured exporter's reader (none
    when telemetry is off or never configured)."""
    s = _State.metrics
    extra: list[MetricReader] = []
    if s.exporter == "otlp":
        extra.append(PeriodicExportingMetricReader(_otlp_metric_exporter(s.endpoint)))
    elif s.exporter == "console":
        extra.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    elif s.exporter == "memory":
        memory = InMemoryMetricReader()
        with _State.lock:
            _State.metric_memory.append(memory)
        extra.append(memory)
    resource = Resource.create({SERVICE_NAME: s.service_name})
    return MeterProvider(metric_readers=[*readers, *extra], resource=resource)


def memory_metric_readers() -> list[InMemoryMetricReader]:
    """The exporter-side readers :func:`meter_provider` built since ``configure("memory")``."""
    if _State.metrics.exporter != "memory":
        raise RuntimeError("telemetry is not configured with the 'memory' exporter")
    return list(_State.metric_memory)


def memory_exporter() -> InMemorySpanExporter:
    """The in-memory exporter of the latest ``configure("memory")``."""
    if _State.memory is None:
        raise RuntimeError("telemetry is not configured with the 'memory' exporter")
    return _State.memory


def tracer() -> trace.Tracer:
    """Tripwire's tracer: the configured provider's (the global one when never configured)."""
    if _State.configured:
        return _State.provider.get_tracer(TRACER_NAME)
    return trace.get_tracer(TRACER_NAME)


# -- propagation ---------------------------------------------------------------------------------


def inject() -> dict[str, str]:
    """The current span's W3C carrier (``{"traceparent": ...}``; ``{}`` with no span)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, setter=default_setter)
    return carrier


def extract(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """The context a carrier names (an empty or malformed one gives a fresh root context:
    a bad carrier must never stop the work it travels with)."""
    if not carrier:
        return otel_context.Context()
    if not isinstance(carrier, Mapping):
        raise TypeError(f"trace carrier must be a mapping of str to str, "
                        f"got {type(carrier).__name__}")
    clean = {str(k): str(v) for k, v in carrier.items() if len(str(v)) <= MAX_CARRIER_VALUE}
    return _PROPAGATOR.extract(clean, context=otel_context.Context(), getter=default_getter)


def current_trace_id() -> str:
    """The current trace id as 32 hex digits ("" outside any span)."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


@contextmanager
def span(name: str, carrier: Mapping[str, str] | None = None, *,
         record_errors: bool = True, **attributes: AttributeValue | None) -> Iterator[Span]:
    """Start ``name`` as the current span: the child of ``carrier``'s context when one is
    given (even inside another span: the carrier is the trace this work belongs to), else of
    the current span. ``None`` attributes are left out. ``record_errors=False`` leaves
    exceptions to the caller (for ones that are not failures, e.g. a graph's interrupt)."""
    parent = extract(carrier) if carrier else None
    attrs = {k: v for k, v in attributes.items() if v is not None}
    with tracer().start_as_current_span(
        name, context=parent, attributes=attrs, record_exception=record_errors,
        set_status_on_exception=record_errors,
    ) as s:
        yield s


def mark_failed(s: Span, reason: str) -> None:
    """Set a span's status to ERROR with ``reason`` (for failures that do not raise)."""
    if s.is_recording():
        s.set_status(Status(StatusCode.ERROR, reason[:500]))
