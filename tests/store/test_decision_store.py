"""The DecisionStore contract, one suite run against both backends (memory and PostgreSQL).

Every test gets the ``store`` fixture, a :class:`Backend` that opens a fresh store (a new
migrated database for PostgreSQL) inside ``asyncio.run``; the test body is a coroutine taking
the store. The contract points are those of the ``tripwire.store.decisions`` docstring. The
last tests are PostgreSQL-only: what the database itself enforces (append-only bus), NOTIFY,
and races between concurrent writers.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from tripwire.decisions.signatures import Signature
from tripwire.execution.base import (
    Fill,
    FillKind,
    Liquidity,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
)
from tripwire.model import Side
from tripwire.risk.gates import HaltStatus
from tripwire.store.decisions import (
    Approval,
    DecisionStore,
    IngestBatch,
    MemoryDecisionStore,
    StoreError,
    fill_row,
    order_row,
)
from tripwire.store.pg_decisions import PgDecisionStore

pytestmark = pytest.mark.timeout(120)

Body = Callable[[DecisionStore], Awaitable[Any]]


@dataclass
class Backend:
    """Opens a store of one backend; ``run`` gives a test body a fresh one in its own loop.

    The store is opened inside the loop because an asyncpg pool belongs to the loop that
    made it.
    """

    name: str
    open: Callable[[], Awaitable[DecisionStore]]

    def run(self, body: Body) -> Any:
        async def main() -> Any:
            store = await self.open()
            try:
                return await body(store)
            finally:
                await store.close()

        return asyncio.run(main())


async def _memory() -> DecisionStore:
    return MemoryDecisionStore()


def _postgres(dsn: str) -> Backend:
    return Backend("postgres", lambda: PgDecisionStore.connect(dsn, max_size=6))


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        return Backend("memory", _memory)
    return _postgres(request.getfixturevalue("migrated_db"))


@pytest.fixture
def pg_store(migrated_db: str) -> Backend:
    return _postgres(migrated_db)


# -- builders ------------------------------------------------------------------------------

T0 = 1_700_000_000_000_000_000


async def seed(s: DecisionStore, decision_id: str = "d-1", *, ts_ns: int = T0,
               symbol: str = "BTCUSDT") -> None:
    """An incident, its verdict and a proposal naming both (ids derived from decision_id)."""
    await s.record_incident(f"i-{decision_id}", symbol, ts_ns, "open", {"z": 4.2})
    await s.record_verdict(f"v-{decision_id}", f"i-{decision_id}", symbol, ts_ns + 1, "news",
                           0.8, {"why": "headline"})
    await s.record_proposal(decision_id, incident_id=f"i-{decision_id}",
                            verdict_id=f"v-{decision_id}", symbol=symbol, ts_ns=ts_ns + 2,
                            action="BUY", proposal_hash="h0", revision=0, mode="PAPER",
                            payload={"qty": 0.5})


def make_order(cid: str = "tw-d-1-0", *, status: OrderStatus = OrderStatus.OPEN,
               ts_ns: int = T0 + 10) -> Order:
    req = OrderRequest(cid, "BTCUSDT", Side.BUY, 0.5, OrderType.LIMIT, 100.0,
                       stop_loss=90.0, take_profit=120.0)
    return Order(cid, req, status, ts_ns, ts_ns, updated_ns=ts_ns)


def make_fill(fill_id: str, order_id: str = "tw-d-1-0", *, ts_ns: int = T0 + 20,
              kind: FillKind = FillKind.ORDER, side: Side = Side.BUY) -> Fill:
    return Fill(fill_id, order_id, "BTCUSDT", side, 0.5, 100.0, 0.05, Liquidity.MAKER, kind,
                ts_ns)


def sig(signer: str, proposal_hash: str = "h0", verdict: str = "APPROVE") -> Signature:
    return Signature(signer, proposal_hash, verdict, f"{signer} says {verdict}", T0 + 5)


def approval(decision_id: str = "d-1", *, requested_ns: int = T0 + 3,
             expires_ns: int = T0 + 1_000, status: str = "pending") -> Approval:
    return Approval(decision_id, status, "h0", "BUY 0.5 BTCUSDT", requested_ns, expires_ns)


# -- incidents and verdicts ----------------------------------------------------------------


def test_incident_insert_is_idempotent_and_the_first_stands(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        payload = {"z": 4.2, "nested": {"ticks": [1, 2, 3]}, "note": None}
        assert await s.record_incident("i-1", "BTCUSDT", T0, "open", payload) is True
        assert await s.record_incident("i-1", "ETHUSDT", T0 + 1, "open", {"other": 1}) is False
        row = await s.incident("i-1")
        assert isinstance(row.pop("recorded_ns"), int)  # when it arrived (store's clock)
        assert row == {"id": "i-1", "symbol": "BTCUSDT", "ts_ns": T0, "status": "open",
                       "payload": payload}
        assert await s.incident("i-unknown") is None

    store.run(body)


def test_incident_status_changes_and_an_unknown_incident_is_refused(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await s.record_incident("i-1", "BTCUSDT", T0, "open", {})
        await s.set_incident_status("i-1", "skipped: overload")
        assert (await s.incident("i-1"))["status"] == "skipped: overload"
        with pytest.raises(StoreError, match="i-nope"):
            await s.set_incident_status("i-nope", "triaged")

    store.run(body)


def test_a_trip_is_claimed_once_whatever_the_incident_id(store: Backend) -> None:
    """An incident is its trip (symbol, trip time, lead metric): the first claim owns it; the
    same trip under another id, or again under its own, is answered with the owner."""
    async def body(s: DecisionStore) -> None:
        assert await s.claim_trip("BTCUSDT", T0, "RETURN", "i-1", T0) == ("i-1", True)
        assert await s.claim_trip("BTCUSDT", T0, "RETURN", "i-2", T0 + 99) == ("i-1", False)
        assert await s.claim_trip("BTCUSDT", T0, "RETURN", "i-1", T0 + 99) == ("i-1", False)
        # Another metric, time or symbol is another trip.
        assert await s.claim_trip("BTCUSDT", T0, "VOLUME", "i-3", T0) == ("i-3", True)
        assert await s.claim_trip("BTCUSDT", T0 + 1, "RETURN", "i-4", T0) == ("i-4", True)
        assert await s.claim_trip("ETHUSDT", T0, "RETURN", "i-5", T0) == ("i-5", True)
        # Only the owner releases; a released trip can be claimed again.
        assert await s.release_trip("BTCUSDT", T0, "RETURN", "i-2") is False
        assert await s.release_trip("BTCUSDT", T0, "RETURN", "i-1") is True
        assert await s.claim_trip("BTCUSDT", T0, "RETURN", "i-6", T0) == ("i-6", True)

    store.run(body)


def test_pg_concurrent_claims_of_one_trip_have_one_owner(pg_store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        claims = await asyncio.gather(*(s.claim_trip("BTCUSDT", T0, "PRICE", f"i-{n}", T0)
                                        for n in range(8)))
        owners = {owner for owner, _ in claims}
        assert len(owners) == 1 and [c for _, c in claims].count(True) == 1

    pg_store.run(body)


def test_unfinished_incidents_are_listed_and_closed_once(store: Backend) -> None:
    """Recovery closes incidents a fault left in flight (``triaging``) with a final status;
    one that finished meanwhile keeps its own."""

    async def body(s: DecisionStore) -> None:
        await s.record_incident("i-b", "BTCUSDT", T0 + 2, "triaging", {})
        await s.record_incident("i-a", "BTCUSDT", T0 + 1, "triaging", {})
        await s.record_incident("i-q", "ETHUSDT", T0 + 3, "queued", {})
        await s.record_incident("i-done", "BTCUSDT", T0, "triaged", {})
        assert [r["id"] for r in await s.unfinished_incidents()] == ["i-a", "i-b", "i-q"]
        assert [r["id"] for r in await s.unfinished_incidents(limit=1)] == ["i-a"]
        assert await s.close_incident("i-a", "abandoned: database outage") is True
        assert (await s.incident("i-a"))["status"] == "abandoned: database outage"
        assert await s.close_incident("i-a", "abandoned: again") is False  # final already
        assert await s.close_incident("i-done", "abandoned: x") is False
        assert (await s.incident("i-done"))["status"] == "triaged"
        assert [r["id"] for r in await s.unfinished_incidents()] == ["i-b", "i-q"]
        with pytest.raises(StoreError, match="i-nope"):
            await s.close_incident("i-nope", "abandoned: x")
        for bad in ("triaging", "", "  "):
            with pytest.raises(StoreError, match="final status"):
                await s.close_incident("i-b", bad)
        assert (await s.incident("i-b"))["status"] == "triaging"

    store.run(body)


def test_verdict_insert_is_idempotent_and_must_name_a_known_incident(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        with pytest.raises(StoreError, match="unknown incident 'i-1'"):
            await s.record_verdict("v-1", "i-1", "BTCUSDT", T0, "news", 0.5, {})
        assert await s.verdict("v-1") is None
        await s.record_incident("i-1", "BTCUSDT", T0, "open", {})
        assert await s.record_verdict("v-1", "i-1", "BTCUSDT", T0, "news", 0.5, {"a": 1})
        assert not await s.record_verdict("v-1", "i-1", "BTCUSDT", T0, "noise", 0.9, {})
        row = await s.verdict("v-1")
        assert isinstance(row.pop("recorded_ns"), int)
        assert row == {
            "id": "v-1", "incident_id": "i-1", "symbol": "BTCUSDT", "ts_ns": T0,
            "class": "news", "confidence": 0.5, "payload": {"a": 1}}

    store.run(body)


@pytest.mark.parametrize("confidence", [-0.01, 1.01, math.nan])
def test_verdict_confidence_outside_0_1_is_refused(store: Backend, confidence: float) -> None:
    async def body(s: DecisionStore) -> None:
        await s.record_incident("i-1", "BTCUSDT", T0, "open", {})
        with pytest.raises(StoreError, match="confidence"):
            await s.record_verdict("v-1", "i-1", "BTCUSDT", T0, "news", confidence, {})
        assert await s.verdict("v-1") is None

    store.run(body)


def test_recent_verdicts_are_the_symbols_newest_first_and_limited(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await s.record_incident("i-1", "BTCUSDT", T0, "open", {})
        for n, (symbol, ts) in enumerate([("BTCUSDT", 3), ("BTCUSDT", 1), ("ETHUSDT", 9),
                                          ("BTCUSDT", 2), ("BTCUSDT", 4)]):
            await s.record_verdict(f"v-{n}", "i-1", symbol, T0 + ts, "news", 0.5, {})
        recent = await s.recent_verdicts("BTCUSDT", limit=3)
        assert [v["id"] for v in recent] == ["v-4", "v-0", "v-3"]
        assert [v["id"] for v in await s.recent_verdicts("BTCUSDT")] == [
            "v-4", "v-0", "v-3", "v-1"]
        assert await s.recent_verdicts("SOLUSDT") == []

    store.run(body)


# -- proposals and outcomes ----------------------------------------------------------------


def test_proposal_round_trips_and_an_undecided_one_moves_to_a_new_revision(
    store: Backend,
) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s)
        arrived = (await s.proposal("d-1"))["recorded_ns"]  # kept by a new revision
        expected = {
            "id": "d-1", "incident_id": "i-d-1", "verdict_id": "v-d-1", "symbol": "BTCUSDT",
            "ts_ns": T0 + 2, "action": "BUY", "proposal_hash": "h0", "revision": 0,
            "mode": "PAPER", "outcome": None, "reason": "", "updated_ns": T0 + 2,
            "payload": {"qty": 0.5}, "recorded_ns": arrived}
        assert await s.proposal("d-1") == expected
        await s.record_proposal("d-1", incident_id="i-d-1", verdict_id="v-d-1",
                                symbol="BTCUSDT", ts_ns=T0 + 7, action="BUY",
                                proposal_hash="h1", revision=1, mode="PAPER",
                                payload={"qty": 0.25})
        assert await s.proposal("d-1") == {**expected, "ts_ns": T0 + 7, "proposal_hash": "h1",
                                           "revision": 1, "updated_ns": T0 + 7,
                                           "payload": {"qty": 0.25}}
        assert await s.proposal("d-unknown") is None

    store.run(body)


@pytest.mark.parametrize("field, value, match", [
    ("incident_id", "i-nope", "unknown incident 'i-nope'"),
    ("verdict_id", "v-nope", "unknown verdict 'v-nope'"),
    ("action", "SHORT", "BUY, SELL or HOLD"),
])
def test_a_proposal_naming_unknown_rows_or_a_bad_action_is_refused(
    store: Backend, field: str, value: str, match: str,
) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s)
        args: dict[str, Any] = {
            "incident_id": None, "verdict_id": None, "symbol": "BTCUSDT", "ts_ns": T0,
            "action": "HOLD", "proposal_hash": "h", "revision": 0, "mode": "DRY_RUN",
            "payload": {}}
        with pytest.raises(StoreError, match=match):
            await s.record_proposal("d-2", **{**args, field: value})
        assert await s.proposal("d-2") is None
        await s.record_proposal("d-2", **args)  # without the bad field it is accepted
        assert (await s.proposal("d-2"))["action"] == "HOLD"

    store.run(body)


def test_an_outcome_is_final(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s)
        assert await s.set_outcome("d-1", "EXECUTED", "filled", T0 + 50) is True
        assert await s.set_outcome("d-1", "REJECTED", "too late", T0 + 60) is False
        row = await s.proposal("d-1")
        assert (row["outcome"], row["reason"], row["updated_ns"]) == (
            "EXECUTED", "filled", T0 + 50)
        with pytest.raises(StoreError, match="already ended as EXECUTED"):
            await s.record_proposal("d-1", incident_id="i-d-1", verdict_id="v-d-1",
                                    symbol="BTCUSDT", ts_ns=T0 + 70, action="SELL",
                                    proposal_hash="h9", revision=9, mode="PAPER", payload={})
        assert await s.proposal("d-1") == row
        with pytest.raises(StoreError, match="d-unknown"):
            await s.set_outcome("d-unknown", "EXECUTED", "", T0)

    store.run(body)


def test_decisions_are_newest_first_limited_and_filter_undecided(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        for n in range(4):
            await seed(s, f"d-{n}", ts_ns=T0 + 100 * n)
        await s.set_outcome("d-1", "VETOED", "risk", T0 + 500)
        await s.set_outcome("d-3", "EXECUTED", "", T0 + 500)
        assert [d["id"] for d in await s.decisions()] == ["d-3", "d-2", "d-1", "d-0"]
        assert [d["id"] for d in await s.decisions(limit=2)] == ["d-3", "d-2"]
        undecided = await s.decisions(undecided_only=True)
        assert [d["id"] for d in undecided] == ["d-2", "d-0"]
        assert all(d["outcome"] is None for d in undecided)

    store.run(body)


# -- signatures ----------------------------------------------------------------------------


def test_a_signer_signs_a_hash_once_and_may_sign_a_new_revision(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s)
        assert await s.add_signature("d-1", sig("risk_gate")) is True
        assert await s.add_signature("d-1", sig("fact_checker", verdict="SHRINK")) is True
        # A retry, even one that changed its mind, cannot add a second vote on the same hash.
        assert await s.add_signature("d-1", sig("risk_gate", verdict="VETO")) is False
        assert await s.add_signature("d-1", sig("risk_gate", "h1")) is True
        assert await s.signatures("d-1") == [
            sig("risk_gate"), sig("fact_checker", verdict="SHRINK"), sig("risk_gate", "h1")]
        assert await s.signatures("d-unknown") == []

    store.run(body)


def test_a_signature_for_an_unknown_decision_is_refused(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        with pytest.raises(StoreError, match="unknown decision 'd-9'"):
            await s.add_signature("d-9", sig("risk_gate"))

    store.run(body)


# -- approvals -----------------------------------------------------------------------------


def test_an_approval_goes_from_pending_to_approved_once(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s)
        pending = approval()
        assert await s.request_approval(pending) == pending
        # Asking again returns the approval already there, unchanged.
        assert await s.request_approval(approval(expires_ns=T0 + 9)) == pending
        assert await s.approval("d-1") == pending
        decided = await s.decide_approval("d-1", approve=True, by="ops", note="looks fine",
                                          now_ns=T0 + 500)
        assert decided == Approval("d-1", "approved", "h0", "BUY 0.5 BTCUSDT", T0 + 3,
                                   T0 + 1_000, "ops", T0 + 500, "looks fine")
        assert await s.approval("d-1") == decided
        # Decided once: a second decision (even the opposite one) returns the first answer.
        again = await s.decide_approval("d-1", approve=False, by="other", note="no",
                                        now_ns=T0 + 600)
        assert again == decided
        assert await s.approval("d-unknown") is None

    store.run(body)


def test_a_rejected_approval_stays_rejected(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s)
        await s.request_approval(approval())
        rejected = await s.decide_approval("d-1", approve=False, by="ops", note="no",
                                           now_ns=T0 + 10)
        assert (rejected.status, rejected.decided_by, rejected.note) == ("rejected", "ops", "no")
        assert (await s.decide_approval("d-1", approve=True, by="ops", note="",
                                        now_ns=T0 + 11)).status == "rejected"

    store.run(body)


@pytest.mark.parametrize("now, status", [(T0 + 1_000, "approved"), (T0 + 1_001, "expired")])
def test_an_approval_decided_after_its_expiry_is_expired(
    store: Backend, now: int, status: str,
) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s)
        await s.request_approval(approval(expires_ns=T0 + 1_000))
        decided = await s.decide_approval("d-1", approve=True, by="ops", note="", now_ns=now)
        assert decided.status == status
        assert (await s.approval("d-1")).status == status

    store.run(body)


def test_pending_approvals_lists_only_pending_oldest_first(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        for n, requested in enumerate([30, 10, 20]):
            await seed(s, f"d-{n}")
            await s.request_approval(approval(f"d-{n}", requested_ns=T0 + requested))
        await s.decide_approval("d-2", approve=True, by="ops", note="", now_ns=T0 + 40)
        assert [a.decision_id for a in await s.pending_approvals()] == ["d-1", "d-0"]
        assert all(a.status == "pending" for a in await s.pending_approvals())

    store.run(body)


def test_approvals_for_unknown_decisions_or_with_a_bad_status_are_refused(
    store: Backend,
) -> None:
    async def body(s: DecisionStore) -> None:
        with pytest.raises(StoreError, match="unknown decision 'd-9'"):
            await s.request_approval(approval("d-9"))
        await seed(s)
        with pytest.raises(StoreError, match="d-1"):
            await s.decide_approval("d-1", approve=True, by="ops", note="", now_ns=T0)
        with pytest.raises(StoreError, match="status"):
            await s.request_approval(approval(status="maybe"))
        assert await s.approval("d-1") is None
        assert await s.pending_approvals() == []

    store.run(body)


# -- orders, fills, positions --------------------------------------------------------------


def test_orders_are_idempotent_by_client_order_id_and_update_in_place(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s)
        first = make_order()
        assert await s.record_order("d-1", "paper", first) is True
        assert await s.record_order("d-1", "paper", make_order(ts_ns=T0 + 99)) is False
        assert await s.orders("d-1") == [order_row("d-1", "paper", first)]
        filled = Order(first.id, first.request, OrderStatus.FILLED, first.placed_ns,
                       first.active_ns, 0.5, 100.0, T0 + 30)
        await s.update_order("paper", filled)
        assert await s.orders("d-1") == [order_row("d-1", "paper", filled)]
        assert await s.orders("d-unknown") == []

    store.run(body)


def test_orders_list_in_placement_order(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s)
        await s.record_order("d-1", "paper", make_order("tw-b", ts_ns=T0 + 20))
        await s.record_order("d-1", "paper", make_order("tw-a", ts_ns=T0 + 20))
        await s.record_order("d-1", "paper", make_order("tw-c", ts_ns=T0 + 10))
        assert [o["client_order_id"] for o in await s.orders("d-1")] == ["tw-c", "tw-a", "tw-b"]

    store.run(body)


def test_orders_for_unknown_decisions_and_updates_of_unknown_orders_are_refused(
    store: Backend,
) -> None:
    async def body(s: DecisionStore) -> None:
        with pytest.raises(StoreError, match="unknown decision 'd-9'"):
            await s.record_order("d-9", "paper", make_order())
        with pytest.raises(StoreError, match="tw-d-1-0"):
            await s.update_order("paper", make_order())
        # A retry naming an unknown decision is refused even when the order id exists.
        await seed(s)
        await s.record_order("d-1", "paper", make_order())
        with pytest.raises(StoreError, match="unknown decision 'd-9'"):
            await s.record_order("d-9", "paper", make_order())

    store.run(body)


def test_fills_are_idempotent_by_fill_id_and_keep_their_kind(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s)
        await s.record_order("d-1", "paper", make_order())
        entry = make_fill("tw-d-1-0:0")
        stop = make_fill("tw-d-1-0:1", ts_ns=T0 + 40, kind=FillKind.STOP_LOSS, side=Side.SELL)
        assert await s.record_fill(stop) is True
        assert await s.record_fill(entry) is True
        assert await s.record_fill(make_fill("tw-d-1-0:0", ts_ns=T0 + 99)) is False
        assert await s.fills("tw-d-1-0") == [fill_row(entry), fill_row(stop)]
        assert (await s.fills("tw-d-1-0"))[1]["kind"] == "stop_loss"
        assert await s.fills("tw-unknown") == []

    store.run(body)


def test_a_fill_for_an_unknown_order_is_refused(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        with pytest.raises(StoreError, match="unknown order 'tw-nope'"):
            await s.record_fill(make_fill("f-1", "tw-nope"))

    store.run(body)


def test_positions_are_saved_per_backend_and_overwritten(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await s.save_position("paper", Position("BTCUSDT", 0.5, 100.0, 0.0, 101.0, 0.5), T0)
        await s.save_position("paper", Position("ETHUSDT", -2.0, 50.0, 1.5, 49.0, 2.0), T0)
        await s.save_position("backtest", Position("BTCUSDT", 9.0, 1.0, 0.0, 1.0, 0.0), T0)
        # Flat: the average price is nan in memory and is stored as 0.
        await s.save_position("paper", Position("BTCUSDT", 0.0, math.nan, 3.0, 106.0, 0.0),
                              T0 + 5)
        assert await s.positions("paper") == {
            "BTCUSDT": {"symbol": "BTCUSDT", "qty": 0.0, "avg_price": 0.0,
                        "realised_pnl": 3.0, "updated_ns": T0 + 5},
            "ETHUSDT": {"symbol": "ETHUSDT", "qty": -2.0, "avg_price": 50.0,
                        "realised_pnl": 1.5, "updated_ns": T0},
        }
        assert list(await s.positions("backtest")) == ["BTCUSDT"]
        assert await s.positions("ccxt") == {}

    store.run(body)


# -- bus, halt flag, heartbeats, dead letters -----------------------------------------------


def test_messages_come_back_in_append_order_with_increasing_ids(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        ids = []
        for n, decision in enumerate(["d-1", "d-2", "d-1", None, "d-1"]):
            ids.append(await s.append_message(decision, "strategist", "risk_gate", f"k{n}",
                                              {"n": n, "list": [n, {"x": True}]}, T0 + 10 - n))
        assert ids == sorted(ids) and len(set(ids)) == 5
        msgs = await s.messages("d-1")
        assert [m["kind"] for m in msgs] == ["k0", "k2", "k4"]
        assert [m["id"] for m in msgs] == [ids[0], ids[2], ids[4]]
        assert msgs[1] == {"id": ids[2], "ts_ns": T0 + 8, "decision_id": "d-1",
                           "sender": "strategist", "recipient": "risk_gate", "kind": "k2",
                           "payload": {"n": 2, "list": [2, {"x": True}]}}
        assert [m["kind"] for m in await s.messages(None)] == ["k3"]
        assert await s.messages("d-unknown") == []

    store.run(body)


def test_the_halt_flag_is_set_read_and_cleared_only_with_an_acknowledgement(
    store: Backend,
) -> None:
    async def body(s: DecisionStore) -> None:
        assert await s.read_halt() == HaltStatus(False)
        await s.set_halt("drawdown limit", "watchdog", T0)
        assert await s.read_halt() == HaltStatus(True, "drawdown limit", "watchdog")
        for by, ack in [("ops", ""), ("", "checked"), ("ops", "   ")]:
            with pytest.raises(StoreError, match="acknowledgement"):
                await s.resume(by, ack, T0 + 1)
            assert (await s.read_halt()).halted
        await s.resume("ops", "checked the feed and the positions", T0 + 2)
        assert await s.read_halt() == HaltStatus(False, "", "ops")

    store.run(body)


def test_heartbeats_keep_the_latest_per_component(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        assert await s.heartbeats() == {}
        await s.heartbeat("feed:binance", T0, "ok")
        await s.heartbeat("watchdog", T0 + 1)
        await s.heartbeat("feed:binance", T0 + 2, "lagging")
        assert await s.heartbeats() == {"feed:binance": (T0 + 2, "lagging"),
                                        "watchdog": (T0 + 1, "")}

    store.run(body)


def test_dead_letters_are_newest_first_and_limited(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        for n in range(4):
            await s.dead_letter(T0 + n, "feed", f"bad tick {n}", "BTCUSDT" if n else None,
                                detail="negative qty", raw=f"raw-{n}")
        letters = await s.dead_letters()
        assert [d["reason"] for d in letters] == [f"bad tick {n}" for n in (3, 2, 1, 0)]
        assert letters[-1] == {"id": letters[-1]["id"], "ts_ns": T0, "source": "feed",
                               "reason": "bad tick 0", "symbol": None,
                               "detail": "negative qty", "raw": "raw-0"}
        assert [d["id"] for d in letters] == sorted((d["id"] for d in letters), reverse=True)
        assert [d["reason"] for d in await s.dead_letters(limit=2)] == [
            "bad tick 3", "bad tick 2"]
        with pytest.raises(StoreError, match="limit"):
            await s.dead_letters(limit=0)
        assert [d["reason"] for d in await s.dead_letters(limit=2, offset=1)] == [
            "bad tick 2", "bad tick 1"]
        assert [d["reason"] for d in await s.dead_letters(since_ns=T0 + 2)] == [
            "bad tick 3", "bad tick 2"]
        assert await s.dead_letters(offset=4) == []

    store.run(body)


# -- list queries for the HTTP API ---------------------------------------------------------


async def seed_market(s: DecisionStore) -> None:
    """Six decisions over two symbols, 100 ns apart, with a second verdict on i-d-0, one
    status change, outcomes on d-1 (VETOED) and d-4 (EXECUTED), two orders and a fill."""
    for n in range(6):
        await seed(s, f"d-{n}", ts_ns=T0 + 100 * n, symbol="BTCUSDT" if n % 2 else "ETHUSDT")
    await s.record_verdict("v-late", "i-d-0", "ETHUSDT", T0 + 50, "IGNORE", 0.3, {})
    await s.set_incident_status("i-d-2", "triaged")
    await s.set_outcome("d-1", "VETOED", "risk", T0 + 900)
    await s.set_outcome("d-4", "EXECUTED", "", T0 + 900)
    await s.record_order("d-4", "paper", make_order("tw-d-4-0", ts_ns=T0 + 410))
    await s.record_order("d-4", "paper", make_order("tw-d-4-1", ts_ns=T0 + 420,
                                                    status=OrderStatus.FILLED))
    await s.record_fill(make_fill("f-1", "tw-d-4-1", ts_ns=T0 + 430))


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in rows]


def test_incidents_are_listed_newest_first_paged_and_filtered(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed_market(s)
        assert ids(await s.incidents()) == [f"i-d-{n}" for n in (5, 4, 3, 2, 1, 0)]
        assert ids(await s.incidents(limit=2, offset=1)) == ["i-d-4", "i-d-3"]
        assert await s.incidents(offset=6) == []
        # since inclusive, until exclusive
        assert ids(await s.incidents(since_ns=T0 + 100, until_ns=T0 + 300)) == [
            "i-d-2", "i-d-1"]
        assert ids(await s.incidents(symbol="BTCUSDT")) == ["i-d-5", "i-d-3", "i-d-1"]
        assert ids(await s.incidents(status="triaged")) == ["i-d-2"]
        assert ids(await s.incidents(symbol="BTCUSDT", status="triaged")) == []
        assert (await s.incidents(limit=1))[0] == await s.incident("i-d-5")

    store.run(body)


def test_lists_break_ts_ties_by_id_descending(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        for name in ("b", "a", "B", "c"):  # bytewise order: B < a < b < c
            await s.record_incident(name, "BTCUSDT", T0, "open", {})
        assert ids(await s.incidents()) == ["c", "b", "a", "B"]
        assert ids(await s.incidents(limit=2, offset=2)) == ["a", "B"]

    store.run(body)


def test_verdicts_are_listed_newest_first_paged_and_filtered(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed_market(s)
        assert ids(await s.verdicts()) == [f"v-d-{n}" for n in (5, 4, 3, 2, 1)] + [
            "v-late", "v-d-0"]
        assert ids(await s.verdicts(classification="IGNORE")) == ["v-late"]
        assert ids(await s.verdicts(symbol="ETHUSDT", limit=2)) == ["v-d-4", "v-d-2"]
        assert ids(await s.verdicts(since_ns=T0 + 1, until_ns=T0 + 102)) == [
            "v-d-1", "v-late", "v-d-0"]
        row = (await s.verdicts(classification="IGNORE"))[0]
        assert row == await s.verdict("v-late")
        assert set(row) == {"id", "incident_id", "symbol", "ts_ns", "class", "confidence",
                            "payload", "recorded_ns"}

    store.run(body)


def test_verdicts_of_an_incident_are_oldest_first(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed_market(s)
        assert ids(await s.verdicts_of("i-d-0")) == ["v-d-0", "v-late"]
        assert ids(await s.verdicts_of("i-d-3")) == ["v-d-3"]
        assert await s.verdicts_of("i-unknown") == []

    store.run(body)


def test_decisions_filter_by_time_symbol_and_outcome_and_page(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed_market(s)
        assert ids(await s.decisions(offset=4)) == ["d-1", "d-0"]
        assert ids(await s.decisions(symbol="BTCUSDT")) == ["d-5", "d-3", "d-1"]
        assert ids(await s.decisions(outcome="EXECUTED")) == ["d-4"]
        assert ids(await s.decisions(since_ns=T0 + 102, until_ns=T0 + 302)) == ["d-2", "d-1"]
        assert ids(await s.decisions(undecided_only=True, symbol="BTCUSDT")) == ["d-5", "d-3"]
        assert ids(await s.decisions(undecided_only=True, limit=1, offset=1)) == ["d-3"]
        assert await s.decisions(undecided_only=True, outcome="EXECUTED") == []

    store.run(body)


def test_counts_tally_each_table_by_state_within_the_time_range(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        assert await s.counts() == {"incidents": {}, "verdicts": {}, "decisions": {},
                                    "orders": {}, "fills": 0}
        await seed_market(s)
        assert await s.counts() == {
            "incidents": {"open": 5, "triaged": 1},
            "verdicts": {"news": 6, "IGNORE": 1},
            "decisions": {"undecided": 4, "VETOED": 1, "EXECUTED": 1},
            "orders": {"open": 1, "filled": 1},
            "fills": 1}
        # [T0 + 400, T0 + 420): incident/verdict/proposal of d-4 and the first order only
        assert await s.counts(since_ns=T0 + 400, until_ns=T0 + 420) == {
            "incidents": {"open": 1}, "verdicts": {"news": 1}, "decisions": {"EXECUTED": 1},
            "orders": {"open": 1}, "fills": 0}
        assert (await s.counts(since_ns=T0 + 1_000))["incidents"] == {}

    store.run(body)


@pytest.mark.parametrize("call, argument", [
    (lambda s: s.incidents(limit=0), "limit"),
    (lambda s: s.incidents(limit=10_001), "limit"),
    (lambda s: s.verdicts(limit=-1), "limit"),
    (lambda s: s.verdicts(limit=True), "limit"),
    (lambda s: s.decisions(limit=2.0), "limit"),
    (lambda s: s.decisions(offset=-1), "offset"),
    (lambda s: s.incidents(offset="5"), "offset"),
    (lambda s: s.dead_letters(limit=10_001), "limit"),
    (lambda s: s.dead_letters(offset=-1), "offset"),
    (lambda s: s.dead_letters(since_ns="yesterday"), "since_ns"),
    (lambda s: s.verdicts(until_ns=2**63), "until_ns"),
    (lambda s: s.counts(since_ns=1.5), "since_ns"),
    (lambda s: s.counts(until_ns="now"), "until_ns"),
])
def test_bad_paging_arguments_are_refused_naming_the_argument(
        store: Backend, call: Callable[[DecisionStore], Awaitable[Any]], argument: str) -> None:
    async def body(s: DecisionStore) -> None:
        with pytest.raises(StoreError, match=f"^{argument} must be"):
            await call(s)

    store.run(body)


def test_the_largest_page_is_allowed(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s)
        assert ids(await s.decisions(limit=10_000)) == ["d-1"]
        assert await s.incidents(limit=1, offset=2**63 - 1) == []

    store.run(body)


# -- the whole chain -----------------------------------------------------------------------


def test_chain_assembles_the_whole_decision(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s)
        await seed(s, "d-other")  # rows of another decision must not leak in
        for signer in ("risk_gate", "fact_checker", "double_checker"):
            await s.add_signature("d-1", sig(signer))
        await s.request_approval(approval())
        await s.decide_approval("d-1", approve=True, by="ops", note="", now_ns=T0 + 4)
        await s.record_order("d-1", "paper", make_order())
        await s.record_order("d-other", "paper", make_order("tw-other"))
        await s.record_fill(make_fill("tw-d-1-0:0"))
        await s.record_fill(make_fill("tw-other:0", "tw-other"))
        await s.append_message("d-1", "strategist", "risk_gate", "proposal", {"a": 1}, T0 + 2)
        await s.append_message("d-other", "strategist", "risk_gate", "proposal", {}, T0 + 2)
        await s.set_outcome("d-1", "EXECUTED", "filled", T0 + 30)

        chain = await s.chain("d-1")
        assert chain is not None and chain.decision_id == "d-1"
        assert chain.incident == await s.incident("i-d-1")
        assert chain.verdict == await s.verdict("v-d-1")
        assert chain.proposal["outcome"] == "EXECUTED"
        assert [x.signer for x in chain.signatures] == [
            "risk_gate", "fact_checker", "double_checker"]
        assert chain.approval is not None and chain.approval.status == "approved"
        assert chain.orders == [order_row("d-1", "paper", make_order())]
        assert chain.fills == [fill_row(make_fill("tw-d-1-0:0"))]
        assert [(m["kind"], m["payload"]) for m in chain.messages] == [("proposal", {"a": 1})]
        assert await s.chain("d-unknown") is None

    store.run(body)


def test_a_chain_without_incident_or_verdict_leaves_them_empty(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await s.record_proposal("d-1", incident_id=None, verdict_id=None, symbol="BTCUSDT",
                                ts_ns=T0, action="HOLD", proposal_hash="h", revision=0,
                                mode="DRY_RUN", payload={})
        chain = await s.chain("d-1")
        assert chain is not None
        assert (chain.incident, chain.verdict, chain.approval) == (None, None, None)
        assert (chain.signatures, chain.orders, chain.fills, chain.messages) == ([], [], [], [])

    store.run(body)


# -- PostgreSQL only: what the database enforces, NOTIFY, concurrent writers ----------------


def test_pg_bus_messages_are_append_only(pg_store: Backend, migrated_db: str) -> None:
    async def body(s: DecisionStore) -> None:
        msg_id = await s.append_message("d-1", "a", "b", "kind", {}, T0)
        conn = await asyncpg.connect(migrated_db)
        try:
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute("UPDATE bus_messages SET kind = 'forged' WHERE id = $1",
                                   msg_id)
        finally:
            await conn.close()
        assert [m["kind"] for m in await s.messages("d-1")] == ["kind"]

    pg_store.run(body)


def test_pg_follow_yields_the_notify_of_each_new_message(pg_store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        assert isinstance(s, PgDecisionStore)
        async with s.follow("d-1") as only_d1, s.follow() as everything:
            await s.append_message("d-2", "strategist", "risk_gate", "noise", {}, T0)
            msg_id = await s.append_message("d-1", "strategist", "risk_gate", "proposal",
                                            {"big": "x" * 10_000}, T0 + 1)
            note = await asyncio.wait_for(anext(only_d1), timeout=10)
            assert note == {"id": msg_id, "decision_id": "d-1", "kind": "proposal",
                            "sender": "strategist", "recipient": "risk_gate"}
            kinds = [(await asyncio.wait_for(anext(everything), timeout=10))["kind"]
                     for _ in range(2)]
            assert kinds == ["noise", "proposal"]
            assert only_d1.dropped == 0

    pg_store.run(body)


def test_pg_listen_messages_calls_back_until_stopped(pg_store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        assert isinstance(s, PgDecisionStore)
        seen: list[dict[str, Any]] = []
        arrived = asyncio.Event()

        def callback(note: dict[str, Any]) -> None:
            seen.append(note)
            arrived.set()

        stop = await s.listen_messages(callback)
        await s.append_message(None, "watchdog", "console", "halt", {}, T0)
        await asyncio.wait_for(arrived.wait(), timeout=10)
        await stop()
        await s.append_message(None, "watchdog", "console", "after", {}, T0 + 1)
        await asyncio.sleep(0.2)  # a note sent after stop() would have arrived by now
        assert [n["kind"] for n in seen] == ["halt"]

    pg_store.run(body)


def test_pg_concurrent_set_outcome_lets_exactly_one_win(pg_store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        for round_ in range(5):
            decision = f"d-{round_}"
            await seed(s, decision)
            outcomes = ["EXECUTED", "REJECTED", "VETOED", "EXPIRED"]
            won = await asyncio.gather(*(s.set_outcome(decision, o, f"by {o}", T0 + 9)
                                         for o in outcomes))
            assert won.count(True) == 1
            winner = outcomes[won.index(True)]
            row = await s.proposal(decision)
            assert (row["outcome"], row["reason"]) == (winner, f"by {winner}")

    pg_store.run(body)


def test_pg_concurrent_decisions_on_one_approval_agree(pg_store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s)
        await s.request_approval(approval())
        answers = await asyncio.gather(*(
            s.decide_approval("d-1", approve=n % 2 == 0, by=f"op{n}", note="", now_ns=T0 + 5)
            for n in range(4)))
        assert len(set(answers)) == 1
        assert await s.approval("d-1") == answers[0]

    pg_store.run(body)


def test_pg_refusals_by_the_database_become_store_errors(pg_store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s)
        # A quantity the schema's CHECK refuses (the brokers never produce one).
        bad = Order("tw-bad", OrderRequest("tw-bad", "BTCUSDT", Side.BUY, -1.0),
                    OrderStatus.OPEN, T0, T0)
        with pytest.raises(StoreError, match="order 'tw-bad' refused"):
            await s.record_order("d-1", "paper", bad)
        assert await s.orders("d-1") == []

    pg_store.run(body)


def test_pg_listen_halt_reports_every_halt_and_resume(pg_store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        assert isinstance(s, PgDecisionStore)
        notes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        stop = await s.listen_halt(notes.put_nowait)
        try:
            await s.set_halt("drawdown limit", "watchdog", T0)
            assert await asyncio.wait_for(notes.get(), timeout=10) == {
                "halted": True, "reason": "drawdown limit", "set_by": "watchdog",
                "set_ns": T0}
            await s.resume("ops", "checked the drawdown", T0 + 1)
            # as read_halt: a resumed flag has no reason
            assert await asyncio.wait_for(notes.get(), timeout=10) == {
                "halted": False, "reason": "", "set_by": "ops", "set_ns": T0 + 1}
        finally:
            await stop()
        await stop()  # stopping twice is harmless
        await s.set_halt("after stop", "watchdog", T0 + 2)
        await asyncio.sleep(0.2)  # a note sent after stop() would have arrived by now
        assert notes.empty()

    pg_store.run(body)


def test_pg_halt_notify_fires_on_raw_sql_and_survives_a_huge_reason(
        pg_store: Backend, migrated_db: str) -> None:
    async def body(s: DecisionStore) -> None:
        assert isinstance(s, PgDecisionStore)
        notes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        stop = await s.listen_halt(notes.put_nowait)
        try:
            # Another process (psql, a second orchestrator) writing the flag is seen too.
            conn = await asyncpg.connect(migrated_db)
            try:
                await conn.execute("UPDATE app_state SET halted = true, reason = 'manual', "
                                   "set_by = 'psql', set_ns = 7")
            finally:
                await conn.close()
            assert await asyncio.wait_for(notes.get(), timeout=10) == {
                "halted": True, "reason": "manual", "set_by": "psql", "set_ns": 7}
            # NOTIFY refuses payloads of 8000 bytes: the halt must still be written.
            huge = "\u00e9\x01" * 20_000
            await s.set_halt(huge, "w" * 9_000, T0)
            assert (await s.read_halt()).reason == huge
            note = await asyncio.wait_for(notes.get(), timeout=10)
            assert note["halted"] is True
            assert note["reason"] == huge[:1000]
            assert note["set_by"] == "w" * 200
        finally:
            await stop()

    pg_store.run(body)


# -- runs and arrival order (issue 13: the operator view shows now) -------------------------


def test_a_run_is_registered_once_ended_once_and_listed_newest_first(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        first = await s.start_run("r-1", "demo seed 7", period_start_ns=T0,
                                  period_end_ns=T0 + 3_600 * 10**9, payload={"seed": 7})
        assert first["label"] == "demo seed 7" and first["ended_ns"] is None
        assert first["payload"] == {"seed": 7} and first["period_start_ns"] == T0
        assert isinstance(first["started_ns"], int) and first["started_ns"] > 0
        # Idempotent: a second start changes nothing.
        assert await s.start_run("r-1", "other label") == first
        second = await s.start_run("r-2", "", started_ns=first["started_ns"] + 1)
        assert [r["id"] for r in await s.runs()] == ["r-2", "r-1"]
        assert [r["id"] for r in await s.runs(limit=1, offset=1)] == ["r-1"]
        ended = await s.end_run("r-1", period_end_ns=T0 + 7_200 * 10**9)
        assert ended["ended_ns"] >= first["started_ns"]
        assert ended["period_start_ns"] == T0 and ended["period_end_ns"] == T0 + 7_200 * 10**9
        again = await s.end_run("r-1", ended_ns=ended["ended_ns"] + 10**12)
        assert again["ended_ns"] == ended["ended_ns"]  # the first end stands
        assert await s.run("r-1") == again
        assert await s.run("r-unknown") is None
        assert second["started_ns"] == first["started_ns"] + 1

    store.run(body)


@pytest.mark.parametrize("call, message", [
    (lambda s: s.end_run("r-nope"), "no run 'r-nope'"),
    (lambda s: s.start_run("", "x"), "run id must be"),
    (lambda s: s.start_run("r", "x" * 201), "run label must be"),
    (lambda s: s.start_run("r", started_ns=2**63), "started_ns must be"),
    (lambda s: s.start_run("r", period_start_ns=T0, period_end_ns=T0), "period_end_ns"),
    (lambda s: s.incidents(run="r-nope"), "no run 'r-nope'"),
    (lambda s: s.decisions(run="r-nope"), "no run 'r-nope'"),
    (lambda s: s.counts(run="r-nope"), "no run 'r-nope'"),
    (lambda s: s.verdicts(by="ts"), "by must be one of"),
])
def test_bad_run_arguments_are_refused_naming_them(
        store: Backend, call: Callable[[DecisionStore], Awaitable[Any]], message: str) -> None:
    async def body(s: DecisionStore) -> None:
        with pytest.raises(StoreError, match=message):
            await call(s)

    store.run(body)


def test_lists_by_arrival_are_newest_written_first_whatever_the_market_time(
        store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        # Written in this order, with market times going backwards.
        for n in range(4):
            await seed(s, f"d-{n}", ts_ns=T0 - 100 * n)
        assert ids(await s.incidents(by="arrival")) == ["i-d-3", "i-d-2", "i-d-1", "i-d-0"]
        assert ids(await s.incidents()) == ["i-d-0", "i-d-1", "i-d-2", "i-d-3"]  # market
        assert ids(await s.verdicts(by="arrival", limit=2)) == ["v-d-3", "v-d-2"]
        assert ids(await s.decisions(by="arrival", offset=3)) == ["d-0"]
        # A new revision of a proposal keeps its first arrival.
        await s.record_proposal("d-0", incident_id="i-d-0", verdict_id="v-d-0",
                                symbol="BTCUSDT", ts_ns=T0 + 5, action="SELL",
                                proposal_hash="h1", revision=1, mode="PAPER", payload={})
        assert ids(await s.decisions(by="arrival")) == ["d-3", "d-2", "d-1", "d-0"]

    store.run(body)


def test_a_run_filter_keeps_the_rows_that_arrived_during_the_run(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        # An older run replayed a LATER market: by market time its rows would come first.
        await s.start_run("old", "yesterday's replay")
        for n in range(3):
            await seed(s, f"old-{n}", ts_ns=T0 + 10**15 + n)
        await s.record_order("old-0", "paper", make_order("tw-old", status=OrderStatus.FILLED))
        await s.record_fill(make_fill("f-old", "tw-old"))
        await s.end_run("old")
        await s.start_run("new", "now")
        for n in range(2):
            await seed(s, f"new-{n}", ts_ns=T0 + n)
        await s.set_outcome("new-1", "EXECUTED", "", T0 + 9)

        assert ids(await s.incidents(run="new", by="arrival")) == ["i-new-1", "i-new-0"]
        assert ids(await s.incidents(run="old", by="arrival")) == [
            "i-old-2", "i-old-1", "i-old-0"]
        assert ids(await s.verdicts(run="new")) == ["v-new-1", "v-new-0"]
        assert ids(await s.decisions(run="new", outcome="EXECUTED")) == ["new-1"]
        assert ids(await s.incidents(by="arrival", limit=1)) == ["i-new-1"]
        assert ids(await s.incidents(limit=1)) == ["i-old-2"]  # market time: the old run's
        assert await s.counts(run="new") == {
            "incidents": {"open": 2}, "verdicts": {"news": 2},
            "decisions": {"undecided": 1, "EXECUTED": 1}, "orders": {}, "fills": 0}
        assert await s.counts(run="old") == {
            "incidents": {"open": 3}, "verdicts": {"news": 3}, "decisions": {"undecided": 3},
            "orders": {"filled": 1}, "fills": 1}

    store.run(body)


def test_ingest_batch_ids_are_claimed_once_finished_and_pruned(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        assert await s.claim_ingest_batch("b-1", "sha-1", "plane-a", T0) is None
        again = await s.claim_ingest_batch("b-1", "sha-2", "plane-b", T0 + 1)
        assert again == IngestBatch("b-1", "sha-1", "plane-a", T0)  # the first claim stands
        result = {"accepted": 3, "rejected": 1, "trips": 0, "incidents": ["i-1"]}
        await s.finish_ingest_batch("b-1", result, T0 + 2)
        done = await s.ingest_batch("b-1")
        assert done is not None and done.result == result and done.done_ns == T0 + 2
        with pytest.raises(StoreError, match="never claimed"):
            await s.finish_ingest_batch("b-nope", result, T0)
        assert await s.ingest_batch("b-nope") is None
        assert await s.claim_ingest_batch("b-2", "sha-3", "plane-a", T0 + 10) is None
        assert await s.prune_ingest_batches(T0 + 5) == 1
        assert await s.ingest_batch("b-1") is None and await s.ingest_batch("b-2") is not None

    store.run(body)


# -- memory: realised outcomes, similar incidents, history (issue 17 item 2) ----------------

HOUR = 3_600_000_000_000


async def outcome(s: DecisionStore, incident_id: str, *, symbol: str = "BTCUSDT",
                  metric: str = "RETURN", z_bucket: int = -4, ts_ns: int = T0,
                  horizon_h: int = 1, move_pct: float = -1.5, has_news: bool = False) -> bool:
    if await s.incident(incident_id) is None:
        await s.record_incident(incident_id, symbol, ts_ns, "triaged", {})
    return await s.record_outcome(
        incident_id, symbol=symbol, metric=metric, z_bucket=z_bucket, ts_ns=ts_ns,
        realised_ns=ts_ns + horizon_h * HOUR, horizon_s=horizon_h * 3600.0, move_pct=move_pct,
        classification="LIQUIDATION_CASCADE", action="HOLD", has_news=has_news,
        payload={"note": "x"})


def test_outcomes_are_idempotent_validated_and_name_a_known_incident(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        assert await outcome(s, "i-1") is True
        assert await outcome(s, "i-1", move_pct=9.0) is False  # the first stands
        [row] = await s.similar_outcomes("BTCUSDT", "RETURN", -4, as_of_ns=T0 + 2 * HOUR)
        assert row["move_pct"] == -1.5 and row["payload"] == {"note": "x"}
        assert row["realised_ns"] == T0 + HOUR and row["has_news"] is False
        with pytest.raises(StoreError, match="unknown incident 'i-none'"):
            await s.record_outcome("i-none", symbol="BTCUSDT", metric="RETURN", z_bucket=1,
                                   ts_ns=T0, realised_ns=T0 + 1, horizon_s=1.0, move_pct=0.0)
        await s.record_incident("i-2", "BTCUSDT", T0, "triaged", {})
        for bad, match in (({"realised_ns": T0 - 1}, "realised_ns"),
                           ({"horizon_s": 0.0}, "horizon_s"),
                           ({"move_pct": math.nan}, "move_pct"),
                           ({"action": "SHORT"}, "action")):
            args = {"symbol": "BTCUSDT", "metric": "RETURN", "z_bucket": 1, "ts_ns": T0,
                    "realised_ns": T0 + 1, "horizon_s": 1.0, "move_pct": 0.0, **bad}
            with pytest.raises(StoreError, match=match):
                await s.record_outcome("i-2", **args)
        assert await s.similar_outcomes("BTCUSDT", "RETURN", 1, as_of_ns=T0 + HOUR) == []

    store.run(body)


def test_similar_outcomes_never_show_one_realised_at_or_after_the_time(store: Backend) -> None:
    """No look-ahead: an incident at T0 + 3h sees the T0 outcome (realised at T0 + 1h) and
    not the one of T0 + 2h30 (realised at T0 + 3h30, after it), though it is more similar."""
    async def body(s: DecisionStore) -> None:
        await outcome(s, "old", symbol="ETHUSDT", ts_ns=T0)
        await outcome(s, "late", ts_ns=T0 + 5 * HOUR // 2)  # same symbol: more similar
        now = T0 + 3 * HOUR
        seen = await s.similar_outcomes("BTCUSDT", "RETURN", -4, as_of_ns=now)
        assert [r["incident_id"] for r in seen] == ["old"]
        at_realisation = await s.similar_outcomes("BTCUSDT", "RETURN", -4,
                                                  as_of_ns=T0 + 7 * HOUR // 2)
        assert [r["incident_id"] for r in at_realisation] == ["old"]  # strictly before
        later = await s.similar_outcomes("BTCUSDT", "RETURN", -4, as_of_ns=T0 + 4 * HOUR)
        assert [r["incident_id"] for r in later] == ["late", "old"]

    store.run(body)


def test_similar_outcomes_rank_symbol_bucket_news_then_newest(store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await outcome(s, "other-sym", symbol="ETHUSDT", ts_ns=T0 + 4)
        await outcome(s, "near-bucket", z_bucket=-5, ts_ns=T0 + 3)
        await outcome(s, "news", has_news=True, ts_ns=T0 + 2)
        await outcome(s, "same-old", ts_ns=T0)
        await outcome(s, "same-new", ts_ns=T0 + 1)
        await outcome(s, "far-bucket", z_bucket=-6, ts_ns=T0 + 5)  # outside +-1: never
        await outcome(s, "volume", metric="VOLUME", ts_ns=T0 + 6)  # another metric: never
        rows = await s.similar_outcomes("BTCUSDT", "RETURN", -4, as_of_ns=T0 + 9 * HOUR,
                                        limit=10)
        assert [r["incident_id"] for r in rows] == [
            "same-new", "same-old", "news", "near-bucket", "other-sym"]
        two = await s.similar_outcomes("BTCUSDT", "RETURN", -4, as_of_ns=T0 + 9 * HOUR,
                                       limit=2)
        assert [r["incident_id"] for r in two] == ["same-new", "same-old"]

    store.run(body)


def test_history_is_the_symbols_past_before_a_time_without_later_outcomes(
        store: Backend) -> None:
    async def body(s: DecisionStore) -> None:
        await seed(s, "d-1", ts_ns=T0)
        await s.set_outcome("d-1", "EXECUTED", "filled", T0 + 100)
        await seed(s, "d-2", ts_ns=T0 + 1_000)
        await s.set_outcome("d-2", "REJECTED", "vetoed", T0 + 5_000)
        await seed(s, "d-3", ts_ns=T0 + 10_000)  # after the time asked about
        await seed(s, "d-4", ts_ns=T0 + 1_500, symbol="ETHUSDT")
        h = await s.history("BTCUSDT", before_ns=T0 + 2_000, limit=5)
        assert [v["id"] for v in h["verdicts"]] == ["v-d-2", "v-d-1"]
        assert h["verdicts"][0]["class"] == "news" and h["verdicts"][0]["confidence"] == 0.8
        assert [(d["id"], d["action"], d["outcome"]) for d in h["decisions"]] == [
            ("d-2", "BUY", None),  # settled at T0 + 5000: not known at T0 + 2000
            ("d-1", "BUY", "EXECUTED")]
        assert h["decisions"][1]["reason"] == "filled"
        one = await s.history("BTCUSDT", before_ns=T0 + 20_000, limit=1)
        assert [d["id"] for d in one["decisions"]] == ["d-3"]

    store.run(body)
