"""Run incidents through triage and sign-off, pause for people, resume after a crash.

:class:`DecisionRunner` owns the two compiled graphs and their checkpointer. Each graph run
is a LangGraph thread: the triage of incident ``I`` is thread ``triage:I``, the decision
``D`` is thread ``D`` (the decision id, a UUIDv7). With the PostgreSQL checkpointer
(:func:`postgres_checkpointer`) a process that stops mid-decision resumes it from its last
checkpoint (:meth:`DecisionRunner.recover`), a TWO_PHASE decision waits across restarts for
its approval, and a finished one is never run again: its outcome is final in the store and
its order's client id is derived from the decision id.

Bursts go through :class:`tripwire.decisions.intake.IncidentIntake`: one incident per symbol
per cool-down, a bounded queue, and an overflow recorded as ``skipped: overload``.

Tracing: ``handle``, ``triage``, ``decide`` and ``resume`` take an optional W3C carrier
(``trace``, from :func:`tripwire.telemetry.inject` in the actor or deployment that sent the
incident) and run inside a span that is its child, so the node spans, the LLM call spans and
the order's span all share the incident's trace id.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graphs.deps import DecisionDeps
from graphs.guard import DECISION_ID, INCIDENT_ID
from graphs.signoff import build_signoff_graph, initial_state, write_journal
from graphs.triage import NO_CONSENSUS, TRIAGED, build_triage_graph, triage_input
from tripwire import telemetry
from tripwire.decisions.intake import OVERLOAD, SKIPPED_OVERLOAD, IncidentIntake
from tripwire.decisions.outcome import AWAITING_APPROVAL, Outcome
from tripwire.incident import Incident
from tripwire.model import client_order_id, new_id
from tripwire.store.decisions import StoreError

DURABILITY = "sync"  # a checkpoint is written before the next node starts: crash-safe
MAX_PAUSED_TRACES = 10_000  # carriers of decisions awaiting approval kept for their resume
DUPLICATE = "duplicate"  # the answer to a trip already claimed by an incident
ABANDONED = "abandoned"  # the final incident status prefix of work a fault interrupted
MAX_STATUS = 300  # characters of an incident status
RESTART_WHY = "interrupted before its verdict; still unfinished at a restart"
TRIAGE_FAILED = "TRIAGE_FAILED"  # the outcome of a triage that ended without a verdict


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """Where one incident ended: ``outcome`` is a final Outcome, ``AWAITING_APPROVAL``, or
    ``TRIAGE_FAILED`` / ``SKIPPED`` / ``COALESCED`` (no decision was made)."""

    incident_id: str
    symbol: str
    outcome: str
    reason: str
    decision_id: str | None = None
    verdict: str | None = None
    order_id: str | None = None
    journal: str | None = None


@contextlib.asynccontextmanager
async def postgres_checkpointer(dsn: str, *, max_size: int = 8) -> AsyncIterator[Any]:
    """LangGraph's AsyncPostgresSaver on a small connection pool, its tables set up."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    # Checkpoints commit without waiting for the WAL flush: a power cut can lose the last
    # few hundred ms of them, and the decision then resumes from an earlier step, which is
    # safe (signatures and orders are idempotent, outcomes final). What proves a decision
    # (the decision store: signatures, orders, outcomes) still commits synchronously.
    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row,
              "options": "-c synchronous_commit=off"}
    async with AsyncConnectionPool(dsn, min_size=1, max_size=max_size, kwargs=kwargs,
                                   open=False) as pool:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        yield saver


