"""The triage graph: an incident becomes a validated, persisted verdict.

::

    gather_context -> classify -> validate -> persist -> finish
          |               |           |                    ^
          +---------------+-----------+--------------------+   (on any failure)

* **gather_context**: records the incident (its frozen snapshot, the news of its window and
  the market context travel inside it) and reads the symbol's recent verdicts;
* **classify**: the ``triage-analyst`` skill through the LLM router (the offline rules
  analyst when no model is configured);
* **validate**: the answer against :class:`TriageVerdict` (the router validated it once; this
  re-check guards the checkpointed state, which a restart reads back);
* **persist**: the verdict row, the incident's status and a bus message;
* **finish**: a failed triage marks the incident ``failed: <reason>``; no decision follows.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from graphs.deps import DecisionDeps
from graphs.guard import guarded, next_or_finish
from graphs.signoff import jsonable
from tripwire.decisions.memory import recall, render, with_memory
from tripwire.decisions.panel import PANEL_ROLES, vote
from tripwire.incident import Incident
from tripwire.llm.schemas import TriageVerdict
from tripwire.llm.skills import SkillLoader
from tripwire.model import new_id

GRAPH = "triage"
TRIAGED = "TRIAGED"
NO_CONSENSUS = "NO_CONSENSUS"  # the panel reached no verdict: an IGNORE is recorded, no decision
RECENT_VERDICTS = 5


class TriageState(TypedDict, total=False):
    incident: dict[str, Any]
    incident_id: str
    recent_verdicts: list[dict[str, Any]]
    answer: dict[str, Any]
    answer_meta: dict[str, Any]
    verdict: dict[str, Any]
    verdict_id: str
    verdict_ts_ns: int
    memory: str  # the rendered memory section ("" when [memory] is off)
    outcome: str
    reason: str


class TriageNodes:
    def __init__(self, deps: DecisionDeps) -> None:
        self.d = deps
        self._panel_skills: SkillLoader | None = None

    def panel_skills(self) -> SkillLoader:
        """The panel members' skills (TriageVerdict answers), loaded on first use from the
        same folder as the other roles' (a missing or broken SKILL.md fails that call)."""
        if self._panel_skills is None:
            sk = self.d.skills
            self._panel_skills = SkillLoader(
                sk.root, sk.clock, roles=list(self.d.config.panel.members),
                models=dict.fromkeys(PANEL_ROLES, TriageVerdict))
        return self._panel_skills

    async def _say(self, s: TriageState, sender: str, recipient: str, kind: str,
                   payload: dict[str, Any]) -> None:
        await self.d.store.append_message(s["incident_id"], sender, recipient, kind,
                                          jsonable(payload), self.d.clock.now_ns())

    async def gather_context(self, s: TriageState) -> dict[str, Any]:
        incident = Incident.model_validate(s["incident"])
        await self.d.store.record_incident(incident.id, incident.symbol, incident.ts_ns,
                                           "triaging", incident.model_dump(mode="json"))
        recent = await self.d.store.recent_verdicts(incident.symbol, RECENT_VERDICTS)
        brief = [{"class": v["class"], "confidence": v["confidence"], "ts_ns": v["ts_ns"]}
                 for v in recent]
        memory = render(await recall(self.d.store, incident, self.d.config.memory),
                        incident.ts_ns, self.d.config.memory.max_chars)
        await self._say(s, "intake", "triage-analyst", "incident",
                        {"symbol": incident.symbol, "metric": incident.metric,
                         "z": incident.z, "news": len(incident.news),
                         "recent_verdicts": brief, "memory": memory or None})
        return {"recent_verdicts": brief, "memory": memory}

    async def classify(self, s: TriageState) -> dict[str, Any]:
        incident = Incident.model_validate(s["incident"])
        if self.d.config.panel.enabled:
            return await self._panel(s, incident)
        request = with_memory(self.d.skills.request("triage-analyst", incident),
                              s.get("memory", ""))
        response = await self.d.router.call(request)
        meta = {"route": response.route, "model": response.model, "source": response.source,
                "cost_usd": response.cost_usd, "latency_ms": response.latency_ms,
                "cached": response.cached,
                # Leakage guard: what the model may have read about (None: unknown/no model).
                "training_cutoff": _cutoff(self.d.router, response.route)}
        return {"answer": response.value.model_dump(mode="json"), "answer_meta": meta}

    async def _ask(self, role: str, incident: Incident, memory: str) -> Any:
        """One member's answer (a TriageVerdict) or the exception that stopped it."""
        try:
            request = with_memory(self.panel_skills().request(role, incident), memory)
            return await self.d.router.call(request)
        except Exception as exc:  # a failed member is counted, never a vote
            return exc

    async def _panel(self, s: TriageState, incident: Incident) -> dict[str, Any]:
        """Every member at once, then the vote (tripwire.decisions.panel.vote)."""
        cfg = self.d.config.panel
        memory = s.get("memory", "")
        results = await asyncio.gather(*(self._ask(m, incident, memory) for m in cfg.members))
        answers: dict[str, TriageVerdict | None] = {}
        errors: dict[str, str] = {}
        for member, r in zip(cfg.members, results, strict=True):
            ok = not isinstance(r, BaseException) and isinstance(r.value, TriageVerdict)
            answers[member] = r.value if ok else None
            if not ok:
                errors[member] = (f"{type(r).__name__}: {r}"[:300] if isinstance(r, BaseException)
                                  else f"answer is a {type(r.value).__name__}")
        result = vote(answers, cfg.threshold)
        done = [r for r in results if not isinstance(r, BaseException)]
        record = {**result.record(answers), "threshold": cfg.threshold, "errors": errors}
        meta = {"route": ",".join(sorted({r.route for r in done})) or None,
                "model": ",".join(sorted({r.model for r in done})) or None,
                "source": "panel", "cost_usd": sum(r.cost_usd or 0.0 for r in done),
                "latency_ms": max((r.latency_ms or 0.0 for r in done), default=0.0),
                "cached": bool(done) and all(r.cached for r in done),
                "calls": len(cfg.members), "panel": record,
                "training_cutoff": min((c for c in (_cutoff(self.d.router, r.route)
                                                    for r in done) if c), default=None)}
        await self._say(s, "panel", "triage-analyst", "panel_vote", record)
        if not result.reached:
            self.d.metrics.incident_skipped("panel_no_consensus")
        return {"answer": result.verdict.model_dump(mode="json"), "answer_meta": meta}

    async def validate(self, s: TriageState) -> dict[str, Any]:
        verdict = TriageVerdict.model_validate(s["answer"])
        return {"verdict": verdict.model_dump(mode="json")}

    async def persist(self, s: TriageState) -> dict[str, Any]:
        d, v = self.d, s["verdict"]
        verdict_id, now = d.derived_id("verdict", s["incident_id"]), d.clock.now_ns()
        payload = {**v, **s.get("answer_meta", {}), "recent_verdicts": s.get("recent_verdicts")}
        await d.store.record_verdict(verdict_id, s["incident_id"], s["incident"]["symbol"], now,
                                     v["classification"], v["confidence"], jsonable(payload))
        await d.store.set_incident_status(s["incident_id"], "triaged")
        d.metrics.verdict(v["classification"])
        await self._say(s, "triage-analyst", "strategist", "verdict",
                        {"verdict_id": verdict_id, **v})
        panel = s.get("answer_meta", {}).get("panel")
        if panel is not None and not panel["reached"]:  # fail closed: no strategist
            return {"verdict_id": verdict_id, "verdict_ts_ns": now, "outcome": NO_CONSENSUS,
                    "reason": v["reasoning"][:300]}
        return {"verdict_id": verdict_id, "verdict_ts_ns": now, "outcome": TRIAGED,
                "reason": f"{v['classification']} ({v['confidence']:.2f})"}

    async def finish(self, s: TriageState) -> dict[str, Any]:
        if s.get("outcome") in (TRIAGED, NO_CONSENSUS):
            return {}
        reason = s.get("reason") or "ended without a verdict"
        if await self.d.store.incident(s["incident_id"]) is not None:
            await self.d.store.set_incident_status(s["incident_id"], f"failed: {reason}"[:300])
        self.d.metrics.incident_skipped("triage_failed")
        return {"reason": reason}


def _cutoff(router: Any, route: str) -> str | None:
    # A router without the method (a test double) has no cutoffs to report.
    get = getattr(router, "training_cutoff", None)
    return get(route) if get is not None else None


def build_triage_graph(deps: DecisionDeps) -> StateGraph:
    nodes = TriageNodes(deps)
    timeout = deps.config.signoff.node_timeout_s
    g = StateGraph(TriageState)
    order = ["gather_context", "classify", "validate", "persist"]
    for name in [*order, "finish"]:
        g.add_node(name, guarded(GRAPH, name, getattr(nodes, name), timeout_s=timeout,
                                 metrics=deps.metrics, always=name == "finish"))
    g.add_edge(START, "gather_context")
    for here, there in itertools.pairwise(order):
        g.add_conditional_edges(here, next_or_finish(there), [there, "finish"])
    g.add_edge("persist", "finish")
    g.add_edge("finish", END)
    return g


def triage_input(incident: Incident, incident_id: str | None = None) -> TriageState:
    if incident_id is None:
        incident_id = incident.id or new_id()
    if incident.id != incident_id:
        incident = incident.model_copy(update={"id": incident_id})
    return TriageState(incident=incident.model_dump(mode="json"), incident_id=incident_id)
