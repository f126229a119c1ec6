"""The sign-off graph end to end: three signatures, fail-closed nodes, shrinks, approvals,
and a TWO_PHASE decision that survives a restart on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphs.runner import postgres_checkpointer
from tests.graphs.harness import PRICE, SYMBOL, make_runner, news_incident
from tests.graphs.util import (
    HOLD_ANSWER,
    BrokenStore,
    DroppingStore,
    SimulatedCrash,
    agree,
    assert_orders_signed,
)
from tripwire.decisions.outcome import AWAITING_APPROVAL, Outcome
from tripwire.decisions.proposal import Proposal, proposal_hash
from tripwire.decisions.signatures import DOUBLE_CHECKER, FACT_CHECKER, RISK_GATE, SIGNERS
from tripwire.metrics import snapshot
from tripwire.model import NS_PER_SECOND, TickBatch, client_order_id
from tripwire.risk.modes import SafetyMode
from tripwire.store.decisions import MemoryDecisionStore
from tripwire.store.pg_decisions import PgDecisionStore

pytestmark = pytest.mark.timeout(300)

NODES = ["start", "strategist", "risk_gate", "fact_checker", "double_checker", "approval",
         "execute"]
FAST = {"node_timeout_s": 0.2}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def stored(d: Any, decision_id: str) -> dict[str, Any]:
    return run(d.store.proposal(decision_id))


def assert_no_order(d: Any) -> None:
    assert d.broker.orders() == []


# -- the happy paths -------------------------------------------------------------------------


def test_direct_end_to_end() -> None:
    r, d = make_runner()
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.EXECUTED, res.reason
    did = res.decision_id
    orders = d.broker.orders()
    assert [o.id for o in orders] == [client_order_id(did, 0)]
    assert res.order_id == client_order_id(did, 0)
    row = stored(d, did)
    assert row["outcome"] == "EXECUTED" and row["reason"] == res.reason
    h = proposal_hash(Proposal.from_dict(row["payload"]["proposal"]))
    assert h == row["proposal_hash"]
    sigs = run(d.store.signatures(did))
    assert [(s.signer, s.verdict, s.proposal_hash) for s in sigs] == [
        (RISK_GATE, "APPROVE", h), (FACT_CHECKER, "APPROVE", h), (DOUBLE_CHECKER, "APPROVE", h)]
    order_rows = run(d.store.orders(did))
    assert [o["client_order_id"] for o in order_rows] == [orders[0].id]
    assert order_rows[0]["qty"] == orders[0].request.qty
    run(assert_orders_signed(d.store, orders))
    kinds = [m["kind"] for m in run(d.store.messages(did))]
    assert kinds[0] == "decision_started" and kinds[-1] == "outcome"
    assert kinds.count("signature") == 3 and "proposal" in kinds and "order" in kinds
    m = snapshot(d.reader)
    assert m["tripwire.decisions"] == {"outcome=EXECUTED": 1}
    lat = m["tripwire.node_latency"]
    for node in [*NODES, "finish"]:
        assert lat[f"graph=signoff,node={node}"]["count"] == 1
    assert m["tripwire.decision_latency"]["graph=signoff"]["count"] == 1


def test_dry_run_signs_but_sends_nothing() -> None:
    r, d = make_runner(SafetyMode.DRY_RUN)
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.DRY_RUN, res.reason
    assert_no_order(d)
    sigs = run(d.store.signatures(res.decision_id))
    assert sorted(s.signer for s in sigs if s.verdict == "APPROVE") == sorted(SIGNERS)
    assert run(d.store.orders(res.decision_id)) == []
    assert stored(d, res.decision_id)["outcome"] == "DRY_RUN"


def test_hold_ends_without_signatures() -> None:
    r, d = make_runner(overrides={"strategist": HOLD_ANSWER})
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.HOLD
    assert_no_order(d)
    assert run(d.store.signatures(res.decision_id)) == []
    row = stored(d, res.decision_id)
    assert row["outcome"] == "HOLD" and row["action"] == "HOLD"


# -- fault injection -------------------------------------------------------------------------


def _raise_at(node: str):
    def hook(name: str, state: dict[str, Any]) -> None:
        if name == node:
            raise RuntimeError(f"injected fault in {name}")
    return hook


def _sleep_at(node: str):
    async def sleep() -> None:
        await asyncio.sleep(2.0)

    def hook(name: str, state: dict[str, Any]) -> Any:
        return sleep() if name == node else None
    return hook


@pytest.mark.parametrize("mode", [SafetyMode.DIRECT, SafetyMode.TWO_PHASE])
@pytest.mark.parametrize("node", NODES)
def test_exception_in_any_node_rejects(node: str, mode: SafetyMode) -> None:
    r, d = make_runner(mode, before_node=_raise_at(node))
    res = run(r.handle(news_incident("inc-1")))
    if res.outcome == AWAITING_APPROVAL:  # the fault is after the approval
        res = run(r.approve(res.decision_id, by="ops"))
    assert res.outcome == Outcome.REJECTED
    assert res.reason.startswith(f"{node}: RuntimeError: injected fault"), res.reason
    assert_no_order(d)
    assert stored(d, res.decision_id)["outcome"] == "REJECTED"


@pytest.mark.parametrize("node", NODES)
def test_timeout_in_any_node_rejects(node: str) -> None:
    r, d = make_runner(before_node=_sleep_at(node), signoff=FAST)
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.REJECTED
    assert res.reason == f"{node}: timed out after 0.2s"
    assert_no_order(d)
    assert stored(d, res.decision_id)["outcome"] == "REJECTED"


@pytest.mark.parametrize("role,answer", [
    ("strategist", "{not json"),
    ("strategist", {"action": "BUY", "symbol": SYMBOL, "size": 5.0}),
    ("strategist", {**HOLD_ANSWER, "action": "SELL", "size": 0.1}),  # a SELL without a stop
    ("strategist", {**HOLD_ANSWER, "action": "SELL", "symbol": "BTCUSDT", "size": 0.1,
                    "stop_loss": 3500.0}),  # valid, but for another symbol
    ("strategist", RuntimeError("provider down")),
    ("double-checker", "{not json"),
    ("double-checker", {"verdict": "MAYBE", "concerns": [], "confidence": 0.5,
                        "max_size": None, "source": "llm"}),
    ("double-checker", {**agree(), "confidence": 7.0}),
    ("double-checker", {"verdict": "DISAGREE", "concerns": ["the news is stale"],
                        "confidence": 0.9, "max_size": None, "source": "llm"}),
    ("double-checker", {"verdict": "ABSTAIN", "concerns": [], "confidence": 0.5,
                        "max_size": None, "source": "llm"}),
])
def test_malformed_or_negative_llm_answers_reject(role: str, answer: Any) -> None:
    r, d = make_runner(overrides={role: answer})
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.REJECTED, res.reason
    node = role.replace("-", "_")
    assert res.reason.startswith(f"{node}:"), res.reason
    assert_no_order(d)
    sigs = run(d.store.signatures(res.decision_id))
    assert not any(s.signer == DOUBLE_CHECKER and s.verdict == "APPROVE" for s in sigs)


@pytest.mark.parametrize("signer", SIGNERS)
def test_missing_signature_refuses_execution(signer: str) -> None:
    r, d = make_runner(store=DroppingStore(MemoryDecisionStore(), signer))
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.REJECTED
    assert res.reason == f"execute: no APPROVE over this proposal hash from {signer}"
    assert_no_order(d)


@pytest.mark.parametrize("field,value", [("quantity", 2.0), ("side", "BUY"),
                                         ("stop_loss", 9999.0)])
def test_tampered_proposal_after_signing_is_refused(field: str, value: Any) -> None:
    holder: dict[str, Any] = {}

    def tamper(name: str, state: dict[str, Any]) -> None:
        if name == "execute":
            row = holder["store"]._proposals[state["decision_id"]]
            row["payload"]["proposal"][field] = value  # the hash field stays as it was

    r, d = make_runner(before_node=tamper)
    holder["store"] = d.store
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.REJECTED
    assert "hash mismatch" in res.reason and res.reason.startswith("execute:")
    assert_no_order(d)


def test_tampered_proposal_rehashed_in_store_is_refused() -> None:
    """Even a consistent rewrite of the row (payload and hash) has no signatures."""
    holder: dict[str, Any] = {}

    async def rewrite(name: str, state: dict[str, Any]) -> None:
        if name != "execute":
            return
        store = holder["store"]
        row = await store.proposal(state["decision_id"])
        p = Proposal.from_dict(row["payload"]["proposal"])
        big = Proposal.from_dict({**p.to_dict(), "quantity": p.quantity * 10})
        await store.record_proposal(
            row["id"], incident_id=row["incident_id"], verdict_id=row["verdict_id"],
            symbol=row["symbol"], ts_ns=row["ts_ns"], action=row["action"],
            proposal_hash=proposal_hash(big), revision=row["revision"], mode=row["mode"],
            payload={**row["payload"], "proposal": big.to_dict()})

    r, d = make_runner(before_node=rewrite)
    holder["store"] = d.store
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.REJECTED
    assert res.reason.startswith("execute:")
    assert_no_order(d)


@pytest.mark.parametrize("node", ["risk_gate", "fact_checker", "double_checker", "approval",
                                  "execute"])
def test_halt_set_mid_flight_stops_the_order(node: str) -> None:
    holder: dict[str, Any] = {}

    async def halt(name: str, state: dict[str, Any]) -> None:
        if name == node:
            await holder["store"].set_halt("watchdog: drawdown", "watchdog", 0)

    r, d = make_runner(before_node=halt)
    holder["store"] = d.store
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.REJECTED
    assert "halt" in res.reason, res.reason
    assert_no_order(d)


@pytest.mark.parametrize("node", ["strategist", "risk_gate", "fact_checker", "double_checker",
                                  "approval", "execute"])
def test_database_lost_mid_flight_places_no_order(node: str) -> None:
    """From ``node`` on every store call raises ConnectionError. The runner *returns*
    REJECTED (it does not raise), with the failing node's reason; the finish node cannot
    record the outcome either, so the stored decision stays undecided until a restart's
    recover(), with the database back, closes it REJECTED."""
    holder: dict[str, Any] = {}

    def cut(name: str, state: dict[str, Any]) -> None:
        if name == node:
            holder["store"].broken = True

    r, d = make_runner(store=BrokenStore(MemoryDecisionStore()), before_node=cut)
    holder["store"] = d.store
    res = run(r.handle(news_incident("inc-1")))
    assert_no_order(d)
    assert res.outcome == Outcome.REJECTED
    first = "execute" if node == "approval" else node  # DIRECT: approval reads no store
    assert res.reason.startswith(f"{first}: ConnectionError"), res.reason
    assert "finish: ConnectionError" in res.reason
    d.store.broken = False
    row = stored(d, res.decision_id)
    assert row["outcome"] is None  # the write was lost with the connection
    assert run(d.store.orders(res.decision_id)) == []
    r2, _ = make_runner(store=d.store, broker=d.broker, checkpointer=r.checkpointer,
                        clock=d.clock)
    [again] = run(r2.recover())
    assert again.outcome == Outcome.REJECTED
    assert stored(d, res.decision_id)["outcome"] == "REJECTED"
    assert_no_order(d)
    assert run(r2.recover()) == []


def test_finish_failure_after_execution_keeps_executed() -> None:
    """Regression: an exception in the final node after the order was sent turned the
    result into REJECTED (an order with a 'no order' outcome), and recover() could never
    write the outcome (the thread had reached its end), returning it on every restart."""
    fired: set[str] = set()

    def boom(name: str, state: dict[str, Any]) -> None:
        if name == "finish" and name not in fired:
            fired.add(name)
            raise RuntimeError("journal disk full")

    r, d = make_runner(before_node=boom)
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.EXECUTED, res.reason
    assert "finish: RuntimeError: journal disk full" in res.reason
    [order] = d.broker.orders()
    assert res.order_id == order.id
    assert stored(d, res.decision_id)["outcome"] is None  # the finish did not get to write it
    [again] = run(r.recover())
    assert again.outcome == Outcome.EXECUTED
    assert stored(d, res.decision_id)["outcome"] == "EXECUTED"
    assert [o.id for o in d.broker.orders()] == [order.id]
    assert snapshot(d.reader)["tripwire.decisions"] == {"outcome=EXECUTED": 1}
    assert run(r.recover()) == []


# -- the double-checker shrinks --------------------------------------------------------------


def test_double_checker_shrink_makes_a_smaller_resigned_revision() -> None:
    r, d = make_runner(overrides={"double-checker": agree(max_size=0.05)})
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.EXECUTED, res.reason
    row = stored(d, res.decision_id)
    p = Proposal.from_dict(row["payload"]["proposal"])
    assert p.revision == 1
    sigs = run(d.store.signatures(res.decision_id))
    by = {s: [(x.verdict, x.proposal_hash) for x in sigs if x.signer == s] for s in SIGNERS}
    h0, h1 = by[RISK_GATE][0][1], proposal_hash(p)
    assert h0 != h1
    assert by[RISK_GATE] == [("APPROVE", h0), ("APPROVE", h1)]
    assert by[FACT_CHECKER] == [("APPROVE", h0), ("APPROVE", h1)]
    assert by[DOUBLE_CHECKER] == [("SHRINK", h0), ("APPROVE", h1)]
    [order] = d.broker.orders()
    assert order.request.qty == p.quantity
    state = run(r.signoff_graph.aget_state(r._config(res.decision_id))).values
    assert p.quantity < state["original_qty"]
    assert p.notional / d.config.limits.max_position_per_symbol <= 0.05 + 1e-12
    run(assert_orders_signed(d.store, [order]))


def test_double_checker_cap_leaving_nothing_vetoes() -> None:
    r, d = make_runner(overrides={"double-checker": agree(max_size=0.0)})
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.REJECTED
    assert "leaves nothing to trade" in res.reason
    assert_no_order(d)


# -- the risk gate ---------------------------------------------------------------------------


def test_symbol_not_allowed_is_vetoed() -> None:
    r, d = make_runner(risk={"allowed_symbols": ["BTCUSDT"]})
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.REJECTED
    assert res.reason.startswith("risk_gate:") and "allowed" in res.reason, res.reason
    assert_no_order(d)
    assert "limit=allowed_symbol" in snapshot(d.reader)["tripwire.risk_rejects"]


def test_small_notional_limit_shrinks_the_order() -> None:
    r, d = make_runner(risk={"max_order_notional": 500.0})
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.EXECUTED, res.reason
    [order] = d.broker.orders()
    assert 0 < order.request.qty * order.request.limit_price <= 500.0 + 1e-9
    run(assert_orders_signed(d.store, [order]))


def test_tiny_notional_limit_rejects() -> None:
    r, d = make_runner(risk={"max_order_notional": 1e-3})
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.REJECTED
    assert res.reason.startswith("risk_gate:")
    assert_no_order(d)


def test_halted_before_start_is_rejected_by_the_gate() -> None:
    r, d = make_runner()
    run(d.store.set_halt("operator halt", "ops", 0))
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == Outcome.REJECTED
    assert res.reason.startswith("risk_gate:") and "halt" in res.reason, res.reason
    assert_no_order(d)


def test_rejection_breaker_closes_after_threshold() -> None:
    failures = {"left": 2}

    def flaky(name: str, state: dict[str, Any]) -> None:
        if name == "double_checker" and failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("flaky checker")

    r, d = make_runner(before_node=flaky, signoff={"rejection_threshold": 2})
    first = [run(r.handle(news_incident(f"inc-{i}"))) for i in range(2)]
    assert [x.outcome for x in first] == ["REJECTED", "REJECTED"]
    d.clock.advance(NS_PER_SECOND)
    d.prices.set(SYMBOL, PRICE, d.clock.now_ns())
    res = run(r.handle(news_incident("inc-3")))
    assert res.outcome == Outcome.REJECTED
    assert res.reason.startswith("risk_gate:") and "rejection" in res.reason, res.reason
    assert_no_order(d)


# -- TWO_PHASE -------------------------------------------------------------------------------


def _paused(**kw: Any):
    r, d = make_runner(SafetyMode.TWO_PHASE, **kw)
    res = run(r.handle(news_incident("inc-1")))
    assert res.outcome == AWAITING_APPROVAL, res.reason
    assert_no_order(d)
    [pending] = run(d.store.pending_approvals())
    assert pending.decision_id == res.decision_id
    assert pending.proposal_hash == stored(d, res.decision_id)["proposal_hash"]
    assert stored(d, res.decision_id)["outcome"] is None
    return r, d, res.decision_id


def test_two_phase_approve_executes_once() -> None:
    r, d, did = _paused()
    res = run(r.approve(did, by="ops", note="checked the news"))
    assert res.outcome == Outcome.EXECUTED, res.reason
    [order] = d.broker.orders()
    assert order.id == client_order_id(did, 0)
    a = run(d.store.approval(did))
    assert (a.status, a.decided_by, a.note) == ("approved", "ops", "checked the news")
    assert run(d.store.pending_approvals()) == []
    again = run(r.approve(did, by="ops"))
    assert again.outcome == Outcome.EXECUTED
    assert len(d.broker.orders()) == 1
    run(assert_orders_signed(d.store, d.broker.orders()))


def test_two_phase_reject_declines() -> None:
    r, d, did = _paused()
    res = run(r.reject(did, by="ops", note="not convinced"))
    assert res.outcome == Outcome.DECLINED
    assert "not convinced" in res.reason
    assert_no_order(d)
    assert stored(d, did)["outcome"] == "DECLINED"
    run(r.approve(did, by="ops"))  # too late: the decision is over
    assert_no_order(d)
    assert stored(d, did)["outcome"] == "DECLINED"


def test_two_phase_expiry() -> None:
    r, d, did = _paused()
    assert run(r.expire_due()) == []  # not yet due
    d.clock.advance(int((d.config.signoff.approval_ttl_s + 1) * NS_PER_SECOND))
    [res] = run(r.expire_due())
    assert res.outcome == Outcome.EXPIRED
    assert_no_order(d)
    assert run(d.store.approval(did)).status == "expired"
    assert run(d.store.pending_approvals()) == []
    assert stored(d, did)["outcome"] == "EXPIRED"


def test_two_phase_late_approval_expires() -> None:
    r, d, did = _paused()
    d.clock.advance(int((d.config.signoff.approval_ttl_s + 1) * NS_PER_SECOND))
    res = run(r.approve(did, by="ops"))
    assert res.outcome == Outcome.EXPIRED
    assert_no_order(d)


@pytest.mark.parametrize("answer", [{"approve": "yes"}, {"approve": True}, "yes",
                                    {"approve": True, "by": "  "}])
def test_two_phase_malformed_resume_rejects(answer: Any) -> None:
    r, d, did = _paused()
    res = run(r.resume(did, answer))
    assert res.outcome == Outcome.REJECTED
    assert res.reason.startswith("approval: ValueError"), res.reason
    assert_no_order(d)
    assert stored(d, did)["outcome"] == "REJECTED"
    # The approval is closed with the decision, not left pending for someone to approve.
    assert run(d.store.pending_approvals()) == []
    assert run(d.store.approval(did)).status == "rejected"
    assert run(r.expire_due()) == []
    run(r.approve(did, by="ops"))
    assert_no_order(d)


def test_two_phase_facts_rechecked_after_approval() -> None:
    """A price move while the approval waited: execute's fact re-check refuses."""
    r, d, did = _paused()
    d.prices.set(SYMBOL, PRICE * 1.05, d.clock.now_ns())
    res = run(r.approve(did, by="ops"))
    assert res.outcome == Outcome.REJECTED
    assert res.reason.startswith("execute: facts changed"), res.reason
    assert_no_order(d)


