"""A resolved Polymarket market stops being traded (issue 18: resolution is an event).

The resolution travels in the feed's chunks (``FeedChunk.events``); the live job records
it (heartbeat ``market:<symbol>``, ``closed: ...``) and tells the sign-off service, which
refuses incidents on the token by name; the paper and ccxt venues refuse new orders on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from types import SimpleNamespace

import pytest
from rich.console import Console

from serve_apps.jobs.live import _pump_chunks, _SourceHeartbeats
from tests.adapters.polymarket.server import NO, T0_MS, YES, PolymarketReplayServer, resolved
from tests.adapters.polymarket.server import trade as pm_trade
from tripwire.adapters.live import Backoff
from tripwire.adapters.market_state import MARKET_CLOSED, MarketGate, closed_from_heartbeats
from tripwire.adapters.polymarket.config import PolymarketConfig
from tripwire.adapters.polymarket.websocket import PolymarketWebSocketFeed
from tripwire.config import load_settings
from tripwire.execution.base import OrderRejected, OrderRequest
from tripwire.execution.paper import PaperBroker
from tripwire.model import Side, SimClock, SymbolTable
from tripwire.store.pg_decisions import PgDecisionStore

pytestmark = pytest.mark.timeout(90)


class _SignOff:
    """What the live job calls on the sign-off deployment (recorded)."""

    def __init__(self) -> None:
        self.gate = MarketGate()
        self.calls: list[dict[str, str]] = []
        outer = self

        class _Method:
            @staticmethod
            async def remote(closed):
                outer.calls.append(dict(closed))
                return {"new": outer.gate.close(closed)}

        self.close_markets = _Method


class _Plane:
    class ingest:  # a handle's method
        @staticmethod
        async def remote(ticks):
            return {"accepted": len(ticks), "rejected": 0, "trips": 0, "incidents": []}, False


def _feed(url: str) -> PolymarketWebSocketFeed:
    config = PolymarketConfig.from_table({"ws_url": url, "markets": [
        {"asset_id": YES, "symbol": "PM-TEST-YES", "market": "0xbd", "outcome": "Yes"},
        {"asset_id": NO, "symbol": "PM-TEST-NO", "market": "0xbd", "outcome": "No"}]})
    return PolymarketWebSocketFeed(config, proxy=None, max_delay_ms=10, rng=random.Random(1),
                                   backoff=Backoff(base_s=0.01, cap_s=0.05, max_attempts=20))


def test_a_resolution_reaches_the_live_job_which_records_it_and_stops_the_token(migrated_db):
    frames = [pm_trade(YES, "0.90", ms=T0_MS + 1), resolved(YES, T0_MS + 3)]
    signoff = _SignOff()
    app = SimpleNamespace(signoff=signoff, dataplane=_Plane())
    counts = dict.fromkeys(("chunks", "ticks", "accepted", "rejected", "trips", "incidents",
                            "news"), 0)

    async def scenario() -> dict:
        async with PolymarketReplayServer(frames, require_subscribe=True) as server:
            feed = _feed(server.url)
            beats = _SourceHeartbeats(feed, migrated_db)
            stop = {"now": False}

            async def until_closed() -> None:
                while not signoff.calls:
                    await asyncio.sleep(0.02)
                stop["now"] = True

            watcher = asyncio.create_task(until_closed())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(20):
                    await _pump_chunks(feed, app, counts, stop, None, Console(quiet=True),
                                       beats)
            watcher.cancel()
            await feed.aclose()
            await beats.close()
        store = await PgDecisionStore.connect(migrated_db, max_size=1)
        try:
            return await store.heartbeats()
        finally:
            await store.close()

    beats = asyncio.run(scenario())
    expected = {"PM-TEST-YES": "market_resolved (won: True)",
                "PM-TEST-NO": "market_resolved (won: False)"}
    assert signoff.calls == [expected]
    assert counts["markets_closed"] == 2 and counts["venue_events"] >= 3
    # recorded where the operator (and a restarted sign-off service) can read it
    assert closed_from_heartbeats(beats) == expected
    assert beats["market:PM-TEST-NO"][1] == "closed: market_resolved (won: False)"
    # incidents on the resolved tokens are refused by name; others go on
    kept, refused = signoff.gate.split([{"id": "i1", "symbol": "PM-TEST-YES"},
                                        {"id": "i2", "symbol": "BTCUSDT"}])
    assert [k["id"] for k in kept] == ["i2"]
    assert refused == [{"id": "i1", "status": MARKET_CLOSED, "reason":
                        "PM-TEST-YES's market is closed (market_resolved (won: True)): its "
                        "incidents are not traded"}]


def test_the_paper_venue_refuses_new_orders_on_a_closed_market():
    symbols = SymbolTable(["PM-YES", "BTCUSDT"])
    broker = PaperBroker(symbols, SimClock(1_750_000_000 * 10**9),
                         load_settings(env={}).decisions.paper)
    MarketGate().close({"PM-YES": "market_resolved"}, broker)
    with pytest.raises(OrderRejected, match=r"PM-YES's market is closed \(market_resolved\)") \
            as err:
        broker.place(OrderRequest("tw-1", "PM-YES", Side.BUY, 10.0))
    assert err.value.field == "symbol"
    assert broker.place(OrderRequest("tw-2", "BTCUSDT", Side.BUY, 0.01)).id == "tw-2"


def test_the_ccxt_venue_refuses_new_orders_on_a_closed_market_before_any_call():
    from tripwire.execution.exchange import CcxtBroker

    env = {"TRIPWIRE_EXCHANGE_API_KEY": "k", "TRIPWIRE_EXCHANGE_SECRET": "s"}
    broker = CcxtBroker("binance", ["BTCUSDT", "ETHUSDT"], env=env, max_retries=0,
                        exchange_options={"urls": {"api": {}}})  # any network call fails
    MarketGate().close({"ETHUSDT": "halt"}, broker)
    with pytest.raises(OrderRejected, match="ETHUSDT's market is closed"):
        broker.place(OrderRequest("tw-1", "ETHUSDT", Side.SELL, 1.0))
    broker.close()


def test_a_broker_that_cannot_refuse_is_an_error_not_ignored():
    with pytest.raises(ValueError, match="cannot refuse orders on closed markets"):
        MarketGate().close({"PM-YES": "halt"}, object())


def test_the_signoff_service_reads_recorded_closures_at_start_and_refuses_by_name(
        migrated_db, tmp_path):
    """A restarted sign-off deployment: the closure the live job recorded still holds (its
    venue refuses orders, its incidents are answered market_closed); close_markets adds."""
    from serve_apps.app import AppSpec, SignOffDeployment
    from serve_apps.bearer import TokenVerifier
    from serve_apps.config import ServeConfig

    settings = load_settings(env={"TRIPWIRE_DATA__DIR": str(tmp_path)})
    spec = AppSpec(settings, migrated_db, ("PM-YES", "PM-NO", "BTCUSDT"),
                   ServeConfig.from_settings(settings), TokenVerifier.of("t"))

    async def run() -> tuple:
        store = await PgDecisionStore.connect(migrated_db, max_size=1)
        try:
            await store.heartbeat("market:PM-YES", 1, "closed: market_resolved")
        finally:
            await store.close()
        dep = SignOffDeployment.func_or_class(spec, None)
        try:
            await dep.ensure()
            broker = dep.orch.parts.venue.broker
            before = dict(broker.closed_markets)
            answers = await dep.submit([{"id": "inc-1", "symbol": "PM-YES"}])
            added = await dep.close_markets({"PM-NO": "halt"})
            return before, answers, added, dict(broker.closed_markets)
        finally:
            await dep.drain()

    before, answers, added, after = asyncio.run(run())
    assert before == {"PM-YES": "market_resolved"}
    assert answers == [{"id": "inc-1", "status": "market_closed", "reason":
                        "PM-YES's market is closed (market_resolved): its incidents are "
                        "not traded"}]
    assert added == {"new": 1, "closed": 2}
    assert after == {"PM-YES": "market_resolved", "PM-NO": "halt"}
