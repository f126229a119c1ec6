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


def test_an_outcome_the_store_lost_is_seen_and_settled(migrated_db: str) -> None:
    """The store goes away mid-decision but the checkpoints survive: the run returns
    REJECTED while the stored decision has no outcome. ``unrecorded`` tells the caller, and
    ``settle_failed`` records REJECTED once the store answers (no restart needed)."""

    async def scenario() -> None:
        pg = await PgDecisionStore.connect(migrated_db)
        store = BrokenStore(pg)

        def cut(name: str, state: dict[str, Any]) -> None:
            if name == "fact_checker":
                store.broken = True

        try:
            r, d = make_runner(store=store, before_node=cut)
            res = await r.handle(news_incident("inc-lost"))
            assert res.outcome == Outcome.REJECTED and r.unrecorded(res), res.reason
            store.broken = False
            assert (await pg.proposal(res.decision_id))["outcome"] is None  # half done
            settled = await r.settle_failed(res.decision_id, res.reason)
            assert settled is not None and settled.outcome == Outcome.REJECTED
            assert (await pg.proposal(res.decision_id))["outcome"] == "REJECTED"
            assert d.broker.orders() == []
        finally:
            await pg.close()

    run(scenario())


def test_orchestrator_settles_a_decision_the_database_outage_cut(
        pg_root: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real thing: the orchestrator's PostgreSQL is stopped while a decision is at
    its execute node. No order leaves (the halt flag and the proposal cannot be read), the
    run raises (its checkpoint cannot be written) -- and once the server is back, without a
    restart of the orchestrator, the decision is closed REJECTED, never left half."""
    import dataclasses
    import time

    from graphs.runner import DecisionRunner
    from serve_apps.orchestrator import Orchestrator
    from tests.graphs.harness import PRICE, SYMBOL
    from tripwire.config import load_settings
    from tripwire.model import NS_PER_SECOND, SimClock, SymbolTable, TickBatch
    from tripwire.store import pg as pg_module
    from tripwire.store.migrate import migrate
    from tripwire.store.pg import PrivateCluster

    symbols = SymbolTable([SYMBOL, "BTCUSDT"])
    cluster = PrivateCluster(pg_root / "orchestrator-outage", durable=False)
    dsn = cluster.start()
    port = cluster.port
    tmp_path.chmod(0o711)
    settings = load_settings(env={"TRIPWIRE_DATA__DIR": str(tmp_path),
                                  "TRIPWIRE_RISK__MODE": "DIRECT"})

    async def wait(check: Any, what: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.05)

    async def scenario() -> tuple[dict[str, Any], list[Any], dict[str, int]]:
        await migrate(dsn)
        orch = await Orchestrator(settings, dsn, symbols, workers=1, clock=SimClock(0)).start()
        try:
            def outage(name: str, state: dict[str, Any]) -> None:
                if name == "execute" and cluster.is_running():
                    cluster.stop()  # the database goes away mid-decision

            deps = dataclasses.replace(orch.parts.deps, before_node=outage)
            orch.runner = DecisionRunner(deps, orch.runner.checkpointer)
            t1 = 1_001 * NS_PER_SECOND
            await orch.on_ticks(TickBatch.from_columns([symbols.id(SYMBOL)], [t1], [PRICE],
                                                       [1.0]))
            await orch.submit([news_incident("inc-cut").model_dump(mode="json")])
            await wait(lambda: orch._c["errors"] >= 1, "the cut decision did not fail")
            assert orch.parts.paper.orders() == []
            monkeypatch.setattr(pg_module, "_free_port", lambda: port)
            await asyncio.to_thread(cluster.start)
            await wait(lambda: orch._c["settled_decisions"] >= 1, "never settled")
            store = orch.parts.store
            (row,) = await store.decisions(limit=10)
            return row, orch.parts.paper.orders(), dict(orch._c)
        finally:
            await orch.close()

    try:
        row, orders, counters = run(scenario())
    finally:
        cluster.stop()
    assert row["outcome"] == "REJECTED", row
    assert row["reason"].startswith("failed mid-decision:"), row["reason"]
    assert orders == [] and counters["settled_decisions"] == 1
