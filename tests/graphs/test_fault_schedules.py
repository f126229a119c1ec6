"""Random fault schedules over the sign-off graph, with crashes and restarts.

For every node hypothesis draws no fault, an exception, a timeout or a crash (a
BaseException that escapes the graph like a killed process), optionally a halt set just
before one node, optionally a crash right after the backend accepted the order, and the
safety mode. A crash is followed by a restart: a new runner on the
same store, the same broker (the exchange survives) and the same checkpointer, which
recover()s, and in TWO_PHASE approves whatever waits. Whatever happened, the money
invariants hold.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from tests.graphs.harness import make_runner, news_incident
from tests.graphs.util import RecordingBroker, SimulatedCrash, StoreProxy, assert_orders_signed
from tripwire.decisions.outcome import AWAITING_APPROVAL, Outcome
from tripwire.model import client_order_id
from tripwire.risk.modes import SafetyMode
from tripwire.store.decisions import MemoryDecisionStore

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

NODES = ["start", "strategist", "risk_gate", "fact_checker", "double_checker", "approval",
         "execute", "finish"]
FAULTS = ["none", "exception", "timeout", "crash"]
TIMEOUT_S = 0.05
MAX_RESTARTS = 20


class CountingStore(StoreProxy):
    """Counts the outcome writes that took effect, per decision."""

    def __init__(self, inner: MemoryDecisionStore) -> None:
        super().__init__(inner)
        self.final_writes: Counter[str] = Counter()

    async def set_outcome(self, decision_id: str, outcome: str, reason: str,
                          ts_ns: int, payload: Any = None) -> bool:
        first = await self.inner.set_outcome(decision_id, outcome, reason, ts_ns, payload)
        if first:
            self.final_writes[decision_id] += 1
        return first


class CrashingBroker(RecordingBroker):
    """Optionally dies once right after the backend accepted an order (before the store
    hears of it), the worst moment for a crash."""

    def __init__(self, inner: Any, store: Any, crash_after_place: bool) -> None:
        super().__init__(inner, store)
        self.crash_after_place = crash_after_place

    def place(self, request: Any) -> Any:
        order = super().place(request)
        if self.crash_after_place:
            self.crash_after_place = False
            raise SimulatedCrash("after place")
        return order


def schedule_hook(faults: dict[str, str], halt_at: str | None, store: MemoryDecisionStore):
    """The before_node hook: each fault (and the halt) fires once, the first time its node
    runs, across restarts."""
    fired: set[str] = set()

    async def sleep() -> None:
        await asyncio.sleep(TIMEOUT_S * 20)

    def hook(name: str, state: dict[str, Any]) -> Any:
        if name == halt_at and "halt" not in fired:
            fired.add("halt")
            store._halt = store._halt.__class__(True, "watchdog: exposure", "watchdog")
        fault = faults.get(name, "none")
        if fault == "none" or name in fired:
            return None
        fired.add(name)
        if fault == "exception":
            raise RuntimeError(f"injected fault in {name}")
        if fault == "crash":
            raise SimulatedCrash(name)
        return sleep()

    return hook


async def play(mode: SafetyMode, faults: dict[str, str], halt_at: str | None,
               approve: bool, crash_after_place: bool
               ) -> tuple[Any, RecordingBroker, CountingStore, list[Any]]:
    memory = MemoryDecisionStore()
    store = CountingStore(memory)
    checkpointer = InMemorySaver()
    hook = schedule_hook(faults, halt_at, memory)
    _, first = make_runner(mode)
    broker = CrashingBroker(first.broker, memory, crash_after_place)
    clock = first.clock

    def boot():
        return make_runner(mode, store=store, checkpointer=checkpointer, broker=broker,
                           clock=clock, before_node=hook,
                           signoff={"node_timeout_s": TIMEOUT_S})

    results: list[Any] = []
    r, _ = boot()
    crashed = False
    try:
        results.append(await r.handle(news_incident("inc-1")))
    except SimulatedCrash:
        crashed = True
    # Then restart until a restart finds nothing to do: recover() what an earlier process
    # left unfinished (a crash, or a final write that failed) and answer what waits.
    for _ in range(MAX_RESTARTS):
        quiet = not crashed
        crashed = False
        r, _ = boot()  # a new process: nothing survives but the store, broker, checkpoints
        try:
            recovered = await r.recover()
            results.extend(recovered)
            pending = await store.pending_approvals() if mode is SafetyMode.TWO_PHASE else []
            for a in pending:
                answer = r.approve if approve else r.reject
                results.append(await answer(a.decision_id, by="ops", note="fuzz"))
        except SimulatedCrash:
            crashed = True
            continue
        if quiet and not recovered and not pending:
            break
    else:
        pytest.fail("still crashing after every restart")
    return r, broker, store, results


@settings(max_examples=40, deadline=None)
@given(
    mode=st.sampled_from([SafetyMode.DIRECT, SafetyMode.TWO_PHASE]),
    # Each node's fault; most are "none" (a node left out), or a schedule would nearly
    # always end at its first node and the later nodes would go untested.
    faults=st.dictionaries(st.sampled_from(NODES), st.sampled_from(FAULTS), max_size=3),
    halt_at=st.none() | st.sampled_from(NODES),
    approve=st.booleans(),
    crash_after_place=st.booleans(),
)
def test_random_fault_schedules_keep_the_money_invariants(
        mode: SafetyMode, faults: dict[str, str], halt_at: str | None, approve: bool,
        crash_after_place: bool) -> None:
    _, broker, store, results = asyncio.run(
        play(mode, faults, halt_at, approve, crash_after_place))
    orders = broker.orders()

    # Every order: three APPROVEs over the hash of the stored proposal, its exact terms.
    asyncio.run(assert_orders_signed(store, orders))
    # Never placed while halted.
    assert not any(halted for _, halted in broker.places), broker.places
    # At most one order per decision (one incident here: at most one order at all), and
    # never a second place() of a decision's order after a crash and a restart.
    decisions = asyncio.run(store.decisions(limit=100))
    assert len(decisions) <= 1
    assert len(orders) <= len(decisions)
    places = Counter(coid for coid, _ in broker.places)
    assert all(n == 1 for n in places.values()), places
    # One final outcome per decision, written once; none left undecided after recovery.
    assert all(n == 1 for n in store.final_writes.values()), store.final_writes
    for row in decisions:
        assert row["outcome"] in {o.value for o in Outcome}, row
        coid = client_order_id(row["id"], 0)
        sent = any(o.id == coid for o in orders)
        assert sent == (row["outcome"] == Outcome.EXECUTED), (row["outcome"], row["reason"])
        assert [o["client_order_id"] for o in asyncio.run(store.orders(row["id"]))] == (
            [coid] if sent else [])
    # What the runner reported never contradicts the broker: only EXECUTED sent an order,
    # and the last report agrees with the store.
    final = [x for x in results if x.outcome != AWAITING_APPROVAL]
    sent_ids = {o.id for o in orders}
    for x in final:
        has_order = client_order_id(x.decision_id, 0) in sent_ids
        assert has_order == (x.outcome == Outcome.EXECUTED), x
    if decisions and final:
        assert final[-1].outcome == decisions[0]["outcome"]
    # With no fault and no halt the decision goes through.
    if all(f == "none" for f in faults.values()) and halt_at is None and (
            approve or mode is SafetyMode.DIRECT) and not crash_after_place:
        assert [x.outcome for x in final] == ["EXECUTED"]
    # A halt before the order leaves means no order.
    if halt_at in NODES[:NODES.index("execute") + 1]:
        assert orders == []
