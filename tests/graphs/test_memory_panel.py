"""Memory and the consensus panel in the real triage and sign-off graphs (rules analyst,
paper venue): what reaches the prompts, what is recorded, and the panel failing closed."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from tests.graphs.harness import make_runner, news_incident
from tripwire.decisions.memory import MEMORY_HEADING, MemorySettings
from tripwire.decisions.panel import PANEL_ROLES, PanelSettings
from tripwire.llm.base import ProviderError
from tripwire.llm.rules import RulesProvider
from tripwire.model import NS_PER_SECOND
from tripwire.store.journal import render_journal

MIN = 60 * NS_PER_SECOND
RULES = RulesProvider()


def recording(prompts: dict[str, list[str]], role: str):
    """A scripted role that answers as the rules analyst and keeps the prompt it got."""
    async def answer(request) -> dict[str, Any]:
        prompts.setdefault(role, []).append(request.messages[-1].content)
        return (await RULES.complete(request, timeout_s=5)).data
    return answer


async def seed_past(store, incident) -> None:
    """A past verdict, an outcome realised before the incident and one realised after it."""
    f = incident.features()
    t = incident.ts_ns
    for iid, ts, horizon, move in (("past", t - 90 * MIN, 60 * MIN, -4.0),
                                   ("unrealised", t - 10 * MIN, 60 * MIN, 7.0)):
        await store.record_incident(iid, incident.symbol, ts, "triaged", {})
        await store.record_verdict(f"v-{iid}", iid, incident.symbol, ts, "NEWS_DRIVEN", 0.7, {})
        await store.record_outcome(iid, symbol=incident.symbol, metric=incident.metric,
                                   z_bucket=f["z_bucket"], ts_ns=ts, realised_ns=ts + horizon,
                                   horizon_s=horizon / NS_PER_SECOND, move_pct=move,
                                   classification="NEWS_DRIVEN", action="SELL",
                                   has_news=True)


def run_with(memory: bool) -> dict[str, list[str]]:
    prompts: dict[str, list[str]] = {}
    runner, deps = make_runner(overrides={r: recording(prompts, r)
                                          for r in ("triage-analyst", "strategist")})
    deps.config = dataclasses.replace(deps.config, memory=MemorySettings(enabled=memory))
    incident = news_incident("inc-now")

    async def main() -> None:
        await seed_past(deps.store, incident)
        await runner.handle(incident)

    asyncio.run(main())
    return prompts


def test_memory_off_leaves_the_prompts_as_they_were():
    prompts = run_with(memory=False)
    assert prompts["triage-analyst"] and prompts["strategist"]
    assert not any(MEMORY_HEADING in p for ps in prompts.values() for p in ps)


def test_memory_on_shows_past_verdicts_and_outcomes_realised_before_the_incident_only():
    prompts = run_with(memory=True)
    for role in ("triage-analyst", "strategist"):
        [prompt] = prompts[role]
        memory = prompt[prompt.index(MEMORY_HEADING):]
        assert "moved -4.00% over 60 min" in memory  # realised 30 min before: a fact
        assert "+7.00%" not in memory  # realised 50 min after the incident: the future
        assert "verdict 10 min before: NEWS_DRIVEN" in memory  # its verdict is history
        assert memory.count("similar incident") == 1
        assert len(memory) <= MemorySettings().max_chars


def panel_runner(overrides: dict[str, Any], threshold: int = 2):
    runner, deps = make_runner(overrides=overrides)
    deps.config = dataclasses.replace(
        deps.config, panel=PanelSettings(enabled=True, members=PANEL_ROLES, threshold=threshold))
    return runner, deps


def test_the_panel_asks_every_member_at_once_and_records_the_vote():
    arrived: list[str] = []
    everyone = asyncio.Event()

    def member(role: str):
        async def answer(request) -> dict[str, Any]:
            arrived.append(role)
            if len(arrived) == len(PANEL_ROLES):
                everyone.set()
            await asyncio.wait_for(everyone.wait(), 5)  # only if all are asked at once
            return (await RULES.complete(request, timeout_s=5)).data
        return answer

    runner, deps = panel_runner({r: member(r) for r in PANEL_ROLES})

    async def main():
        res = await runner.handle(news_incident("inc-p"))
        verdicts = await deps.store.verdicts_of("inc-p")
        return res, verdicts, await deps.store.messages("inc-p")

    res, [verdict], messages = asyncio.run(main())
    assert sorted(arrived) == sorted(PANEL_ROLES)
    assert "triage-analyst" not in deps.provider.calls  # the panel replaces the analyst
    panel = verdict["payload"]["panel"]
    assert verdict["payload"]["calls"] == 3 and panel["reached"] is True
    assert set(panel["members"]) == set(PANEL_ROLES)
    assert res.outcome not in ("TRIAGE_FAILED",) and res.decision_id is not None
    assert any(m["kind"] == "panel_vote" for m in messages)


def test_a_dissenting_member_is_recorded_and_lowers_the_confidence():
    dissent = {"classification": "MANIPULATION", "confidence": 0.9, "reasoning": "pump",
               "key_factors": ["volume"], "source": "llm"}
    runner, deps = panel_runner({"news-analyst": dissent})

    async def main():
        res = await runner.handle(news_incident("inc-d"))
        chain = await deps.store.chain(res.decision_id)
        return await deps.store.verdicts_of("inc-d"), render_journal(chain)

    [verdict], journal = asyncio.run(main())
    assert "**Panel:** consensus, threshold 2" in journal
    assert "| news-analyst | dissent | MANIPULATION | 0.9 |" in journal
    panel = verdict["payload"]["panel"]
    assert panel["dissent"] == ["news-analyst"] and panel["reached"] is True
    assert verdict["class"] != "MANIPULATION"
    assert verdict["confidence"] <= 2 / 3


def test_a_panel_without_consensus_fails_closed_to_a_hold_and_is_counted():
    down = ProviderError("server_error", "member down")
    runner, deps = panel_runner({"news-analyst": down, "market-context-analyst": down})

    async def main():
        res = await runner.handle(news_incident("inc-f"))
        return (res, await deps.store.verdicts_of("inc-f"), await deps.store.incident("inc-f"),
                await deps.store.decisions(10))

    res, [verdict], incident, decisions = asyncio.run(main())
    assert res.outcome == "HOLD" and res.verdict == "IGNORE" and res.decision_id is None
    assert "strategist" not in deps.provider.calls  # no proposal was even asked for
    assert decisions == []
    assert verdict["class"] == "IGNORE" and verdict["confidence"] == 0.0
    assert sorted(verdict["payload"]["panel"]["failed"]) == ["market-context-analyst",
                                                            "news-analyst"]
    assert incident["status"] == "triaged"
    data = deps.reader.get_metrics_data()
    skipped = [p.attributes for rm in data.resource_metrics for sm in rm.scope_metrics
               for m in sm.metrics for p in m.data.data_points
               if "skipped" in m.name]
    assert {"reason": "panel_no_consensus"} in skipped or any(
        "panel_no_consensus" in str(a) for a in skipped)
