"""The triage graph and the intake in front of it: persisted verdicts, failures that stop
before any decision, and bursts that are coalesced or refused but never lost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphs.triage import TRIAGED
from tests.graphs.harness import SYMBOL, T0, make_runner, news_incident
from tripwire.decisions.intake import SKIPPED_OVERLOAD
from tripwire.decisions.outcome import Outcome
from tripwire.metrics import snapshot
from tripwire.model import NS_PER_SECOND

pytestmark = pytest.mark.timeout(300)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_verdict_persisted_with_bus_messages_and_metrics() -> None:
    r, d = make_runner()
    t = run(r.triage(news_incident("inc-1")))
    assert t["outcome"] == TRIAGED
    incident = run(d.store.incident("inc-1"))
    assert incident["status"] == "triaged" and incident["symbol"] == SYMBOL
    [verdict] = run(d.store.recent_verdicts(SYMBOL))
    assert verdict["id"] == t["verdict_id"] and verdict["incident_id"] == "inc-1"
    assert verdict["class"] == t["verdict"]["classification"] == "NEWS_DRIVEN"
    assert verdict["confidence"] == t["verdict"]["confidence"]
    assert verdict["payload"]["route"] == "scripted"
    msgs = run(d.store.messages("inc-1"))
    assert [(m["sender"], m["recipient"], m["kind"]) for m in msgs] == [
        ("intake", "triage-analyst", "incident"), ("triage-analyst", "strategist", "verdict")]
    assert msgs[1]["payload"]["verdict_id"] == t["verdict_id"]
    m = snapshot(d.reader)
    assert m["tripwire.verdicts"] == {"classification=NEWS_DRIVEN": 1}
    for node in ("gather_context", "classify", "validate", "persist", "finish"):
        assert m["tripwire.node_latency"][f"graph=triage,node={node}"]["count"] == 1
    assert "tripwire.decisions" not in m  # triage alone decides nothing


def test_second_triage_sees_recent_verdicts() -> None:
    r, _ = make_runner()
    run(r.triage(news_incident("inc-1")))
    t = run(r.triage(news_incident("inc-2")))
    assert [v["class"] for v in t["recent_verdicts"]] == ["NEWS_DRIVEN"]


@pytest.mark.parametrize("answer", [
    RuntimeError("model down"),
    "{not json",
    {"classification": "PANIC", "confidence": 0.5, "reasoning": "x", "key_factors": [],
     "source": "llm"},
    {"classification": "NEWS_DRIVEN", "confidence": 1.5, "reasoning": "x", "key_factors": [],
     "source": "llm"},
])
def test_failed_classify_stops_before_any_decision(answer: Any) -> None:
    r, d = make_runner(overrides={"triage-analyst": answer})
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == "TRIAGE_FAILED"
    assert res.decision_id is None and res.reason.startswith("classify:"), res.reason
    status = run(d.store.incident("inc-1"))["status"]
    assert status.startswith("failed: classify:"), status
    assert run(d.store.decisions()) == []
    assert run(d.store.recent_verdicts(SYMBOL)) == []
    assert d.broker.orders() == []
    assert "strategist" not in d.provider.calls
    m = snapshot(d.reader)
    assert m["tripwire.incidents_skipped"] == {"reason=triage_failed": 1}
    assert "tripwire.verdicts" not in m


def test_triage_node_timeout_fails_closed() -> None:
    async def slow(request: Any) -> dict[str, Any]:
        await asyncio.sleep(2.0)
        return {}

    r, d = make_runner(overrides={"triage-analyst": slow}, signoff={"node_timeout_s": 0.1})
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == "TRIAGE_FAILED"
    assert run(d.store.incident("inc-1"))["status"] == "failed: classify: timed out after 0.1s"
    assert run(d.store.decisions()) == []


def _burst(n: int, spacing_s: float, prefix: str = "inc") -> list[Any]:
    return [news_incident(f"{prefix}-{i}").model_copy(
        update={"ts_ns": T0 + int(i * spacing_s * NS_PER_SECOND)}) for i in range(n)]


def test_burst_on_one_symbol_is_coalesced_and_recorded() -> None:
    r, d = make_runner()  # incident_cooldown_s: 60
    burst = _burst(5, 5.0)
    results = [run(r.submit(inc)) for inc in burst]
    assert results[0] is None  # accepted: queued
    for inc, res in zip(burst[1:], results[1:], strict=True):
        assert res.outcome == "SKIPPED"
        assert res.reason == "coalesced into inc-0"
        assert run(d.store.incident(inc.id))["status"] == "coalesced into inc-0"
    assert snapshot(d.reader)["tripwire.incidents_skipped"] == {"reason=coalesced": 4}
    done = run(r.drain())
    assert [(x.incident_id, x.outcome) for x in done] == [("inc-0", Outcome.EXECUTED)]
    assert len(d.broker.orders()) == 1
    assert run(r.drain()) == []
    # After the cool-down the symbol is admitted again.
    later = news_incident("inc-late").model_copy(update={"ts_ns": T0 + 61 * NS_PER_SECOND})
    assert run(r.submit(later)) is None


def test_overload_is_recorded_never_lost_and_drain_handles_the_rest() -> None:
    r, d = make_runner(signoff={"max_pending": 2, "incident_cooldown_s": 1.0})
    burst = _burst(5, 2.0)  # each past the cool-down: all would be admitted
    results = [run(r.submit(inc)) for inc in burst]
    assert results[:2] == [None, None]
    for inc, res in zip(burst[2:], results[2:], strict=True):
        assert (res.outcome, res.reason) == ("SKIPPED", SKIPPED_OVERLOAD)
        row = run(d.store.incident(inc.id))
        assert row["status"] == SKIPPED_OVERLOAD and row["payload"]["id"] == inc.id
    assert snapshot(d.reader)["tripwire.incidents_skipped"] == {"reason=overload": 3}
    done = run(r.drain())
    assert [x.incident_id for x in done] == ["inc-0", "inc-1"]
    for x in done:
        assert x.outcome in {o.value for o in Outcome}, x
        assert run(d.store.incident(x.incident_id))["status"] == "triaged"
    # Every one of the five is in the store: triaged or skipped, none silently dropped.
    statuses = [run(d.store.incident(inc.id))["status"] for inc in burst]
    assert statuses == ["triaged", "triaged", *[SKIPPED_OVERLOAD] * 3]
    assert len(d.broker.orders()) <= 2
    # The queue has room again.
    assert run(r.submit(news_incident("inc-9").model_copy(
        update={"ts_ns": T0 + 100 * NS_PER_SECOND}))) is None


def test_submit_gives_an_id_to_an_incident_without_one() -> None:
    r, d = make_runner()
    inc = news_incident()
    assert inc.id == ""
    assert run(r.submit(inc)) is None
    [res] = run(r.drain())
    assert res.incident_id and run(d.store.incident(res.incident_id))["status"] == "triaged"
