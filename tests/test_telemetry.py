"""One trace per incident: propagation, the decision graphs' spans, a Ray actor boundary,
and exporter configuration. Spans go to the in-memory exporter and are asserted on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace

from tests.graphs.harness import make_runner, news_incident
from tripwire import telemetry
from tripwire.decisions.outcome import AWAITING_APPROVAL, Outcome
from tripwire.llm.telemetry import SPAN_NAME as LLM_SPAN
from tripwire.model import client_order_id
from tripwire.risk.modes import SafetyMode

pytestmark = pytest.mark.timeout(300)

SIGNOFF_NODES = ["start", "strategist", "risk_gate", "fact_checker", "double_checker",
                 "approval", "execute", "finish"]


@pytest.fixture(autouse=True)
def memory() -> Iterator[object]:
    telemetry.configure("memory")
    yield telemetry.memory_exporter()
    telemetry.configure("off")


def spans(exporter) -> list:
    return list(exporter.get_finished_spans())


def trace_id(s) -> int:
    return s.get_span_context().trace_id


# -- propagation -----------------------------------------------------------------------------


def test_inject_extract_round_trip(memory) -> None:
    with telemetry.span("sender") as sender:
        carrier = telemetry.inject()
    assert set(carrier) == {"traceparent"}
    ctx = trace.get_current_span(telemetry.extract(carrier)).get_span_context()
    assert ctx.trace_id == trace_id(sender)
    assert ctx.span_id == sender.get_span_context().span_id
    assert ctx.is_remote
    with telemetry.span("receiver", carrier=carrier, k="v", skipped=None) as receiver:
        assert telemetry.current_trace_id() == format(trace_id(sender), "032x")
    assert trace_id(receiver) == trace_id(sender)
    assert receiver.parent.span_id == sender.get_span_context().span_id
    assert dict(receiver.attributes) == {"k": "v"}


def test_carrier_wins_over_the_current_span_and_bad_carriers_start_a_root(memory) -> None:
    with telemetry.span("incident") as incident:
        carrier = telemetry.inject()
    with telemetry.span("unrelated") as unrelated, telemetry.span("work", carrier) as work:
        pass
    assert trace_id(work) == trace_id(incident) != trace_id(unrelated)
    with telemetry.span("root", carrier={"traceparent": "garbage"}) as root:
        pass
    assert root.parent is None and trace_id(root) not in (trace_id(incident), 0)
    assert telemetry.extract({}) is not None and telemetry.inject() == {}  # outside any span
    with pytest.raises(TypeError, match="trace carrier must be a mapping"):
        telemetry.extract(["traceparent"])  # type: ignore[arg-type]


# -- one incident, one trace -----------------------------------------------------------------


def test_one_incident_one_trace_through_triage_signoff_llm_and_order(memory) -> None:
    runner, deps = make_runner(SafetyMode.DIRECT)
    with telemetry.span("tick_batch") as parent:
        carrier = telemetry.inject()
    res = asyncio.run(runner.handle(news_incident("inc-trace"), trace=carrier))
    assert res.outcome == Outcome.EXECUTED, res.reason
    got = [s for s in spans(memory) if s is not parent and s.name != "tick_batch"]
    names = [s.name for s in got]
    for node in SIGNOFF_NODES:
        assert f"signoff.{node}" in names
    assert any(n.startswith("triage.") for n in names)
    assert {"incident.handle", "incident.triage", "decision.signoff", "order.place"} <= set(names)
    llm = [s for s in got if s.name == LLM_SPAN]
    assert len(llm) == len(deps.provider.calls) >= 3  # analyst, strategist, double-checker
    assert {trace_id(s) for s in got} == {trace_id(parent)}
    by_name = {s.name: s for s in got}
    assert by_name["incident.handle"].parent.span_id == parent.get_span_context().span_id
    order = by_name["order.place"]
    assert order.attributes["tripwire.client_order_id"] == client_order_id(res.decision_id, 0)
    assert order.attributes["tripwire.backend"] == "paper"
    execute = by_name["signoff.execute"]
    assert order.parent.span_id == execute.get_span_context().span_id
    assert execute.attributes["tripwire.decision_id"] == res.decision_id
    assert execute.attributes["tripwire.incident_id"] == "inc-trace"


def test_calls_without_a_carrier_still_work_and_start_their_own_trace(memory) -> None:
    runner, _ = make_runner(SafetyMode.DIRECT)
    res = asyncio.run(runner.handle(news_incident("inc-a")))
    assert res.outcome == Outcome.EXECUTED
    [handle] = [s for s in spans(memory) if s.name == "incident.handle"]
    assert handle.parent is None
    assert {trace_id(s) for s in spans(memory)} == {trace_id(handle)}


def test_a_failing_node_marks_its_span_and_an_approval_continues_the_trace(memory) -> None:
    runner, _ = make_runner(SafetyMode.TWO_PHASE)
    with telemetry.span("tick_batch") as parent:
        carrier = telemetry.inject()
    paused = asyncio.run(runner.handle(news_incident("inc-2p"), trace=carrier))
    assert paused.outcome == AWAITING_APPROVAL
    done = asyncio.run(runner.approve(paused.decision_id, by="ops"))  # no carrier passed
    assert done.outcome == Outcome.EXECUTED, done.reason
    resumed = [s for s in spans(memory) if s.attributes.get("tripwire.resumed")]
    assert len(resumed) == 1 and trace_id(resumed[0]) == trace_id(parent)
    assert trace_id(next(s for s in spans(memory) if s.name == "order.place")) == trace_id(parent)

    def boom(name: str, state: dict) -> None:
        if name == "risk_gate":
            raise RuntimeError("injected")

    memory.clear()
    runner, _ = make_runner(SafetyMode.DIRECT, before_node=boom)
    res = asyncio.run(runner.handle(news_incident("inc-fail")))
    assert res.outcome == Outcome.REJECTED
    [gate] = [s for s in spans(memory) if s.name == "signoff.risk_gate"]
    assert gate.status.status_code == trace.StatusCode.ERROR
    assert "injected" in gate.status.description


# -- across a Ray actor ------------------------------------------------------------------------


def test_trace_crosses_a_ray_actor(ray_local, memory) -> None:
    ray = ray_local

    @ray.remote(num_cpus=0)
    class Worker:
        def __init__(self) -> None:
            from tripwire import telemetry as t
            t.configure("memory")

        def work(self, carrier: dict[str, str]) -> tuple[dict[str, str], int, int]:
            from tripwire import telemetry as t
            with t.span("actor.work", carrier=carrier) as s:
                out = t.inject()
            return out, s.get_span_context().trace_id, s.parent.span_id

    worker = Worker.remote()
    with telemetry.span("driver.send") as sent:
        carrier = telemetry.inject()
    back, actor_trace, actor_parent = ray.get(worker.work.remote(carrier), timeout=120)
    assert actor_trace == trace_id(sent)
    assert actor_parent == sent.get_span_context().span_id
    with telemetry.span("driver.continue", carrier=back) as cont:
        pass
    assert trace_id(cont) == trace_id(sent)
    assert cont.parent.span_id != sent.get_span_context().span_id  # the actor's span
    ray.kill(worker)


# -- configuration ---------------------------------------------------------------------------


def test_off_records_nothing_and_inject_is_empty() -> None:
    telemetry.configure("off")
    runner, _ = make_runner(SafetyMode.DIRECT)
    with telemetry.span("x") as s:
        assert not s.is_recording()
        assert telemetry.inject() == {}
    assert asyncio.run(runner.handle(news_incident("inc-off"))).outcome == Outcome.EXECUTED
    with pytest.raises(RuntimeError, match="not configured with the 'memory' exporter"):
        telemetry.memory_exporter()


def test_otlp_to_an_unreachable_endpoint_does_not_raise_at_configure() -> None:
    provider = telemetry.configure("otlp", endpoint="http://127.0.0.1:9")
    with telemetry.span("lost") as s:
        assert s.is_recording()  # exported later, in the background; its failure is logged
    assert provider is not None
    telemetry.configure("console")  # switching shuts the OTLP one down without raising


def test_settings_and_environment() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert telemetry.telemetry_settings({}, env) == telemetry.TelemetrySettings(
        "otlp", "http://collector:4318", "tripwire")
    mine = {"TRIPWIRE_OTLP_ENDPOINT": "http://mine:4318", **env}
    assert telemetry.telemetry_settings(None, mine).endpoint == "http://mine:4318"
    assert telemetry.telemetry_settings({}, {}).exporter == "off"
    assert telemetry.telemetry_settings({"exporter": "console"}, env).exporter == "console"
    with pytest.raises(ValueError, match="telemetry.exporter must be one of"):
        telemetry.telemetry_settings({"exporter": "jaeger"}, {})
    with pytest.raises(ValueError, match="telemetry.colour is not a known key"):
        telemetry.telemetry_settings({"colour": "red"}, {})
    with pytest.raises(ValueError, match="exporter must be one of"):
        telemetry.configure("zipkin")  # type: ignore[arg-type]
    provider = telemetry.configure(settings={"exporter": "memory", "service_name": "svc"})
    assert provider.resource.attributes["service.name"] == "svc"
