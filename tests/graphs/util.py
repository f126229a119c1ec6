"""Helpers shared by the graph tests: store and broker wrappers, schema-valid answers."""

from __future__ import annotations

from typing import Any

from tripwire.decisions.proposal import Proposal, proposal_hash
from tripwire.decisions.signatures import SIGNERS, SignVerdict
from tripwire.model import client_order_id
from tripwire.store.decisions import DecisionStore

HOLD_ANSWER = {
    "action": "HOLD", "symbol": "ETHUSDT", "size": 0.0, "limit_price": None,
    "stop_loss": None, "take_profit": None, "rationale": "nothing to do here",
    "confidence": 0.5, "source": "llm"}


def agree(max_size: float | None = None) -> dict[str, Any]:
    return {"verdict": "AGREE", "concerns": [], "confidence": 0.8, "max_size": max_size,
            "source": "llm"}


class SimulatedCrash(BaseException):
    """A process dying mid-node: not an Exception, so the guard lets it through."""


class StoreProxy:
    """Delegates every call to ``inner``; subclasses override what they break."""

    def __init__(self, inner: DecisionStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class DroppingStore(StoreProxy):
    """Silently loses the signatures of one signer (a lost write)."""

    def __init__(self, inner: DecisionStore, signer: str) -> None:
        super().__init__(inner)
        self.signer = signer

    async def add_signature(self, decision_id: str, signature: Any) -> bool:
        if signature.signer == self.signer:
            return True  # claims success, writes nothing
        return await self.inner.add_signature(decision_id, signature)


class BrokenStore(StoreProxy):
    """Every call raises ConnectionError once ``broken`` is set (the database went away)."""

    def __init__(self, inner: DecisionStore) -> None:
        super().__init__(inner)
        self.broken = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kw: Any) -> Any:
            if self.broken:
                raise ConnectionError(f"connection to the database lost ({name})")
            return await attr(*args, **kw)

        return call


class RecordingBroker:
    """A broker wrapper that records, for each place(), whether the store was halted then."""

    def __init__(self, inner: Any, store: Any) -> None:
        self.inner = inner
        self.store = store
        self.places: list[tuple[str, bool]] = []

    def place(self, request: Any) -> Any:
        halted = self.store._halt.halted  # the MemoryDecisionStore's flag, read synchronously
        self.places.append((request.client_order_id, halted))
        return self.inner.place(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def assert_orders_signed(store: DecisionStore, orders: list[Any]) -> None:
    """Every order maps to a decision with three APPROVEs over its stored proposal's hash,
    and carries exactly the stored proposal's terms."""
    decisions = await store.decisions(limit=10_000)
    by_coid = {client_order_id(row["id"], 0): row for row in decisions}
    for order in orders:
        row = by_coid.get(order.id)
        assert row is not None, f"order {order.id} maps to no decision"
        stored = await store.proposal(row["id"])
        p = Proposal.from_dict(stored["payload"]["proposal"])
        h = proposal_hash(p)
        assert h == stored["proposal_hash"]
        sigs = await store.signatures(row["id"])
        approved = {s.signer for s in sigs
                    if s.proposal_hash == h and s.verdict == SignVerdict.APPROVE}
        assert approved == set(SIGNERS), (order.id, sigs)
        assert order.request.qty == p.quantity
        assert order.request.symbol == p.symbol
