"""Build a decision runner for tests: real graphs, real rules analyst, paper backend.

``overrides`` replace one role's answer (a dict, an exception to raise, or a coroutine
function of the request), which is how tests make a node time out, answer malformed JSON
or propose a large size. ``store`` and ``checkpointer`` default to in-memory ones; pass
PostgreSQL ones to test restarts.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graphs.deps import DecisionDeps
from graphs.runner import DecisionRunner
from tests.llm.test_rules import BAD_NEWS, make
from tripwire.decisions.config import load_decision_config
from tripwire.decisions.prices import LatestPrices
from tripwire.execution.paper import PaperBroker
from tripwire.incident import Incident
from tripwire.llm.base import LLMRequest, ProviderResult, Usage
from tripwire.llm.config import load_llm_config
from tripwire.llm.router import build_router
from tripwire.llm.rules import RulesProvider
from tripwire.llm.skills import SkillLoader
from tripwire.metrics import DecisionMetrics
from tripwire.model import NS_PER_SECOND, SimClock, SymbolTable
from tripwire.risk.modes import SafetyMode
from tripwire.store.decisions import DecisionStore, MemoryDecisionStore

SKILLS = Path(__file__).resolve().parents[2] / "skills"
SYMBOL = "ETHUSDT"
PRICE = 3400.0
T0 = 1_000 * NS_PER_SECOND  # the incident's time (tests.llm.test_rules.make)


def news_incident(incident_id: str = "", move: float = -2.9) -> Incident:
    """A confident bad-news drop: the rules analyst SELLs it (a small, stopped position)."""
    inc = make(ret_1_pct=move, ret_10_pct=move, news=BAD_NEWS, price=PRICE)
    return inc.model_copy(update={"id": incident_id}) if incident_id else inc


class ScriptedProvider:
    """The rules analyst, except for the roles a test scripts."""

    kind = "scripted"
    model = "scripted-v1"

    def __init__(self, overrides: dict[str, Any] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self.rules = RulesProvider()
        self.calls: list[str] = []

    async def complete(self, request: LLMRequest, *, timeout_s: float) -> ProviderResult:
        self.calls.append(request.role)
        script = self.overrides.get(request.role)
        if script is None:
            return await self.rules.complete(request, timeout_s=timeout_s)
        if isinstance(script, BaseException):
            raise script
        data = await script(request) if callable(script) else script
        raw = data if isinstance(data, str) else json.dumps(data)
        parsed = data if isinstance(data, dict) else {"raw": data}
        return ProviderResult(parsed, raw, Usage(0, 0), self.model, 0.1, self.kind)

    async def aclose(self) -> None:
        return None


def router_for(provider: ScriptedProvider):
    config = load_llm_config({"routes": [{"name": "scripted", "provider": "rules",
                                          "retries": 0, "rate_per_s": 1e6, "burst": 1000000,
                                          "timeout_s": 5.0}]})
    return build_router(config, {"scripted": provider})


def make_runner(
    mode: SafetyMode = SafetyMode.DIRECT,
    *,
    store: DecisionStore | None = None,
    checkpointer: Any = None,
    broker: PaperBroker | None = None,
    clock: SimClock | None = None,
    overrides: dict[str, Any] | None = None,
    before_node: Callable[[str, dict[str, Any]], Any] | None = None,
    risk: dict[str, Any] | None = None,
    signoff: dict[str, Any] | None = None,
    journal_root: Path | None = None,
) -> tuple[DecisionRunner, DecisionDeps]:
    clock = clock or SimClock(T0 + NS_PER_SECOND)
    symbols = SymbolTable([SYMBOL, "BTCUSDT"])
    config = load_decision_config({"mode": mode.value, **(risk or {})}, signoff or {})
    config = dataclasses.replace(config)
    prices = LatestPrices(symbols)
    prices.set(SYMBOL, PRICE, clock.now_ns())
    provider = ScriptedProvider(overrides)
    metrics, reader = DecisionMetrics.in_memory()
    deps = DecisionDeps(
        store=store or MemoryDecisionStore(),
        broker=broker or PaperBroker(symbols, clock, config.paper),
        backend="paper", router=router_for(provider), skills=SkillLoader(SKILLS),
        config=config, prices=prices, clock=clock, metrics=metrics,
        journal_root=journal_root, before_node=before_node)
    deps.provider = provider  # type: ignore[attr-defined]  # tests read its calls
    deps.reader = reader  # type: ignore[attr-defined]
    return DecisionRunner(deps, checkpointer), deps
