"""The sign-off graph: a verdict becomes an order only with three signatures over one hash.

::

    start -> strategist -> risk_gate -> fact_checker -> double_checker -> approval -> execute
                  |             ^                             |              |          |
                  |             +--------- shrink ------------+              |          |
                  +------------------------> finish <------------------------+----------+

* **strategist** (LLM, ``strategist`` skill): BUY, SELL or HOLD with size, stop, target.
  A HOLD ends the decision.
* **risk_gate** (arithmetic): gates (halt flag, rejection and PnL breakers) and sizing
  (risk budget from the stop distance x fractional Kelly, capped by the strategist's size
  and every limit). It fixes the order's terms as a :class:`Proposal` and signs its hash.
* **fact_checker** (arithmetic): re-reads price, verdict age, symbol, halt flag and position
  now, and signs the same hash only if they still hold.
* **double_checker** (LLM, ``double-checker`` skill): blind; it sees the incident's facts
  and the order's numbers, never the strategist's rationale or the verdict. AGREE signs;
  an AGREE with a smaller ``max_size`` makes a smaller revision, which the risk gate and the
  fact-checker sign again; anything else vetoes.
* **approval** (TWO_PHASE only): LangGraph ``interrupt``; resumed with
  ``Command(resume={"approve": bool, "by": str, "note": str})``; approvals expire.
* **execute**: re-reads the proposal from the store, recomputes its hash, verifies three
  APPROVE signatures over it, reads the halt flag, re-checks the facts, and only then places
  the order under a client order id derived from the decision id (a retry or a restart
  returns the same order, never a second one). DRY_RUN stops before the backend.
* **finish**: the final outcome (written once), metrics and the journal file.

Every node runs inside :func:`graphs.guard.guarded`: an exception, a timeout or a malformed
answer ends the decision REJECTED with the reason. State is plain JSON so the PostgreSQL
checkpointer can keep it and a restart resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from graphs.deps import DecisionDeps
from graphs.guard import guarded, next_or_finish, rejected
from tripwire import telemetry
from tripwire.decisions.factcheck import Facts, fact_check
from tripwire.decisions.memory import recall, render, with_memory
from tripwire.decisions.outcome import Outcome
from tripwire.decisions.portfolio import portfolio_state
from tripwire.decisions.pretrade import check_approval, check_facts, check_halt, needs_approval
from tripwire.decisions.proposal import Proposal, proposal_hash
from tripwire.decisions.signatures import (
    DOUBLE_CHECKER,
    FACT_CHECKER,
    RISK_GATE,
    Signature,
    SignVerdict,
    verify_signatures,
)
from tripwire.decisions.sizing import (
    ProposalIds,
    Sizing,
    recheck,
    shrink_to_cap,
    size_fraction,
    size_proposal,
    within_cap,
)
from tripwire.execution.base import Order, OrderRequest, OrderType
from tripwire.incident import Incident
from tripwire.llm.schemas import Action, CheckVerdict, StrategistProposal, TriageVerdict
from tripwire.model import Side, client_order_id
from tripwire.risk.gates import gate_open
from tripwire.risk.modes import SafetyMode
from tripwire.store.decisions import Approval, StoreError

GRAPH = "signoff"
WITHHELD = "(withheld: the double-checker judges the facts and the numbers, not the argument)"


class SignoffState(TypedDict, total=False):
    decision_id: str
    mode: str
    started_ns: int
    incident: dict[str, Any]
    incident_id: str
    verdict: dict[str, Any]
    verdict_id: str
    verdict_ts_ns: int
    strategist: dict[str, Any]
    proposal: dict[str, Any]
    proposal_hash: str
    original_qty: float
    double_cap: float | None
    shrunk: bool
    risk: dict[str, Any]
    facts: list[dict[str, Any]]
    double_check: dict[str, Any]
    approval: dict[str, Any]
    order: dict[str, Any]
    outcome: str
    reason: str
    journal: str


def jsonable(x: Any) -> Any:
    """Plain JSON (no NaN/inf: PostgreSQL's jsonb refuses them) from dataclasses and floats."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return jsonable(dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | set | frozenset):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


class SignoffNodes:
    """The node functions, bound to their dependencies."""

    def __init__(self, deps: DecisionDeps) -> None:
        self.d = deps

    # -- helpers --------------------------------------------------------------------------

    def now(self) -> int:
        return self.d.clock.now_ns()

    async def _say(self, s: SignoffState, sender: str, recipient: str, kind: str,
                   payload: dict[str, Any]) -> None:
        await self.d.store.append_message(s["decision_id"], sender, recipient, kind,
                                          jsonable(payload), self.now())

    async def _sign(self, s: SignoffState, signer: str, h: str, verdict: SignVerdict,
                    reason: str) -> None:
        sig = Signature(signer, h, verdict.value, reason[:500], self.now())
        await self.d.store.add_signature(s["decision_id"], sig)
        await self._say(s, signer, "execute", "signature", dataclasses.asdict(sig))

    async def _record(self, s: SignoffState, p: Proposal | None, payload: dict[str, Any],
                      action: str | None = None) -> None:
        await self.d.store.record_proposal(
            s["decision_id"], incident_id=s["incident_id"], verdict_id=s["verdict_id"],
            symbol=s["incident"]["symbol"], ts_ns=s["started_ns"],
            action=action or (p.side if p else "HOLD"),
            proposal_hash=proposal_hash(p) if p else "", revision=p.revision if p else 0,
            mode=s["mode"], payload=jsonable(payload))

    def _payload(self, s: SignoffState, **extra: Any) -> dict[str, Any]:
        keys = ("strategist", "risk", "facts", "double_check", "approval")
        return {**{k: s[k] for k in keys if k in s}, **extra}

    # -- nodes ----------------------------------------------------------------------------

    async def start(self, s: SignoffState) -> dict[str, Any]:
        """Make the decision visible (undecided) before anything can go wrong."""
        await self._record(s, None, {})  # refused (StoreError) only if already decided
        await self._say(s, "orchestrator", "strategist", "decision_started",
                        {"incident_id": s["incident_id"], "verdict_id": s["verdict_id"],
                         "mode": s["mode"]})
        return {}

    async def strategist(self, s: SignoffState) -> dict[str, Any]:
        incident = Incident.model_validate(s["incident"])
        verdict = TriageVerdict.model_validate(s["verdict"])
        request = self.d.skills.request("strategist", incident, verdict=verdict)
        memory = self.d.config.memory  # [memory]: the same facts the analyst saw
        request = with_memory(request, render(await recall(self.d.store, incident, memory),
                                              incident.ts_ns, memory.max_chars))
        response = await self.d.router.call(request)
        sp = response.value
        if not isinstance(sp, StrategistProposal):
            return rejected(f"strategist: answer is a {type(sp).__name__}")
        dump = {**sp.model_dump(mode="json"), "route": response.route, "model": response.model,
                "cost_usd": response.cost_usd}
        await self._say(s, "strategist", "risk_gate", "proposal", dump)
        if sp.symbol != incident.symbol:
            return rejected(f"strategist: proposed {sp.symbol} for an incident on "
                            f"{incident.symbol}")
        if sp.action is Action.HOLD:
            return {"strategist": dump, "outcome": Outcome.HOLD.value,
                    "reason": sp.rationale[:500]}
        return {"strategist": dump}

    async def risk_gate(self, s: SignoffState) -> dict[str, Any]:
        d = self.d
        halt = await d.read_halt()
        # Through broker_call: an exchange's reads are network I/O, run off the event loop.
        portfolio = await d.broker_call(portfolio_state, d.broker, self.now(), d.equity)
        d.pnl.observe(portfolio.pnl_today)
        gates = gate_open(d.rejections, d.pnl, lambda: halt)  # None reads as halted
        sized = (recheck(Proposal.from_dict(s["proposal"]), portfolio, d.config.limits)
                 if "proposal" in s else self._size(s, portfolio))
        p, qty, decision, sizing = sized.proposal, sized.quantity, sized.decision, sized.reason
        checks = decision.checks if decision is not None else ()
        risk = {"approved": bool(gates.open and qty > 0), "quantity": qty,
                "requested_quantity": decision.requested_quantity if decision else 0.0,
                "checks": [dataclasses.asdict(c) for c in checks],
                "gates": [dataclasses.asdict(g) for g in gates.checks], "sizing": sizing}
        if p is None:
            return await self._veto_unsized(s, risk)
        state = {**s, "risk": risk}
        await self._record(state, p, self._payload(state, proposal=p.to_dict()))
        h = proposal_hash(p)
        update = {"risk": risk, "proposal": p.to_dict(), "proposal_hash": h, "shrunk": False}
        if "original_qty" not in s:
            update["original_qty"] = p.quantity
        if risk["approved"]:
            await self._sign(s, RISK_GATE, h, SignVerdict.APPROVE,
                             f"{p.summary()}; {sizing}")
            return update
        reasons = list(gates.reasons) + (list(decision.reasons) if decision else [])
        for name in [c.name for c in checks if c.vetoed] + [g.name for g in gates.checks
                                                           if not g.passed]:
            d.metrics.risk_reject(name)
        why = "; ".join(reasons) or sizing
        await self._sign(s, RISK_GATE, h, SignVerdict.VETO, why)
        return {**update, **rejected(f"risk_gate: {why}")}

    def _size(self, s: SignoffState, portfolio) -> Sizing:
        """The first pass: tripwire.decisions.sizing on the strategist's proposal."""
        d, so = self.d, self.d.config.signoff
        sp = StrategistProposal.model_validate(
            {k: v for k, v in s["strategist"].items() if k not in ("route", "model", "cost_usd")})
        latest = d.prices.get(sp.symbol)
        ids = ProposalIds(s["decision_id"], s["incident_id"], s["verdict_id"],
                          s["verdict_ts_ns"], self.now())
        return size_proposal(sp, ids, latest_price=latest[0] if latest else None,
                             incident_price=s["incident"].get("price"), portfolio=portfolio,
                             limits=d.config.limits, payoff_ratio=so.payoff_ratio,
                             kelly_fraction=so.kelly_fraction)

    async def _veto_unsized(self, s: SignoffState, risk: dict[str, Any]) -> dict[str, Any]:
        """Nothing to sign: the gate refused before there were order terms."""
        why = "; ".join([f"{g['name']}: {g['reason']}" for g in risk["gates"] if not g["passed"]]
                        + [f"{c['name']}: {c['reason']}" for c in risk["checks"]
                           if not c["passed"]]) or risk["sizing"]
        for c in risk["checks"]:
            if not c["allowed_quantity"] > 0:
                self.d.metrics.risk_reject(c["name"])
        for g in risk["gates"]:
            if not g["passed"]:
                self.d.metrics.risk_reject(g["name"])
        await self._say(s, RISK_GATE, "finish", "veto", {"reason": why})
        return {"risk": risk, **rejected(f"risk_gate: {why}")}

    async def fact_checker(self, s: SignoffState) -> dict[str, Any]:
        p, h = Proposal.from_dict(s["proposal"]), s["proposal_hash"]
        fc = fact_check(p, await self._facts(s, p), self.d.config.fact_policy)
        facts = [dataclasses.asdict(f) for f in fc.facts]
        if fc.passed:
            await self._sign(s, FACT_CHECKER, h, SignVerdict.APPROVE, "all facts hold: " +
                             ", ".join(f.name for f in fc.facts))
            return {"facts": facts}
        why = "; ".join(fc.reasons)
        await self._sign(s, FACT_CHECKER, h, SignVerdict.VETO, why)
        return {"facts": facts, **rejected(f"fact_checker: {why}")}

    async def _facts(self, s: SignoffState, p: Proposal, halt: Any = ...) -> Facts:
        """The facts now (``halt``: the flag if the caller has just read it), with the
        verdict's class and the incident's headlines for the news-provenance fact."""
        latest = self.d.prices.get(p.symbol)
        verdict, incident = s.get("verdict") or {}, s.get("incident") or {}
        return Facts(
            now_ns=self.now(), latest_price=latest[0] if latest else None,
            latest_price_ns=latest[1] if latest else None,
            allowed_symbols=self.d.config.limits.allowed_symbols,
            halt=await self.d.read_halt() if halt is ... else halt,
            position_qty=await self.d.position_qty(p.symbol),
            classification=verdict.get("classification"),
            news=tuple(incident.get("news") or ()))

    async def double_checker(self, s: SignoffState) -> dict[str, Any]:
        p, h = Proposal.from_dict(s["proposal"]), s["proposal_hash"]
        frac = size_fraction(p, self.d.config.limits)
        cap = s.get("double_cap")
        if cap is not None:  # a revision after this checker's own shrink
            if within_cap(frac, cap):
                await self._sign(s, DOUBLE_CHECKER, h, SignVerdict.APPROVE,
                                 f"size {frac:.4g} within the cap {cap:g} it set")
                return {}
            return await self._double_veto(s, h, f"size {frac:.4g} still above its cap {cap:g}")
        check, meta = await self._ask_blind(s, p, frac)
        dump = {**check.model_dump(mode="json"), **meta, "blind": True, "size_seen": frac}
        if check.verdict is not CheckVerdict.AGREE:
            why = f"{check.verdict.value}: " + ("; ".join(check.concerns) or "no reason given")
            return {"double_check": dump, **await self._double_veto(s, h, why)}
        if check.max_size is not None and check.max_size < frac:
            return {"double_check": dump, **await self._shrink(s, p, h, frac, check.max_size)}
        await self._sign(s, DOUBLE_CHECKER, h, SignVerdict.APPROVE,
                         f"AGREE (confidence {check.confidence:g})")
        return {"double_check": dump}

    async def _ask_blind(self, s: SignoffState, p: Proposal, frac: float):
        """The double-checker's answer on the facts and the numbers only."""
        incident = Incident.model_validate(s["incident"])
        blind = StrategistProposal(
            action=Action(p.side), symbol=p.symbol, size=min(1.0, max(frac, 1e-6)),
            limit_price=p.limit_price, stop_loss=p.stop_loss, take_profit=p.take_profit,
            rationale=WITHHELD, confidence=0.5, source="rules")  # neutral: not the strategist's
        response = await self.d.router.call(
            self.d.skills.request("double-checker", incident, proposal=blind))
        meta = {"route": response.route, "model": response.model,
                "cost_usd": response.cost_usd}
        return response.value, meta

    async def _double_veto(self, s: SignoffState, h: str, why: str) -> dict[str, Any]:
        await self._sign(s, DOUBLE_CHECKER, h, SignVerdict.VETO, why)
        return rejected(f"double_checker: {why}")

    async def _shrink(self, s: SignoffState, p: Proposal, h: str, frac: float,
                      cap: float) -> dict[str, Any]:
        shrunk = shrink_to_cap(p, frac, cap, self.d.config.limits)
        smaller = shrunk.proposal
        if smaller is None:
            return await self._double_veto(s, h, shrunk.reason)
        await self._sign(s, DOUBLE_CHECKER, h, SignVerdict.SHRINK, shrunk.reason)
        return {"proposal": smaller.to_dict(), "proposal_hash": proposal_hash(smaller),
                "double_cap": cap, "shrunk": True}

    async def approval(self, s: SignoffState) -> dict[str, Any]:
        if s["mode"] != SafetyMode.TWO_PHASE.value:
            return {}
        p, h, now = Proposal.from_dict(s["proposal"]), s["proposal_hash"], self.now()
        ttl = self.d.config.ns("approval_ttl_s")
        a = await self.d.store.request_approval(
            Approval(s["decision_id"], "pending", h, p.summary(), now, now + ttl))
        if a.proposal_hash != h:
            return rejected("approval: the pending approval is for another revision")
        if a.status == "pending":
            await self._say(s, "approval", "operator", "approval_requested",
                            {"summary": a.summary, "expires_ns": a.expires_ns, "hash": h})
            answer = interrupt({"decision_id": s["decision_id"], "summary": a.summary,
                                "proposal_hash": h, "expires_ns": a.expires_ns})
            a = await self._decide(s, answer)
        return self._approval_outcome(a)

    async def _decide(self, s: SignoffState, answer: Any) -> Approval:
        if not (isinstance(answer, dict) and isinstance(answer.get("approve"), bool)
                and isinstance(answer.get("by"), str) and answer["by"].strip()):
            raise ValueError(f"a resume answer needs approve (bool) and by (name), got "
                             f"{answer!r}")
        a = await self.d.store.decide_approval(
            s["decision_id"], approve=answer["approve"], by=answer["by"],
            note=str(answer.get("note", ""))[:500], now_ns=self.now())
        await self._say(s, "operator", "approval", f"approval_{a.status}",
                        {"by": a.decided_by, "note": a.note})
        return a

    @staticmethod
    def _approval_outcome(a: Approval) -> dict[str, Any]:
        record = dataclasses.asdict(a)
        if a.status == "approved":
            return {"approval": record}
        if a.status == "rejected":
            return {"approval": record, "outcome": Outcome.DECLINED.value,
                    "reason": f"declined by {a.decided_by}: {a.note or 'no note'}"}
        if a.status == "expired":
            return {"approval": record, "outcome": Outcome.EXPIRED.value,
                    "reason": f"approval expired before {a.decided_by or 'anyone'} answered"}
        return {"approval": record, **rejected(f"approval: status {a.status!r}")}

    async def execute(self, s: SignoffState) -> dict[str, Any]:
        d = self.d
        row = await d.store.proposal(s["decision_id"])
        if row is None or "proposal" not in row["payload"]:
            return rejected("execute: no stored proposal")
        p = Proposal.from_dict(row["payload"]["proposal"])
        h = proposal_hash(p)
        if h != row["proposal_hash"] or h != s["proposal_hash"]:
            return rejected("execute: the proposal changed after it was signed (hash mismatch)")
        check = verify_signatures(h, await d.store.signatures(s["decision_id"]))
        if not check.valid:
            return rejected(f"execute: {check.reason}")
        prior = await self._lookup(client_order_id(s["decision_id"], 0))
        if prior is not None:  # placed before a crash: record it, never re-judge it
            return await self._placed(s, p, prior)
        refusal = await self._refusal(s, p, h)
        if refusal:
            return rejected(f"execute: {refusal}")
        if s["mode"] == SafetyMode.DRY_RUN.value:
            return {"outcome": Outcome.DRY_RUN.value,
                    "reason": f"{check.reason}; DRY_RUN sends no orders ({p.summary()})"}
        return await self._place(s, p)

    async def _refusal(self, s: SignoffState, p: Proposal, h: str) -> str:
        """Why the order must not leave now ("" when it may): tripwire.decisions.pretrade's
        rules in order, each read only if the one before passed."""
        halt = await self.d.read_halt()
        check = check_halt(halt)
        if check.passed and needs_approval(s["mode"]):
            check = check_approval(await self.d.store.approval(s["decision_id"]), h)
        if check.passed:
            check = check_facts(fact_check(p, await self._facts(s, p, halt),
                                           self.d.config.fact_policy))
        return check.reason

    async def _place(self, s: SignoffState, p: Proposal) -> dict[str, Any]:
        d = self.d
        request = OrderRequest(
            client_order_id(s["decision_id"], 0), p.symbol, Side[p.side], p.quantity,
            OrderType(p.order_type), p.limit_price, p.stop_loss, p.take_profit)
        await self._say(s, "execute", "broker", "order", dataclasses.asdict(request))
        with telemetry.span("order.place", **{"tripwire.client_order_id":
                                               request.client_order_id,
                                               "tripwire.backend": d.backend,
                                               "tripwire.symbol": p.symbol}):
            try:
                order = await d.broker_call(d.broker.place, request)
            except Exception:
                # The venue may have taken the order before the error (a timeout on the
                # reply): if it knows this client order id, the order exists and is placed.
                order = await self._lookup(request.client_order_id)
                if order is None:
                    raise
        return await self._placed(s, p, order)

    async def _lookup(self, order_id: str) -> Order | None:
        """The venue's order under this client id, if it has one (None: unknown to it, or
        unreachable). Asked before placing, it finds an order an earlier run sent before a
        crash; that order may have filled since, which would fail the position fact-check
        although it is this decision's own, so it is recorded, never judged again."""
        try:
            return await self.d.broker_call(self.d.broker.get_order, order_id)
        except Exception:  # unknown to the venue, or the venue unreachable: not placed here
            return None

    async def _placed(self, s: SignoffState, p: Proposal, order: Order) -> dict[str, Any]:
        d = self.d
        await d.store.record_order(s["decision_id"], d.backend, order)
        if order.filled_qty > 0:  # else the snapshot just recorded is all there is
            await sync_order(d, order.id)
        summary = {"client_order_id": order.id, "status": order.status.value,
                   "qty": order.request.qty, "side": p.side, "symbol": p.symbol}
        return {"order": summary, "outcome": Outcome.EXECUTED.value,
                "reason": f"order {order.id} placed ({order.status.value}): {p.summary()}"}

    async def finish(self, s: SignoffState) -> dict[str, Any]:
        d = self.d
        outcome = s.get("outcome") or Outcome.REJECTED.value
        reason = s.get("reason") or "ended without an outcome"
        first = await self._final_record(s, outcome, reason)
        if first:
            if outcome == Outcome.REJECTED.value:
                d.rejections.record_rejection(reason)
            d.metrics.decision(outcome)
            d.metrics.decision_latency(GRAPH, (self.now() - s["started_ns"]) / 1e6)
            await self._say(s, "finish", "journal", "outcome",
                            {"outcome": outcome, "reason": reason})
        # A decision that ended while its approval was pending (a malformed answer, a
        # failure in the approval node) must not leave that approval open to be answered.
        a = (await d.store.approval(s["decision_id"])
             if s["mode"] == SafetyMode.TWO_PHASE.value else None)
        if a is not None and a.status == "pending":
            await d.store.decide_approval(s["decision_id"], approve=False, by="finish",
                                          note=f"decision ended {outcome}: {reason}"[:500],
                                          now_ns=self.now())
        update: dict[str, Any] = {"outcome": outcome, "reason": reason}
        path = await write_journal(d, s["decision_id"])
        if path:
            update["journal"] = path
        return update


    async def _final_record(self, s: SignoffState, outcome: str, reason: str) -> bool:
        """The outcome, with everything the nodes found merged into the decision's payload,
        in one write; True when this call set it. The order's terms and hash stay as the
        risk gate stored them: if they were altered after signing (which execute refuses),
        the altered row stays as evidence."""
        extra = jsonable(self._payload(s))
        try:
            return await self.d.store.set_outcome(s["decision_id"], outcome, reason,
                                                  self.now(), extra)
        except StoreError:  # no row: the decision failed before its first write
            action = (s.get("strategist") or {}).get("action", "HOLD")
            await self._record(s, None, {**extra, "error": reason}, action)
            return await self.d.store.set_outcome(s["decision_id"], outcome, reason,
                                                  self.now())


async def sync_order(d: DecisionDeps, order_id: str) -> None:
    """Copy an order's current state, its fills and the position into the store."""
    order = await d.broker_call(d.broker.get_order, order_id)
    await d.store.update_order(d.backend, order)
    for fill in await d.broker_call(d.broker.fills, order_id):
        await d.store.record_fill(fill)
    pos = (await d.broker_call(d.broker.positions)).get(order.request.symbol)
    if pos is not None:
        await d.store.save_position(d.backend, pos, d.clock.now_ns())


async def write_journal(d: DecisionDeps, decision_id: str) -> str | None:
    """(Re)write the decision's journal file; its path, or None without a journal root."""
    if d.journal_root is None:
        return None
    from tripwire.store.journal import write_journal as write

    chain = await d.store.chain(decision_id)
    return None if chain is None else str(write(chain, d.journal_root))


def build_signoff_graph(deps: DecisionDeps) -> StateGraph:
    """The uncompiled graph (compile it with a checkpointer)."""
    nodes = SignoffNodes(deps)
    timeout = deps.config.signoff.node_timeout_s
    g = StateGraph(SignoffState)
    order = ["start", "strategist", "risk_gate", "fact_checker", "double_checker", "approval",
             "execute"]
    for name in [*order, "finish"]:
        fn = _with_hook(deps, name, getattr(nodes, name))
        g.add_node(name, guarded(GRAPH, name, fn, timeout_s=timeout, metrics=deps.metrics,
                                 always=name == "finish"))
    g.add_edge(START, "start")
    for here, there in itertools.pairwise(order):
        if here != "double_checker":
            g.add_conditional_edges(here, next_or_finish(there), [there, "finish"])
    g.add_conditional_edges("double_checker", _after_double_check,
                            ["risk_gate", "approval", "finish"])
    g.add_edge("execute", "finish")
    g.add_edge("finish", END)
    return g


def _after_double_check(state: SignoffState) -> str:
    if state.get("outcome"):
        return "finish"
    return "risk_gate" if state.get("shrunk") else "approval"


def _with_hook(deps: DecisionDeps, name: str, fn):
    if deps.before_node is None:
        return fn

    async def hooked(state: dict[str, Any]) -> dict[str, Any]:
        result = deps.before_node(name, state)
        if hasattr(result, "__await__"):
            await result
        return await fn(state)

    return hooked


def initial_state(decision_id: str, mode: SafetyMode, incident: Incident, verdict: dict,
                  verdict_id: str, verdict_ts_ns: int, now_ns: int) -> SignoffState:
    return SignoffState(
        decision_id=decision_id, mode=mode.value, started_ns=now_ns,
        incident=incident.model_dump(mode="json"), incident_id=incident.id,
        verdict=verdict, verdict_id=verdict_id, verdict_ts_ns=verdict_ts_ns)