class DecisionRunner:
    def __init__(self, deps: DecisionDeps, checkpointer: BaseCheckpointSaver | None = None,
                 *, durability: str = DURABILITY) -> None:
        self.deps = deps
        self.checkpointer = checkpointer if checkpointer is not None else InMemorySaver()
        self.durability = durability
        self.triage_graph = build_triage_graph(deps).compile(checkpointer=self.checkpointer)
        self.signoff_graph = build_signoff_graph(deps).compile(checkpointer=self.checkpointer)
        s = deps.config.signoff
        self.intake = IncidentIntake(cooldown_ns=deps.config.ns("incident_cooldown_s"),
                                     max_pending=s.max_pending)
        self._queued: dict[str, Incident] = {}
        self._paused_traces: dict[str, dict[str, str]] = {}  # decision id -> carrier
        self.paused_traces_dropped = 0

    # -- intake ---------------------------------------------------------------------------

    async def submit(self, incident: Incident) -> DecisionResult | None:
        """Queue an incident (coalesced or refused ones are recorded, never dropped).

        An incident is its trip: the first to claim (symbol, trip time, lead metric) in the
        store owns it; the same trip again -- another id, a later arrival, another replica,
        after a restart -- is answered ``duplicate`` with the owner's id and never decided.
        The claim precedes the intake, whose coalescing is by time since the symbol's last
        admitted trip and so cannot see an old trip posted again."""
        incident = incident if incident.id else incident.model_copy(update={"id": new_id()})
        trip = (incident.symbol, incident.ts_ns, incident.metric)
        owner, claimed = await self.deps.store.claim_trip(*trip, incident.id,
                                                          self.deps.clock.now_ns())
        if not claimed:
            self.deps.metrics.incident_skipped(DUPLICATE)
            return DecisionResult(owner, incident.symbol, "SKIPPED", DUPLICATE)
        admission = self.intake.offer(incident.id, incident.symbol, incident.ts_ns)
        if admission.status == OVERLOAD:  # refused before any work: it may be posted again
            await self.deps.store.release_trip(*trip, incident.id)
            return await self._skip(incident, SKIPPED_OVERLOAD, "overload")
        if admission.into is not None:
            return await self._skip(incident, f"coalesced into {admission.into}", "coalesced")
        self._queued[incident.id] = incident
        return None

    async def _skip(self, incident: Incident, status: str, metric: str) -> DecisionResult:
        store = self.deps.store
        await store.record_incident(incident.id, incident.symbol, incident.ts_ns, status,
                                    incident.model_dump(mode="json"))
        self.deps.metrics.incident_skipped(metric)
        return DecisionResult(incident.id, incident.symbol, "SKIPPED", status)

    async def drain(self) -> list[DecisionResult]:
        """Handle every queued incident, oldest first."""
        results = []
        while (incident := self.take()) is not None:
            results.append(await self.handle(incident))
        return results

    def take(self) -> Incident | None:
        """The next queued incident (oldest first), for callers that run several at once."""
        incident_id = self.intake.take()
        return None if incident_id is None else self._queued.pop(incident_id)

    def queued(self) -> int:
        return len(self._queued)

    # -- running ----------------------------------------------------------------------------

    async def handle(self, incident: Incident,
                     trace: Mapping[str, str] | None = None) -> DecisionResult:
        """Triage, then (with a verdict) sign-off, as one trace: span ``incident.handle`` is
        the child of ``trace`` (the carrier of the tick batch that tripped, when given)."""
        with telemetry.span("incident.handle", trace, **_ids(incident)) as span:
            t = await self.triage(incident)
            ended = triage_end(incident, t)
            if ended is not None:
                if ended.outcome == TRIAGE_FAILED:
                    telemetry.mark_failed(span, f"triage failed: {ended.reason}")
                return ended
            return await self.decide(incident.model_copy(update={"id": t["incident_id"]}), t)

    async def triage(self, incident: Incident,
                     trace: Mapping[str, str] | None = None) -> dict[str, Any]:
        state = triage_input(incident)
        config = {"configurable": {"thread_id": f"triage:{state['incident_id']}"}}
        with telemetry.span("incident.triage", trace, **_ids(incident)):
            return await self.triage_graph.ainvoke(state, config, durability=self.durability)

    async def decide(self, incident: Incident, triaged: dict[str, Any],
                     decision_id: str | None = None,
                     trace: Mapping[str, str] | None = None) -> DecisionResult:
        decision_id = decision_id or new_id(self.deps.clock)
        state = initial_state(decision_id, self.deps.config.mode, incident, triaged["verdict"],
                              triaged["verdict_id"], triaged["verdict_ts_ns"],
                              self.deps.clock.now_ns())
        with telemetry.span("decision.signoff", trace, **_ids(incident),
                            **{DECISION_ID: decision_id}):
            final = await self.signoff_graph.ainvoke(state, self._config(decision_id),
                                                     durability=self.durability)
            return self._traced(self._result(final))

    async def resume(self, decision_id: str, answer: Any = None,
                     trace: Mapping[str, str] | None = None) -> DecisionResult:
        """Continue a paused or interrupted decision (``answer``: the approval's resume).

        Without ``trace`` a decision paused in this process continues its own trace."""
        trace = trace or self._paused_traces.pop(decision_id, None)
        value = None if answer is None else Command(resume=answer)
        with telemetry.span("decision.signoff", trace, **{DECISION_ID: decision_id,
                                                            "tripwire.resumed": True}):
            final = await self.signoff_graph.ainvoke(value, self._config(decision_id),
                                                     durability=self.durability)
            return self._traced(self._result(final))

    async def approve(self, decision_id: str, by: str, note: str = "",
                      trace: Mapping[str, str] | None = None) -> DecisionResult:
        return await self.resume(decision_id, {"approve": True, "by": by, "note": note}, trace)

    async def reject(self, decision_id: str, by: str, note: str = "",
                     trace: Mapping[str, str] | None = None) -> DecisionResult:
        return await self.resume(decision_id, {"approve": False, "by": by, "note": note}, trace)

    def _traced(self, result: DecisionResult) -> DecisionResult:
        """Remember a paused decision's trace so its approval continues it (in memory,
        bounded: after a restart, or past the bound, the approval starts a new trace)."""
        if result.outcome == AWAITING_APPROVAL and result.decision_id:
            carrier = telemetry.inject()
            if carrier:
                if len(self._paused_traces) >= MAX_PAUSED_TRACES:
                    self._paused_traces.pop(next(iter(self._paused_traces)))
                    self.paused_traces_dropped += 1
                self._paused_traces[result.decision_id] = carrier
        return result

    async def expire_due(self) -> list[DecisionResult]:
        """Close every pending approval past its expiry (as EXPIRED)."""
        now = self.deps.clock.now_ns()
        due = [a for a in await self.deps.store.pending_approvals() if a.expires_ns < now]
        return [await self.resume(a.decision_id, {"approve": False, "by": "expiry",
                                                   "note": "no answer before expiry"})
                for a in due]

    async def recover(self) -> list[DecisionResult]:
        """After a restart: resume every undecided decision that is not waiting for a person
        from its last checkpoint. One without a checkpoint never got past its first step
        and is closed REJECTED (no order can have been placed). Then every incident still
        unfinished (``triaging``: its triage was cut off, by a crash or a database outage,
        before a verdict) is closed ``abandoned: <why>`` with a bus message: a triage is not
        resumed after a restart -- the market moment it judged has passed, and no decision
        can follow an incident without a verdict."""
        results = await self._resume_undecided()
        await self.close_unfinished(RESTART_WHY)
        return results

    async def close_unfinished(self, why: str, incident_ids: set[str] | None = None
                               ) -> list[str]:
        """Close unfinished incidents (all, or those in ``incident_ids``) not queued here as
        ``abandoned: <why>``; the ids closed. Each close is conditional in the store (one
        that finished meanwhile keeps its status) and told on the bus."""
        store, closed, done = self.deps.store, [], set()
        while True:
            rows = await store.unfinished_incidents(limit=1_000)
            todo = [r for r in rows if r["id"] not in self._queued
                    and (incident_ids is None or r["id"] in incident_ids)
                    and r["id"] not in done]
            for row in todo:
                done.add(row["id"])
                if await self.abandon(row["id"], why, was=row["status"]):
                    closed.append(row["id"])
            if len(rows) < 1_000 or not todo:  # a full page of nothing to do: done
                return closed

    async def abandon(self, incident_id: str, why: str, *, was: str = "") -> bool:
        """Close one incident ``abandoned: <why>`` if it is still unfinished (True), with a
        bus message; False when it had finished (its own status stands) or is unknown."""
        store = self.deps.store
        status = f"{ABANDONED}: {why}"[:MAX_STATUS]
        try:
            if not await store.close_incident(incident_id, status):
                return False
        except StoreError:  # never recorded: the fault came before its first write
            return False
        self.deps.metrics.incident_skipped(ABANDONED)
        await store.append_message(incident_id, "recovery", "journal", "incident_abandoned",
                                   {"status": status, "was": was}, self.deps.clock.now_ns())
        return True

    @staticmethod
    def unrecorded(result: DecisionResult) -> bool:
        """True when a decision ended but its final node could not record the outcome
        (the guard appends ``; finish: <error>`` to the reason): the stored decision is
        still undecided, and :meth:`settle_failed` must close it once the store answers."""
        return (result.outcome != AWAITING_APPROVAL and result.decision_id is not None
                and "; finish: " in (result.reason or ""))

    async def settle_failed(self, decision_id: str, why: str) -> DecisionResult | None:
        """A decision whose run raised (its store or its checkpointer failed mid-way: the
        database went down) is never left half-done. If the venue holds its order, the run
        resumes from its checkpoint and adopts that order (EXECUTED); otherwise it is closed
        REJECTED ``failed mid-decision: <why>``, told on the bus and in its journal. None
        when there is nothing to settle (never recorded -- then no order can exist -- or
        decided already). Raises while the database is still unreachable: retry later."""
        d = self.deps
        row = await d.store.proposal(decision_id)
        if row is None or row["outcome"] is not None:
            return None
        try:
            order = await d.broker_call(d.broker.get_order, client_order_id(decision_id, 0))
        except Exception:  # unknown to the venue: no order was placed for it
            order = None
        if order is not None:
            return await self.resume(decision_id)
        reason = f"failed mid-decision: {why}"[:500]
        now = d.clock.now_ns()
        if not await d.store.set_outcome(decision_id, Outcome.REJECTED.value, reason, now):
            return None
        d.metrics.decision(Outcome.REJECTED.value)
        await d.store.append_message(decision_id, "recovery", "journal", "outcome",
                                     {"outcome": Outcome.REJECTED.value, "reason": reason},
                                     now)
        await write_journal(d, decision_id)
        return DecisionResult(row.get("incident_id") or "", row.get("symbol") or "",
                              Outcome.REJECTED.value, reason, decision_id)

    async def _resume_undecided(self) -> list[DecisionResult]:
        results = []
        waiting = {a.decision_id for a in await self.deps.store.pending_approvals()}
        for row in await self.deps.store.decisions(limit=10_000, undecided_only=True):
            if row["id"] in waiting:
                continue
            snapshot = await self.signoff_graph.aget_state(self._config(row["id"]))
            if not snapshot.values:
                await self.deps.store.set_outcome(row["id"], "REJECTED",
                                                  "no checkpoint to resume from after a restart",
                                                  self.deps.clock.now_ns())
                continue
            if not snapshot.next:  # ran to its end, but the final node's writes were lost
                await self.signoff_graph.aupdate_state(self._config(row["id"]), {},
                                                       as_node="execute")  # finish again
            results.append(await self.resume(row["id"]))
        return results

    def _config(self, decision_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": decision_id}}

    @staticmethod
    def _result(final: dict[str, Any]) -> DecisionResult:
        outcome = final.get("outcome") or AWAITING_APPROVAL
        if final.get("__interrupt__"):
            outcome = AWAITING_APPROVAL
        reason = final.get("reason", "")
        if outcome == AWAITING_APPROVAL and final.get("__interrupt__"):
            reason = str(final["__interrupt__"][0].value.get("summary", ""))
        verdict = final.get("verdict") or {}
        return DecisionResult(
            final.get("incident_id", ""), (final.get("incident") or {}).get("symbol", ""),
            outcome, reason, final.get("decision_id"), verdict.get("classification"),
            (final.get("order") or {}).get("client_order_id"), final.get("journal"))


def triage_end(incident: Incident, triaged: Mapping[str, Any]) -> DecisionResult | None:
    """Where an incident ends when its triage gives the sign-off nothing to act on -- the
    one rule the backtest (:meth:`DecisionRunner.handle`) and the live service
    (``serve_apps.orchestrator.Orchestrator``) both apply, so they agree decision for
    decision. None: it was TRIAGED (the sign-off follows). The panel's no-consensus is its
    fail-closed IGNORE: a HOLD, no decision. Anything else: TRIAGE_FAILED."""
    incident_id = triaged.get("incident_id") or incident.id
    reason = triaged.get("reason", "") or ""
    outcome = triaged.get("outcome")
    if outcome == TRIAGED:
        return None
    if outcome == NO_CONSENSUS:
        return DecisionResult(incident_id, incident.symbol, "HOLD", reason, verdict="IGNORE")
    return DecisionResult(incident_id, incident.symbol, TRIAGE_FAILED, reason)


def _ids(incident: Incident) -> dict[str, str]:
    return {INCIDENT_ID: incident.id, "tripwire.symbol": incident.symbol}
