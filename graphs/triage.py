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

import itertools
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from graphs.deps import DecisionDeps
from graphs.guard import guarded, next_or_finish
from graphs.signoff import jsonable
from tripwire.incident import Incident
from tripwire.llm.schemas import TriageVerdict
from tripwire.model import new_id

GRAPH = "triage"
TRIAGED = "TRIAGED"
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
    outcome: str
    reason: str


class TriageNodes:
    def __init__(self, deps: DecisionDeps) -> None:
        self.d = deps

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
        await self._say(s, "intake", "triage-analyst", "incident",
                        {"symbol": incident.symbol, "metric": incident.metric,
                         "z": incident.z, "news": len(incident.news),
                         "recent_verdicts": brief})
        return {"recent_verdicts": brief}

    async def classify(self, s: TriageState) -> dict[str, Any]:
        incident = Incident.model_validate(s["incident"])
        response = await self.d.router.call(self.d.skills.request("triage-analyst", incident))
        meta = {"route": response.route, "model": response.model, "source": response.source,
                "cost_usd": response.cost_usd, "latency_ms": response.latency_ms,
                "cached": response.cached,
                # Leakage guard: what the model may have read about (None: unknown/no model).
                "training_cutoff": _cutoff(self.d.router, response.route)}
        return {"answer": response.value.model_dump(mode="json"), "answer_meta": meta}

    async def validate(self, s: TriageState) -> dict[str, Any]:
        verdict = TriageVerdict.model_validate(s["answer"])
        return {"verdict": verdict.model_dump(mode="json")}

    async def persist(self, s: TriageState) -> dict[str, Any]:
        d, v = self.d, s["verdict"]
        verdict_id, now = new_id(d.clock), d.clock.now_ns()
        payload = {**v, **s.get("answer_meta", {}), "recent_verdicts": s.get("recent_verdicts")}
        await d.store.record_verdict(verdict_id, s["incident_id"], s["incident"]["symbol"], now,
                                     v["classification"], v["confidence"], jsonable(payload))
        await d.store.set_incident_status(s["incident_id"], "triaged")
        d.metrics.verdict(v["classification"])
        await self._say(s, "triage-analyst", "strategist", "verdict",
                        {"verdict_id": verdict_id, **v})
        return {"verdict_id": verdict_id, "verdict_ts_ns": now, "outcome": TRIAGED,
                "reason": f"{v['classification']} ({v['confidence']:.2f})"}

    async def finish(self, s: TriageState) -> dict[str, Any]:
        if s.get("outcome") == TRIAGED:
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