def test_crash_then_recover_does_not_double_the_order() -> None:
    fired: set[str] = set()

    def crash(name: str, state: dict[str, Any]) -> None:
        if name == "finish" and name not in fired:
            fired.add(name)
            raise SimulatedCrash(name)

    r, d = make_runner(before_node=crash)
    with pytest.raises(SimulatedCrash):
        run(r.handle(news_incident("inc-1")))
    assert len(d.broker.orders()) == 1  # placed; the outcome is not written yet
    r2, _ = make_runner(store=d.store, broker=d.broker, checkpointer=r.checkpointer,
                        clock=d.clock)
    [res] = run(r2.recover())
    assert res.outcome == Outcome.EXECUTED
    assert len(d.broker.orders()) == 1
    assert run(r2.recover()) == []


class CrashAfterPlace:
    """The process dies after the backend accepted the order, before the store knew."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fired = False

    def place(self, request: Any) -> Any:
        order = self.inner.place(request)
        if not self.fired:
            self.fired = True
            raise SimulatedCrash("after place")
        return order

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("filled", [False, True])
def test_crash_after_place_is_adopted_on_restart(filled: bool) -> None:
    """Regression: the restarted execute node re-checked the facts first, so an order that
    had filled in between (the position no longer what the proposal assumed) ended the
    decision REJECTED with a live, unrecorded order at the broker."""
    _, d0 = make_runner()
    broker = CrashAfterPlace(d0.broker)
    r, d = make_runner(broker=broker, clock=d0.clock)
    with pytest.raises(SimulatedCrash):
        run(r.handle(news_incident("inc-1")))
    [order] = broker.orders()
    if filled:  # the market traded through the limit while the process was down
        d.clock.advance(NS_PER_SECOND)
        px = order.request.limit_price + 1.0
        assert broker.on_ticks(TickBatch.from_columns([0], [d.clock.now_ns()], [px], [1.0]))
        d.prices.set(SYMBOL, order.request.limit_price, d.clock.now_ns())
    r2, _ = make_runner(store=d.store, broker=broker, checkpointer=r.checkpointer,
                        clock=d.clock)
    [res] = run(r2.recover())
    assert res.outcome == Outcome.EXECUTED, res.reason
    assert [o.id for o in broker.orders()] == [order.id] == [res.order_id]
    rows = run(d.store.orders(res.decision_id))
    assert [o["client_order_id"] for o in rows] == [order.id]
    assert rows[0]["status"] == ("filled" if filled else "pending")
    run(assert_orders_signed(d.store, broker.orders()))


# -- PostgreSQL: a TWO_PHASE decision survives a restart ---------------------------------------


def test_two_phase_survives_restart_on_postgres(migrated_db: str) -> None:
    shared: dict[str, Any] = {}

    async def before_restart() -> str:
        store = await PgDecisionStore.connect(migrated_db)
        try:
            async with postgres_checkpointer(migrated_db) as cp:
                r, d = make_runner(SafetyMode.TWO_PHASE, store=store, checkpointer=cp)
                shared.update(broker=d.broker, clock=d.clock)
                res = await r.handle(news_incident("inc-1"))
                assert res.outcome == AWAITING_APPROVAL, res.reason
                assert [a.decision_id for a in await store.pending_approvals()] == [
                    res.decision_id]
                return res.decision_id
        finally:
            await store.close()

    async def after_restart(did: str) -> None:
        store = await PgDecisionStore.connect(migrated_db)
        try:
            async with postgres_checkpointer(migrated_db) as cp:
                r, d = make_runner(SafetyMode.TWO_PHASE, store=store, checkpointer=cp,
                                   broker=shared["broker"], clock=shared["clock"])
                assert await r.recover() == []  # waiting for a person: not resumed
                assert d.broker.orders() == []
                res = await r.approve(did, by="ops", note="after the restart")
                assert res.outcome == Outcome.EXECUTED, res.reason
                assert [o.id for o in d.broker.orders()] == [client_order_id(did, 0)]
                again = await r.approve(did, by="ops")
                assert again.outcome == Outcome.EXECUTED
                await r.resume(did, {"approve": True, "by": "someone else"})
                assert len(d.broker.orders()) == 1
                assert await r.recover() == []
                assert len(d.broker.orders()) == 1
                row = await store.proposal(did)
                assert row["outcome"] == "EXECUTED"
                assert [o["client_order_id"] for o in await store.orders(did)] == [
                    client_order_id(did, 0)]
                await assert_orders_signed(store, d.broker.orders())
        finally:
            await store.close()

    did = run(before_restart())
    run(after_restart(did))  # a new event loop, new pools, new runner: a restart

    async def third_process() -> None:  # one more restart: still nothing to redo
        store = await PgDecisionStore.connect(migrated_db)
        try:
            async with postgres_checkpointer(migrated_db) as cp:
                r, d = make_runner(SafetyMode.TWO_PHASE, store=store, checkpointer=cp,
                                   broker=shared["broker"], clock=shared["clock"])
                assert await r.recover() == []
                assert len(d.broker.orders()) == 1
        finally:
            await store.close()

    run(third_process())
