"""Cost ledger: records map onto llm_calls, totals never drop, summaries group and filter,
and the router writes one row per attempt."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.llm.test_router import DAY0, Scripted, make, request, result
from tripwire.llm.base import ProviderError
from tripwire.llm.ledger import (
    COLUMNS,
    LLM_CALLS_DDL,
    CallRecord,
    InMemoryLedger,
    LedgerSink,
    summarise,
)


def rec(i: int = 0, *, route: str = "a", model: str = "m", role: str = "triage-analyst",
        outcome: str = "ok", tokens: tuple[int, int] = (100, 10), cost: float = 0.01,
        ts_ns: int | None = None) -> CallRecord:
    return CallRecord(call_id=f"c{i}", ts_ns=DAY0 + i if ts_ns is None else ts_ns, role=role,
                      route=route, model=model, input_tokens=tokens[0], output_tokens=tokens[1],
                      cost_usd=cost, latency_ms=10.0 * (i + 1), outcome=outcome, attempt=1,
                      fingerprint="fp", cached=outcome == "cache_hit")


def test_record_maps_one_to_one_onto_the_llm_calls_table():
    row = rec().to_row()
    assert tuple(row) == COLUMNS
    ddl_columns = re.findall(r"^\s{4}(\w+)\s", LLM_CALLS_DDL, flags=re.M)
    assert ddl_columns[1:] == list(COLUMNS)  # after the bigserial id
    with pytest.raises(AttributeError):
        rec().cost_usd = 1.0  # frozen


def test_in_memory_ledger_is_a_sink_with_a_bounded_ring_and_lasting_totals():
    ledger = InMemoryLedger(capacity=3)
    assert isinstance(ledger, LedgerSink)
    for i in range(5):
        asyncio.run(ledger.write(rec(i)))
    assert len(ledger) == 3 and ledger.dropped == 2
    (total,) = ledger.totals()
    assert (total.calls, total.input_tokens, total.cost_usd) == (5, 500, pytest.approx(0.05))
    (whole,) = asyncio.run(ledger.summarise())
    assert whole.calls == 5  # without a range: the totals, nothing dropped
    (recent,) = asyncio.run(ledger.summarise(since_ns=DAY0 + 3))
    assert recent.calls == 2


def test_summarise_groups_by_any_keys_costliest_first():
    records = [
        rec(0, route="claude", model="haiku", cost=0.02),
        rec(1, route="claude", model="haiku", cost=0.03, outcome="retry"),
        rec(2, route="gpt", model="mini", cost=0.01),
        rec(3, route="gpt", model="mini", cost=0.0, outcome="cache_hit", tokens=(0, 0)),
        rec(4, route="rules", model="rules", role="strategist", cost=0.0),
    ]
    rows = summarise(records)
    assert [(r.route, r.model, r.calls) for r in rows] == [
        ("claude", "haiku", 2), ("gpt", "mini", 2), ("rules", "rules", 1)]
    claude, gpt, _ = rows
    assert claude.cost_usd == pytest.approx(0.05) and claude.ok == 1
    assert gpt.cache_hits == 1 and gpt.ok == 2 and gpt.role == "*" and gpt.outcome == "*"
    assert claude.mean_latency_ms == pytest.approx(15.0)
    by_role = {r.role: r.calls for r in summarise(records, by=("role",))}
    assert by_role == {"triage-analyst": 4, "strategist": 1}
    by_outcome = {r.outcome: r.calls for r in summarise(records, by=["outcome"])}
    assert by_outcome == {"ok": 3, "retry": 1, "cache_hit": 1}
    assert rows[0].as_dict()["route"] == "claude"
    with pytest.raises(ValueError, match="cannot group costs by 'day'"):
        summarise(records, by=("day",))


def test_ledger_totals_group_like_summarise():
    ledger = InMemoryLedger()
    records = [rec(i, route=r, outcome=o) for i, (r, o) in
               enumerate([("a", "ok"), ("a", "retry"), ("b", "ok")])]
    for r in records:
        ledger.add(r)
    for by in (("route",), ("route", "outcome"), ("role", "route", "model", "outcome")):
        assert ledger.totals(by) == summarise(records, by)


def test_router_writes_one_row_per_attempt_refusal_and_cache_hit():
    a = Scripted(ProviderError("overloaded", "529", status=529),
                 ProviderError("auth", "HTTP 401", status=401))
    b = Scripted(result({"bad": True}), result(tokens=(300, 40), model="b-model"))
    router, ledger, _, _ = make(("a", a), ("b", b))
    resp = asyncio.run(router.call(request()))
    rows = list(ledger.records)
    assert [(r.route, r.outcome, r.attempt) for r in rows] == [
        ("a", "retry", 1), ("a", "failed:auth", 2), ("b", "invalid", 3), ("b", "repaired", 4)]
    assert len({r.call_id for r in rows}) == 1
    assert rows[-1].model == "b-model" and rows[-1].input_tokens == 300
    assert sum(r.cost_usd for r in rows) == pytest.approx(resp.cost_usd)
    assert sum(r.input_tokens for r in rows) == resp.usage.input_tokens == 400
    assert all(r.fingerprint == resp.fingerprint and not r.cached for r in rows)
    assert "HTTP 401" in rows[1].detail
