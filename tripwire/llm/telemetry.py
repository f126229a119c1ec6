"""OpenTelemetry for the LLM layer: one span per router call and its attribute names.

The router opens a span ``llm.call`` around each call (:class:`CallSpan`) and sets, once, at
the end and only when the span records: role, route, model, tokens in/out, cost, cache hit,
retries, breaker state and outcome (plus the GenAI semantic-convention names for model and
tokens, so generic tooling reads them).
Failed routes become span events. The tracer is injectable; by default it comes from the
global tracer provider (a no-op until an SDK provider is installed, which costs nothing).

>>> from opentelemetry.sdk.trace import TracerProvider
>>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
>>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
>>> exporter = InMemorySpanExporter()
>>> provider = TracerProvider()
>>> provider.add_span_processor(SimpleSpanProcessor(exporter))
>>> with get_tracer(provider.get_tracer("t")).start_as_current_span(SPAN_NAME) as span:
...     set_call_attributes(span, CallFigures(role="r", route="a", model="m", outcome="ok"))
>>> exporter.get_finished_spans()[0].attributes[ROUTE]
'a'
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from opentelemetry import context, trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

TRACER_NAME = "tripwire.llm"
SPAN_NAME = "llm.call"

ROLE = "llm.role"
ROUTE = "llm.route"
MODEL = "llm.model"
TOKENS_IN = "llm.tokens.input"
TOKENS_OUT = "llm.tokens.output"
COST_USD = "llm.cost_usd"
CACHE_HIT = "llm.cache_hit"
CACHE_KIND = "llm.cache_kind"
RETRIES = "llm.retries"
ATTEMPTS = "llm.attempts"
BREAKER_STATE = "llm.breaker_state"
OUTCOME = "llm.outcome"
# OpenTelemetry GenAI semantic conventions, for tools that know them.
GENAI_MODEL = "gen_ai.request.model"
GENAI_TOKENS_IN = "gen_ai.usage.input_tokens"
GENAI_TOKENS_OUT = "gen_ai.usage.output_tokens"


def get_tracer(tracer: Tracer | None = None) -> Tracer:
    """``tracer``, or the global provider's tracer for the LLM layer."""
    return tracer if tracer is not None else trace.get_tracer(TRACER_NAME)


class CallSpan:
    """``with CallSpan(tracer) as span:``, the same as ``tracer.start_as_current_span(
    SPAN_NAME)`` (the span is current inside, ended on exit, and an exception leaving the
    block is recorded on it and sets its status), in one object instead of three nested
    generator-based context managers: the router opens one on every call.
    """

    __slots__ = ("_token", "span")

    def __init__(self, tracer: Tracer, name: str = SPAN_NAME) -> None:
        self.span = tracer.start_span(name)

    def __enter__(self) -> Span:
        self._token = context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # In the order of opentelemetry.trace.use_span: detach, record, end. Only Exception
        # subclasses are recorded (GeneratorExit, CancelledError and the like are not errors).
        span = self.span
        try:
            context.detach(self._token)
            if isinstance(exc, Exception) and isinstance(span, Span) and span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            span.end()


@dataclass(slots=True)
class CallFigures:
    """What one router call came to, as recorded on its span."""

    role: str
    route: str = ""
    model: str = ""
    outcome: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    cache_hit: bool = False
    cache_kind: str = ""
    retries: int = 0
    attempts: int = 0
    breaker_state: str = ""


def set_call_attributes(span: Span, fig: CallFigures) -> None:
    """Set the call's attributes in one go (skipped when the span is not recording)."""
    if not span.is_recording():
        return
    span.set_attributes({
        ROLE: fig.role,
        ROUTE: fig.route,
        MODEL: fig.model,
        GENAI_MODEL: fig.model,
        TOKENS_IN: fig.tokens_in,
        TOKENS_OUT: fig.tokens_out,
        GENAI_TOKENS_IN: fig.tokens_in,
        GENAI_TOKENS_OUT: fig.tokens_out,
        COST_USD: fig.cost_usd,
        CACHE_HIT: fig.cache_hit,
        CACHE_KIND: fig.cache_kind,
        RETRIES: fig.retries,
        ATTEMPTS: fig.attempts,
        BREAKER_STATE: fig.breaker_state,
        OUTCOME: fig.outcome,
    })
    if fig.outcome not in ("ok", "repaired", "cache_hit"):
        span.set_status(Status(StatusCode.ERROR, fig.outcome))


def route_event(span: Span, route: str, outcome: str, why: str, breaker_state: str) -> None:
    """A route that did not answer, as an event on the call's span."""
    if span.is_recording():
        span.add_event(
            "llm.route_failed",
            {ROUTE: route, OUTCOME: outcome, BREAKER_STATE: breaker_state, "llm.why": why},
        )
