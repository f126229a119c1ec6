"""Cluster-wide spend: budgets reserved and settled in PostgreSQL, every call a row in
``llm_calls``, shared by processes; a database that does not answer refuses metered routes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.llm import spend_worker
from tests.llm.servers import OpenAIServer, ok
from tripwire.incident import Incident
from tripwire.llm.base import BudgetExceeded, LLMRequest, Message
from tripwire.llm.config import BudgetConfig, load_llm_config
from tripwire.llm.factory import build_llm_pg
from tripwire.llm.ledger import CallRecord
from tripwire.llm.limits import estimate_tokens
from tripwire.llm.schemas import TriageVerdict
from tripwire.llm.spend import PgBudget, PgLedger, summarise_pg
from tripwire.model import NS_PER_SECOND, SimClock
from tripwire.store.pg import _free_port

ROOT = Path(__file__).resolve().parents[2]
DAY0 = 1_767_571_200 * NS_PER_SECOND  # 2026-01-05 00:00:00 UTC
USAGE = (90, 60)  # what the loopback server bills per answer: 150 tokens


def _attempt(budget: PgBudget, usd: float, *, route: str = "paid", tokens: int = 100):
    return budget.reserve_attempt(route=route, model="m", role="r", call_id="c",
                                  tokens_in=tokens, tokens_out=0, usd=usd, call_tokens=0,
                                  call_usd=0.0, route_timeout_s=10.0)


def test_reserve_refuse_settle_and_per_route_limit(migrated_db: str) -> None:
    async def go() -> None:
        pool = await asyncpg.create_pool(migrated_db, min_size=1, max_size=2)
        cfg = BudgetConfig(per_call_tokens=None, per_call_usd=None, per_day_tokens=None,
                           per_day_usd=1.0)
        budget = PgBudget(pool, cfg, SimClock(DAY0), routes={"small": (None, 0.3)})
        try:
            a = await _attempt(budget, 0.4)
            b = await _attempt(budget, 0.4)
            with pytest.raises(BudgetExceeded, match=r"per-day USD budget: 0.8000 spent of "
                                                     r"1.0000, this call needs up to 0.4000"):
                await _attempt(budget, 0.4)
            await budget.settle_attempt(a, 100, 0.1)  # used less than held: 0.3 back
            await budget.settle_attempt(a, 100, 0.1)  # a second settle changes nothing
            c = await _attempt(budget, 0.4)
            with pytest.raises(BudgetExceeded, match="route 'small' per-day USD budget"):
                await _attempt(budget, 0.35, route="small")
            for r in (b, c):
                await budget.settle_attempt(r, 100, 0.4)
            today = await budget.today()
            assert today["total"]["spent_usd"] == pytest.approx(0.9)
            assert today["total"]["held_usd"] == 0 and today["total"]["held_calls"] == 0
            assert today["total"]["refusals"] == 1 and today["route:small"]["refusals"] == 1
            assert budget.stats["settled"] == 3
        finally:
            await pool.close()

    asyncio.run(go())


def test_expired_reservation_is_reclaimed_at_its_maximum(migrated_db: str) -> None:
    """A process that dies between reserve and settle leaks nothing for good: once the hold
    expires, another process charges it at its maximum and writes a 'reclaimed' row."""

    async def go() -> None:
        pool = await asyncpg.create_pool(migrated_db, min_size=1, max_size=2)
        cfg = BudgetConfig(per_call_tokens=None, per_call_usd=None, per_day_tokens=None,
                           per_day_usd=1.0)
        clock = SimClock(DAY0)
        dead = PgBudget(pool, cfg, clock, owner="dead:1")
        ledger = PgLedger(pool)
        alive = PgBudget(pool, cfg, clock, owner="alive:2", ledger=ledger)
        try:
            lost = await dead.reserve_attempt(
                route="paid", model="m", role="triage", call_id="lost-call", tokens_in=100,
                tokens_out=50, usd=0.6, call_tokens=0, call_usd=0.0, route_timeout_s=10.0)
            with pytest.raises(BudgetExceeded):  # still held: 0.6 + 0.6 > 1.0
                await _attempt(alive, 0.6)
            clock.advance(89 * NS_PER_SECOND)  # ttl = 3 x 10 s + 60 s: not yet
            assert await alive.reclaim() == 0
            clock.advance(2 * NS_PER_SECOND)
            assert await alive.reclaim() == 1
            today = await alive.today()
            assert today["total"]["spent_usd"] == pytest.approx(0.6)
            assert today["total"]["held_calls"] == 0 and today["total"]["reclaimed"] == 1
            await dead.settle_attempt(lost, 150, 0.05)  # too late: charged already, no more
            assert dead.stats["settle_late"] == 1
            assert (await alive.today())["total"]["spent_usd"] == pytest.approx(0.6)
            rows = await pool.fetch("SELECT call_id, outcome, cost_usd, detail FROM llm_calls")
            assert [(r["call_id"], r["outcome"], r["cost_usd"]) for r in rows] == [
                ("lost-call", "reclaimed", 0.6)]
            assert "dead:1" in rows[0]["detail"]
        finally:
            await pool.close()

    asyncio.run(go())


def test_two_processes_share_one_day_budget(migrated_db: str) -> None:
    """200 concurrent calls from two processes against one 6 USD day: together they answer
    what one day allows (each alone would), and the spend never passes the limit by more than
    one call's hold; every attempt and refusal is a row in llm_calls."""
    per_day = 6.0
    est_in, est_out = estimate_tokens(spend_worker.request(0))
    hold = (est_in + est_out) * spend_worker.PRICE / 1e6
    billed = sum(USAGE) * spend_worker.PRICE / 1e6
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with OpenAIServer(default=ok({"text": "hi"}, usage=USAGE)) as server:
        procs = [subprocess.Popen(
            [sys.executable, "-m", "tests.llm.spend_worker", migrated_db, server.base_url,
             "--calls", "100", "--per-day-usd", str(per_day)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-2000:]
            outs.append(json.loads(out.splitlines()[-1]))
        served = len(server.requests)
    answered = sum(o["answered"] for o in outs)
    refused = sum(o["refused"] for o in outs)
    assert answered + refused == 200 and served == answered

    async def read() -> tuple[list, dict]:
        conn = await asyncpg.connect(migrated_db)
        try:
            rows = await summarise_pg(conn, by=("outcome",))
            budget = await conn.fetchrow("SELECT * FROM llm_budget WHERE scope = 'total'")
            return rows, dict(budget)
        finally:
            await conn.close()

    rows, budget = asyncio.run(read())
    by_outcome = {r.outcome: r for r in rows}
    spent = by_outcome["ok"].cost_usd
    assert by_outcome["ok"].calls == answered and by_outcome["budget"].calls == refused
    # One day for both: each process alone could answer per_day / billed = 40 calls.
    assert answered <= per_day / billed + 1e-9
    assert answered >= 20  # the day was used, not refused wholesale
    assert spent <= per_day + hold
    assert budget["spent_usd"] == pytest.approx(spent) and budget["held_calls"] == 0
    assert budget["refusals"] == refused


def _triage_request() -> LLMRequest:
    incident = Incident.model_validate({
        "symbol": "ETHUSDT", "ts_ns": 1_000 * NS_PER_SECOND, "metric": "RETURN", "z": -30.0,
        "value": 0.0, "price": 100.0, "tripped": {"RETURN": -30.0},
        "recent": {"ticks": 200, "span_s": 120.0, "ret_1_pct": -2.0, "ret_10_pct": -2.0,
                   "last_gap_s": 0.5, "median_gap_s": 0.5}, "market": None, "news": []})
    return LLMRequest("triage-analyst", "Classify.", (Message("user", spend_worker.PROMPT),),
                      TriageVerdict, max_tokens=100, context=incident.model_dump(mode="json"))


def test_database_down_refuses_metered_route_and_rules_answers() -> None:
    """Fail closed: with no budget answer no paid call goes out; the unmetered offline
    analyst still answers."""
    dsn = f"postgresql://tripwire@127.0.0.1:{_free_port()}/postgres"  # nothing listens

    async def go():
        async with OpenAIServer(default=ok({"text": "hi"}, usage=USAGE)) as server:
            cfg = spend_worker.config(server.base_url, 6.0)
            cfg["rules_fallback"] = True
            stack = await build_llm_pg(load_llm_config(cfg), dsn, env={"SPEND_TEST_KEY": "k"})
            router = stack.router
            try:
                response = await router.call(_triage_request())
                return response, router, len(server.requests)
            finally:
                await router.aclose()

    response, router, served = asyncio.run(go())
    assert served == 0  # nothing paid went out
    assert response.route == "rules" and response.cost_usd == 0.0
    assert router.budget.stats["unavailable"] == 1 and router.stats["budget_refused"] == 1
    # The refusal and the answer wait for the database (bounded), counted as ledger errors.
    assert router.ledger.backlog == 2 and router.stats["ledger_errors"] == 2


def _record(call_id: str, route: str, outcome: str, usd: float) -> CallRecord:
    return CallRecord(call_id, DAY0, "triage-analyst", route, "m", 100, 20, usd, 5.0, outcome,
                      1, "fp", outcome == "cache_hit", "")


def test_costs_route_and_cli_read_postgresql(migrated_db: str, capsys, tmp_path,
                                             monkeypatch) -> None:
    """What every replica wrote is what /v1/llm/costs and `tripwire llm costs` show."""
    from serve_apps.api import _llm_costs
    from tripwire.cli import main
    from tripwire.store.pg_decisions import PgDecisionStore

    async def write_and_read() -> dict:
        pool = await asyncpg.create_pool(migrated_db, min_size=1, max_size=2)
        replica_a, replica_b = PgLedger(pool), PgLedger(pool)
        await replica_a.write(_record("a", "paid", "ok", 0.25))
        await replica_b.write(_record("b", "paid", "ok", 0.5))
        await replica_b.write(_record("b", "paid", "budget", 0.0))
        await replica_a.write(_record("c", "rules", "ok", 0.0))
        await pool.close()
        store = await PgDecisionStore.connect(migrated_db)
        try:
            return await _llm_costs(store, tmp_path / "none.jsonl", None)
        finally:
            await store.close()

    costs = asyncio.run(write_and_read())
    assert costs["source"] == "postgresql" and costs["calls"] == 4
    assert costs["usd"] == pytest.approx(0.75)
    assert costs["by_route"]["paid"]["calls"] == 3 and costs["by_route"]["rules"]["ok"] == 1
    monkeypatch.setenv("TRIPWIRE_DATA__DIR", str(tmp_path))
    assert main(["llm", "costs", "--dsn", migrated_db, "--by", "route,outcome", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {(r["route"], r["outcome"]): r for r in out["rows"]}
    assert out["source"] == "postgresql" and rows[("paid", "ok")]["calls"] == 2
    assert rows[("paid", "budget")]["calls"] == 1
    assert rows[("paid", "ok")]["cost_usd"] == pytest.approx(0.75)
