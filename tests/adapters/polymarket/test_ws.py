"""PolymarketWebSocketFeed against a loopback server speaking the market channel."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random

import numpy as np
import pytest

from tests.adapters.polymarket.server import (
    NO,
    T0_MS,
    YES,
    PolymarketReplayServer,
    Session,
    Then,
    book,
    price_change,
    resolved,
    tick_size_change,
    trade,
)
from tripwire.adapters.live import Backoff
from tripwire.adapters.polymarket.config import PolymarketConfig
from tripwire.adapters.polymarket.websocket import PolymarketWebSocketFeed
from tripwire.feeds.base import Feed
from tripwire.model import DeadReason

network = pytest.mark.timeout(60)


def config(url: str, **kw) -> PolymarketConfig:
    return PolymarketConfig.from_table({
        "ws_url": url,
        "markets": [{"asset_id": YES, "symbol": "PM-TEST-YES", "market": "0xbd", "outcome": "Yes"},
                    {"asset_id": NO, "symbol": "PM-TEST-NO", "market": "0xbd", "outcome": "No"}],
        **kw,
    })


def make_feed(server, **kw) -> PolymarketWebSocketFeed:
    options = {"proxy": None, "max_delay_ms": 10,
               "backoff": Backoff(base_s=0.01, cap_s=0.05, max_attempts=20),
               "rng": random.Random(1)}
    return PolymarketWebSocketFeed(config(server.url, **kw.pop("table", {})), **(options | kw))


async def collect(feed, until, timeout=20.0):
    chunks = []
    async with contextlib.aclosing(feed.chunks()) as stream, asyncio.timeout(timeout):
        async for chunk in stream:
            chunks.append(chunk)
            if until(chunks):
                break
    return chunks


def ticks(chunks):
    return sum(len(c.ticks) for c in chunks)


def dead(chunks):
    return [d for c in chunks for d in c.dead]


@network
def test_trades_become_ticks_quotes_are_counted_and_garbage_is_dead_lettered():
    frames = [
        json.dumps([json.loads(book(YES)), json.loads(book(NO))]),  # the initial dump
        trade(YES, "0.52", "100", "BUY", T0_MS + 1),
        price_change(YES, T0_MS + 2),
        trade(NO, "0.48", "5.5", "SELL", T0_MS + 3),
        trade(YES, "1.2", "1", "BUY", T0_MS + 4),  # not a probability
        "{not json",
        json.dumps({"event_type": "surprise", "asset_id": YES}),
        trade(YES, "0.53", "1", "SIDEWAYS", T0_MS + 5),
        trade(YES, "0.53", "7", "SELL", T0_MS + 5),  # same ms as the refused one: id n=0
        trade(YES, "0.54", "8", "BUY", T0_MS + 5),  # same ms: next id
    ]

    async def scenario():
        async with PolymarketReplayServer(frames, require_subscribe=True) as server:
            feed = make_feed(server)
            assert isinstance(feed, Feed)
            chunks = await collect(feed, lambda cs: ticks(cs) >= 4 and len(dead(cs)) >= 4)
            return feed, chunks, server

    feed, chunks, server = asyncio.run(scenario())
    sub = server.connections[0].requests[0]
    assert sub == {"assets_ids": [YES, NO], "type": "market", "custom_feature_enabled": True}
    got = [c.ticks for c in chunks if len(c.ticks)]
    price = np.concatenate([t.price for t in got])
    assert price.tolist() == [0.52, 0.48, 0.53, 0.54]
    assert np.concatenate([t.qty for t in got]).tolist() == [100.0, 5.5, 7.0, 8.0]
    assert np.concatenate([t.side for t in got]).tolist() == [1, -1, -1, 1]
    ts = np.concatenate([t.ts_ns for t in got])
    assert ts[0] == (T0_MS + 1) * 1_000_000
    assert (np.concatenate([t.recv_ns for t in got]) > 0).all()  # arrival time kept too
    tid = np.concatenate([t.trade_id for t in got]).tolist()
    assert tid[2:] == [(T0_MS + 5) * 1024, (T0_MS + 5) * 1024 + 1]
    reasons = {d.detail.split(" ")[0]: d.reason for d in dead(chunks)}
    assert reasons["price"] is DeadReason.BAD_PRICE
    bad = next(d for d in dead(chunks) if d.reason is DeadReason.BAD_PRICE)
    assert "1.2 is outside [0, 1]" in bad.detail and bad.symbol == "PM-TEST-YES"
    assert {d.reason for d in dead(chunks)} == {DeadReason.BAD_PRICE, DeadReason.MALFORMED}
    assert any("unsupported event_type 'surprise'" in d.detail for d in dead(chunks))
    stats = feed.stats()
    assert stats["quotes"] == 3  # two books, one price change: counted, not ticks
    assert stats["instruments"]["PM-TEST-YES"]["best_bid"] == 0.5
    assert stats["instruments"]["PM-TEST-NO"]["best_ask"] == 0.52


@network
def test_resolution_is_an_event_and_later_trades_are_refused():
    frames = [
        trade(YES, "0.90", ms=T0_MS + 1),
        tick_size_change(YES, T0_MS + 2),
        resolved(YES, T0_MS + 3),
        trade(YES, "0.999", ms=T0_MS + 4),
        trade(NO, "0.001", ms=T0_MS + 5),
    ]

    async def scenario():
        async with PolymarketReplayServer(frames, require_subscribe=True) as server:
            feed = make_feed(server)
            chunks = await collect(feed, lambda cs: len(dead(cs)) >= 2)
            return feed, chunks

    feed, chunks = asyncio.run(scenario())
    assert ticks(chunks) == 1  # only the trade before the resolution
    refused = dead(chunks)
    assert [d.reason for d in refused] == [DeadReason.MARKET_RESOLVED] * 2
    assert {d.symbol for d in refused} == {"PM-TEST-YES", "PM-TEST-NO"}
    events = [e for c in chunks for e in c.events]  # the events travel in the chunks
    assert [e.kind for e in events] == ["tick_size_change", "market_resolved", "halt", "halt"]
    halts = {e.detail["symbol"]: e.detail["won"] for e in events if e.kind == "halt"}
    assert halts == {"PM-TEST-YES": True, "PM-TEST-NO": False}
    snap = feed.stats()["instruments"]
    assert snap["PM-TEST-YES"]["tick_size"] == 0.001 and snap["PM-TEST-NO"]["resolved"]
    assert feed.stats()["events"] == {"tick_size_change": 1, "market_resolved": 1, "halt": 2}
    assert feed.drain_events() == []


@network
def test_a_reconnect_resubscribes_and_a_replayed_trade_is_not_doubled():
    frames = [trade(YES, f"0.{50 + i}", ms=T0_MS + i) for i in range(6)]
    # The second connection starts two frames back: an overlap, as after a server restart.
    sessions = [Session(end=4, then=Then.DROP), Session(start=2)]

    async def scenario():
        async with PolymarketReplayServer(frames, sessions, require_subscribe=True) as server:
            feed = make_feed(server)
            chunks = await collect(feed, lambda cs: ticks(cs) >= 6 and len(dead(cs)) >= 2)
            return feed, chunks, server

    feed, chunks, server = asyncio.run(scenario())
    assert len(server.connections) == 2
    assert all(c.subscribed == [YES, NO] for c in server.connections)
    prices = np.concatenate([c.ticks.price for c in chunks if len(c.ticks)]).tolist()
    assert prices == [0.5, 0.51, 0.52, 0.53, 0.54, 0.55]  # none lost, none doubled
    assert [d.reason for d in dead(chunks)] == [DeadReason.DUPLICATE] * 2
    assert feed.stats()["reconnects"] == 1


@network
def test_keepalive_pings_are_answered_and_a_dead_channel_is_reconnected():
    """PONGs keep a quiet connection (a quiet market is not a dead link); a connection whose
    server stopped answering is dropped after idle_timeout_s and a new one subscribes."""
    async def scenario():
        sessions = [Session(end=0, then=Then.STALL), Session(start=0)]
        frames = [trade(YES, "0.5")]
        async with PolymarketReplayServer(frames, sessions, require_subscribe=True) as server:
            feed = make_feed(server, table={"ping_interval_s": 0.05, "idle_timeout_s": 0.5})
            chunks = await collect(feed, lambda cs: ticks(cs) >= 1, timeout=10)
            await asyncio.sleep(0)
            return feed, chunks, server

    feed, _, server = asyncio.run(scenario())
    stats = feed.stats()
    assert stats["pings"] >= 1
    assert stats["disconnects"] == {"idle_timeout": 1}
    assert len(server.connections) == 2 and server.connections[1].subscribed == [YES, NO]
    assert stats["last_message_ns_by_symbol"]["PM-TEST-YES"] > 0  # the per-symbol heartbeat


@network
def test_a_quiet_market_keeps_its_connection_with_pongs():
    async def scenario():
        async with PolymarketReplayServer([], [Session(then=Then.HOLD)],
                                          require_subscribe=True) as server:
            feed = make_feed(server, table={"ping_interval_s": 0.05, "idle_timeout_s": 0.3})
            async with contextlib.aclosing(feed.chunks()) as stream:
                task = asyncio.ensure_future(anext(stream, None))
                await asyncio.sleep(1.0)
                feed.stop()
                await task
            return feed

    stats = asyncio.run(scenario()).stats()
    assert stats["pongs"] >= 3 and stats["disconnects"] == {} and stats["reconnects"] == 0
