"""Recovery after a fault, on a real PostgreSQL: nothing is left half-done.

* an incident a crash or a database outage left ``triaging`` is closed ``abandoned: <why>``
  when the runner recovers (a restart), while a decision with a checkpoint still resumes;
* a decision whose run raised because the database went away mid-decision ends REJECTED
  once the database answers (``settle_failed``), or adopts its order if the venue holds one.

The database going away is injected at the client (:class:`BrokenStore` and a checkpointer
that refuses writes) so the fault lands on an exact node; the store behind it is PostgreSQL.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from graphs.runner import RESTART_WHY, postgres_checkpointer
from tests.graphs.harness import make_runner, news_incident
from tests.graphs.util import BrokenStore, SimulatedCrash
from tripwire.decisions.outcome import Outcome
from tripwire.model import client_order_id
from tripwire.store.pg_decisions import PgDecisionStore

pytestmark = pytest.mark.timeout(120)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class BreakableSaver(InMemorySaver):
    """Checkpoints in memory, refusing writes once ``broken`` (its database went away)."""

    broken = False

    async def aput(self, *args: Any, **kwargs: Any) -> Any:
        if self.broken:
            raise ConnectionError("checkpoint write: connection to the database lost")
        return await super().aput(*args, **kwargs)

    async def aput_writes(self, *args: Any, **kwargs: Any) -> Any:
        if self.broken:
            raise ConnectionError("checkpoint write: connection to the database lost")
        return await super().aput_writes(*args, **kwargs)


def test_an_incident_stuck_triaging_is_closed_at_recovery(migrated_db: str) -> None:
    """Regression: after the database came back, an incident stayed ``triaging`` forever.
    At a restart the runner now closes it with a reason (and says so on the bus); a
    decision interrupted with a checkpoint still resumes to its outcome."""

    async def crashed_process() -> str:
        store = await PgDecisionStore.connect(migrated_db)
        try:
            # What a triage cut off after its first write leaves behind.
            await store.record_incident("inc-stuck", "ETHUSDT", 1_000, "triaging",
                                        news_incident("inc-stuck").model_dump(mode="json"))

            def crash(name: str, state: dict[str, Any]) -> None:
                if name == "fact_checker":
                    raise SimulatedCrash(name)

            async with postgres_checkpointer(migrated_db) as cp:
                r, _ = make_runner(store=store, checkpointer=cp, before_node=crash)
                with pytest.raises(SimulatedCrash):
                    await r.handle(news_incident("inc-live"))
            (undecided,) = await store.decisions(limit=10, undecided_only=True)
            return undecided["id"]
        finally:
            await store.close()

    async def restarted(decision_id: str) -> None:
        store = await PgDecisionStore.connect(migrated_db)
        try:
            async with postgres_checkpointer(migrated_db) as cp:
                r, d = make_runner(store=store, checkpointer=cp)
                results = await r.recover()
                assert [(x.decision_id, x.outcome) for x in results] == [
                    (decision_id, Outcome.EXECUTED)]  # the checkpointed decision resumed
                stuck = await store.incident("inc-stuck")
                assert stuck["status"] == f"abandoned: {RESTART_WHY}", stuck["status"]
                assert (await store.incident("inc-live"))["status"] == "triaged"
                said = [m for m in await store.messages("inc-stuck")
                        if m["kind"] == "incident_abandoned"]
                assert len(said) == 1 and said[0]["payload"]["was"] == "triaging"
                assert await store.unfinished_incidents() == []
                assert await r.recover() == []  # a second restart finds nothing to close
                assert len(await store.messages("inc-stuck")) == len(said)
                assert [o.id for o in d.broker.orders()] == [client_order_id(decision_id, 0)]
        finally:
            await store.close()

    run(restarted(run(crashed_process())))


@pytest.mark.parametrize("node,outcome", [("execute", Outcome.REJECTED),
                                          ("finish", Outcome.EXECUTED)])
def test_database_lost_mid_decision_is_settled_when_it_returns(
        migrated_db: str, node: str, outcome: Outcome) -> None:
    """The database goes away just before ``node``: the run raises (its checkpoint cannot be
    written) and the stored decision has no outcome -- half done. Once the database
    answers, ``settle_failed`` ends it: REJECTED when no order left (before execute), or
    EXECUTED by adopting the order the venue holds (the loss came after the order)."""

    async def scenario() -> None:
        pg = await PgDecisionStore.connect(migrated_db)
        store, saver = BrokenStore(pg), BreakableSaver()
        fired: list[str] = []

        def outage(name: str, state: dict[str, Any]) -> None:
            if name == node and not fired:  # one outage; the node runs again on resume
                fired.append(name)
                store.broken = saver.broken = True

        try:
            r, d = make_runner(store=store, checkpointer=saver, before_node=outage)
            incident = news_incident("inc-db")
            triaged = await r.triage(incident)
            with pytest.raises(ConnectionError):
                await r.decide(incident, triaged, "dec-db")
            row = await pg.proposal("dec-db")
            assert row is not None and row["outcome"] is None  # half done
            with pytest.raises(ConnectionError):  # still down: nothing settles
                await r.settle_failed("dec-db", "ConnectionError: lost")
            store.broken = saver.broken = False
            settled = await r.settle_failed("dec-db", "ConnectionError: lost")
            assert settled is not None and settled.outcome == outcome, settled
            row = await pg.proposal("dec-db")
            assert row["outcome"] == outcome.value
            placed = [o.id for o in d.broker.orders()]
            if outcome == Outcome.REJECTED:
                assert placed == [] and "failed mid-decision" in row["reason"]
                kinds = [m["kind"] for m in await pg.messages("dec-db")]
                assert kinds[-1] == "outcome"
            else:
                assert placed == [client_order_id("dec-db", 0)]  # one order, adopted
                assert [o["client_order_id"] for o in await pg.orders("dec-db")] == placed
            assert await r.settle_failed("dec-db", "again") is None  # final: nothing to do
            assert len(d.broker.orders()) == len(placed)
        finally:
            await pg.close()

    run(scenario())
