"""The live job writes one watchdog heartbeat per live source, into real PostgreSQL."""

from __future__ import annotations

import asyncio

from serve_apps.jobs.live import _SourceHeartbeats
from tripwire.store.pg_decisions import PgDecisionStore


class _TwoVenues:
    """What the job reads of a MultiFeed: each source's last message time (0: never heard)."""

    def __init__(self) -> None:
        self.beats = {"feed:ccxt:okx": 1_700_000_000_000_000_000, "feed:binance-ws": 0}

    def heartbeats(self) -> dict[str, int]:
        return dict(self.beats)


def test_each_source_heard_from_gets_its_own_heartbeat(migrated_db):
    async def run() -> dict:
        feed = _TwoVenues()
        beats = _SourceHeartbeats(feed, migrated_db)
        await beats.beat()
        feed.beats["feed:binance-ws"] = 1_700_000_000_500_000_000
        await beats.beat()  # within a second of the last write: not written yet
        beats.last = 0.0
        await beats.beat()
        await beats.close()
        store = await PgDecisionStore.connect(migrated_db, max_size=1)
        try:
            return await store.heartbeats()
        finally:
            await store.close()

    got = asyncio.run(run())
    assert got["feed:ccxt:okx"][0] == 1_700_000_000_000_000_000
    assert got["feed:binance-ws"][0] == 1_700_000_000_500_000_000
