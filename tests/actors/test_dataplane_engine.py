"""The live data plane runs the engine's one step (``Engine.step``) with its ports: the Ray
detectors port, the decisions hand-over, the venue -- which on market time is told where
the clock moves (``until_ns``, :class:`tripwire.engine.Venue`'s rule), as in a backtest.

Regression: the data plane walked the trips itself and called the venue with the ticks
only, so on market time its clock followed the latest tick the venue took instead of the
trip time and the segment's end over every symbol."""

from __future__ import annotations

import asyncio

from tests.engine.test_step import SMALL
from tripwire.decisions.memory import MemorySettings
from tripwire.engine.step import sub_batches
from tripwire.feeds.scenario import Scenario


def test_the_market_time_data_plane_moves_the_venue_by_the_engines_rule(ray_local,
                                                                        migrated_db):
    from actors.dataplane import DataPlane, DataPlaneConfig
    from actors.ray_detectors import RayDetectors
    from serve_apps.jobs import parity_live
    from tripwire.engine import Engine
    from tripwire.store.pg_decisions import PgDecisionStore

    sc = Scenario(SMALL)
    events: list[tuple] = []

    async def on_clean(part, until_ns=None):
        events.append(("venue", len(part), until_ns))

    async def on_incidents(incidents, trace):
        events.append(("incidents", sorted({i.ts_ns for i in incidents})))

    async def idle():
        return True

    async def live():
        store = await PgDecisionStore.connect(migrated_db)
        plane = DataPlane(sc.symbols, DataPlaneConfig(
            n_shards=2, sync_decisions=True, source="scenario",
            memory=MemorySettings(enabled=True)), store, on_incidents,
            on_clean=on_clean, idle=idle)
        await asyncio.to_thread(plane.start)
        ends, accepted = [], 0
        try:
            assert isinstance(plane.engine, Engine)  # one tick path, the engine's
            assert isinstance(plane.detectors, RayDetectors)
            assert plane.engine.outcomes is not None  # [memory] on: outcomes recorded
            for chunk in Scenario(SMALL).blocks():
                for batch in sub_batches(chunk.ticks):
                    ends.append((len(events), int(batch.ts_ns.max())))
                    accepted += (await plane.ingest(batch, int(batch.ts_ns[-1]))).accepted
        finally:
            await plane.close()
            await store.close()
        return ends, accepted

    ends, accepted = asyncio.run(live())
    assert parity_live.RayDetectors is RayDetectors  # one copy of the port
    handed = [(n, e) for n, e in enumerate(events) if e[0] == "incidents"]
    assert handed, "the scenario tripped nothing"
    for n, (_, times) in handed:  # the venue moved up to the trip, then the hand-over
        kind, _rows, until = events[n - 1]
        assert kind == "venue" and until == times[-1], (events[n - 1], times)
    assert sum(e[1] for e in events if e[0] == "venue") == accepted  # every tick, once
    # Each batch's last venue call moves market time to the batch's end (every symbol).
    starts = [n for n, _ in ends[1:]] + [len(events)]
    for (_, end), nxt in zip(ends, starts, strict=True):
        kind, _rows, until = events[nxt - 1]
        assert kind == "venue" and until == end


def test_a_failed_hand_over_still_applies_the_whole_batch_then_raises(ray_local, migrated_db):
    """Queued hand-over (no waiting for decisions): when the sign-off refuses a trip's
    incidents, the rest of the batch still reaches the venue and the market (nothing
    half-done), the later trips are still handed over, and the ingest then raises."""
    from actors.dataplane import DataPlane, DataPlaneConfig
    from tripwire.store.pg_decisions import PgDecisionStore

    sc = Scenario(SMALL)
    venue_rows: list[int] = []
    tries: list[int] = []

    async def on_clean(part, until_ns=None):
        venue_rows.append(len(part))

    async def refuse(incidents, trace):
        tries.append(len(incidents))
        raise RuntimeError("sign-off unavailable")

    async def live():
        store = await PgDecisionStore.connect(migrated_db)
        plane = DataPlane(sc.symbols, DataPlaneConfig(n_shards=1, market_time=True,
                                                      source="scenario"),
                          store, refuse, on_clean=on_clean)
        await asyncio.to_thread(plane.start)
        failed = 0
        try:
            for chunk in Scenario(SMALL).blocks():
                for batch in sub_batches(chunk.ticks):
                    try:
                        await plane.ingest(batch, int(batch.ts_ns[-1]))
                    except RuntimeError as exc:
                        assert "sign-off unavailable" in str(exc)
                        failed += 1
            return failed, dict(plane._c)
        finally:
            await plane.close()
            await store.close()

    failed, counters = asyncio.run(live())
    assert failed >= 1 and len(tries) >= failed
    assert sum(venue_rows) == counters["accepted"]  # every clean tick reached the venue
