"""Live and backtest end a panel without consensus the same way (one rule,
``graphs.runner.triage_end``): the orchestrator's workers and ``DecisionRunner.handle``
both answer HOLD (verdict IGNORE, no decision), never TRIAGE_FAILED on one side only."""

from __future__ import annotations

import asyncio
import time

from graphs.runner import DecisionResult
from serve_apps.orchestrator import Orchestrator
from tests.graphs.harness import SYMBOL, news_incident
from tests.graphs.test_memory_panel import panel_runner
from tripwire.config import load_settings
from tripwire.llm.base import ProviderError
from tripwire.model import SymbolTable

DOWN = ProviderError("server_error", "member down")
MEMBERS = {"news-analyst": DOWN, "market-context-analyst": DOWN}  # 2 of 3 fail: no vote


async def live_outcome(tmp_path) -> tuple[DecisionResult, dict[str, int], int]:
    """The incident through the orchestrator's own path (submit, a worker, _decide), with
    the disagreeing panel's runner in place of the PostgreSQL one start() would build."""
    runner, deps = panel_runner(dict(MEMBERS))
    settings = load_settings(env={"TRIPWIRE_DATA__DIR": str(tmp_path)})
    orch = Orchestrator(settings, "postgresql://unused/none", SymbolTable([SYMBOL, "BTCUSDT"]),
                        workers=1, clock=deps.clock)
    orch.runner = runner
    worker = asyncio.create_task(orch._worker(0))
    try:
        [answer] = await orch.submit([news_incident("inc-live").model_dump(mode="json")])
        assert answer["status"] == "queued"
        deadline = time.monotonic() + 30
        while not orch.results:
            assert time.monotonic() < deadline, "the orchestrator never decided"
            await asyncio.sleep(0.01)
    finally:
        orch._closing = True
        orch._wake.set()
        await asyncio.wait_for(worker, 10)
    return orch.results[0], dict(orch._c), len(orch._unsettled)


def test_a_panel_without_consensus_is_a_hold_live_as_in_the_backtest(tmp_path) -> None:
    runner, _ = panel_runner(dict(MEMBERS))
    backtest = asyncio.run(runner.handle(news_incident("inc-back")))
    live, counters, unsettled = asyncio.run(live_outcome(tmp_path))
    assert backtest.outcome == "HOLD" and backtest.verdict == "IGNORE"
    assert (live.outcome, live.verdict, live.decision_id, live.reason) == (
        backtest.outcome, backtest.verdict, backtest.decision_id, backtest.reason)
    assert live.incident_id == "inc-live"
    assert counters["triage_failed"] == 0 and unsettled == 0  # nothing to settle: it ended
