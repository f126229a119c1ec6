"""NewsPoller against a loopback HTTP server serving recorded RSS/Atom feeds."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.adapters.news.server import DATA, FeedServer, Route, recorded
from tripwire.adapters.news.config import NewsConfig
from tripwire.adapters.news.poller import NewsPoller
from tripwire.feeds.base import Feed
from tripwire.model import NS_PER_SECOND, DeadReason, SimClock

network = pytest.mark.timeout(60)
ALIASES = {"BTCUSDT": ["BTC", "bitcoin"], "ETHUSDT": ["ETH", "ether"]}


def poller(server: FeedServer, sources: list[dict], **kw) -> NewsPoller:
    table = {"sources": [{"min_interval_s": 0.01, **s, "url": server.url(s["url"])}
                         for s in sources], "aliases": ALIASES}
    return NewsPoller(NewsConfig.from_table(table), **kw)


async def rounds(p: NewsPoller, n: int):
    """``n`` poll rounds, each past every source's rate limit."""
    out = []
    for _ in range(n):
        loop = asyncio.get_running_loop()
        out.append(await p.poll_due(loop.time() + 10_000 * (len(out) + 1)))
    return out


@network
def test_two_wires_deduplicated_tagged_timestamped_and_polled_conditionally():
    now = time.time_ns()
    pub1, pub2 = now - 120 * NS_PER_SECOND, now - 60 * NS_PER_SECOND
    routes = {"/a": Route(recorded("wire_a.xml", pub1_ns=pub1, pub2_ns=pub2), etag='"a1"'),
              "/b": Route(recorded("wire_b.xml", pub1_ns=pub1, pub2_ns=pub2), etag='"b1"')}

    async def scenario():
        async with FeedServer(routes) as server:
            p = poller(server, [{"name": "wire-a", "url": "/a"}, {"name": "wire-b", "url": "/b"}])
            assert isinstance(p, Feed)
            got = await rounds(p, 2)
            await p.aclose()
            return p, got

    p, ((first, dead1), (second, dead2)) = asyncio.run(scenario())
    assert dead1 == [] and dead2 == [] and second == []  # the second round: 304s
    by_title = {n.headline: n for n in first}
    assert set(by_title) == {"Bitcoin slides as ETF outflows mount",
                             "Fed holds rates, signals patience", "Ether staking queue empties"}
    btc = by_title["Bitcoin slides as ETF outflows mount"]
    assert btc.source == "wire-a" and btc.symbols == ("BTCUSDT",)  # the first wire's copy
    assert by_title["Ether staking queue empties"].symbols == ("ETHUSDT",)
    assert by_title["Fed holds rates, signals patience"].symbols == ()  # market-wide
    # Source time kept; the time the window uses is the arrival, never before it.
    assert btc.published_ns == pub1 // NS_PER_SECOND * NS_PER_SECOND
    assert btc.ts_ns >= now and btc.ts_ns > btc.published_ns
    s = p.stats()["sources"]
    assert s["wire-a"]["stale"] == 1  # the 2018 story is a backlog, not news
    assert s["wire-b"]["duplicates"] == 1  # the same headline shouted by a second wire
    assert routes["/a"].requests[1]["if_none_match"] == '"a1"'
    assert routes["/a"].requests[1]["if_modified_since"] == "Mon, 07 Dec 2026 06:00:00 GMT"
    assert s["wire-a"]["not_modified"] == 1 and s["wire-b"]["not_modified"] == 1


@network
def test_malformed_xml_is_dead_lettered_and_the_poller_continues():
    now = time.time_ns()
    routes = {"/bad": Route((DATA / "malformed.xml").read_bytes()),
              "/a": Route(recorded("wire_a.xml", pub1_ns=now, pub2_ns=now))}

    async def scenario():
        async with FeedServer(routes) as server:
            p = poller(server, [{"name": "broken", "url": "/bad"}, {"name": "wire-a", "url": "/a"}])
            got = await rounds(p, 2)
            await p.aclose()
            return p, got

    p, ((news, dead), (_, dead2)) = asyncio.run(scenario())
    assert len(news) == 2  # the good wire's headlines still arrive
    assert [d.reason for d in dead] == [DeadReason.MALFORMED]
    assert dead[0].source == "news-rss:broken" and "well-formed" in dead[0].detail
    assert len(dead2) == 1 and len(routes["/bad"].requests) == 2  # polled again, refused again
    assert p.stats()["malformed"] == 2


@network
def test_a_feed_that_goes_silent_is_detected_counted_and_heartbeats_go_on():
    now = time.time_ns()
    routes = {"/q": Route(recorded("wire_a.xml", pub1_ns=now, pub2_ns=now), etag='"q"'),
              "/hang": Route(mode="hang"),
              "/limited": Route(mode="error", status=429, retry_after="30")}

    async def scenario():
        async with FeedServer(routes) as server:
            p = poller(server, [
                {"name": "quiet", "url": "/q", "silence_after_s": 0.6},
                {"name": "dead", "url": "/hang", "timeout_s": 0.1, "silence_after_s": 0.6},
                {"name": "limited", "url": "/limited"}])
            loop = asyncio.get_running_loop()
            news, _ = await p.poll_due(loop.time())
            first = p.stats()
            await asyncio.sleep(0.7)
            await p.poll_due(loop.time() + 1.0)  # 'limited' asked for 30 s: not polled
            later = p.stats()
            await p.aclose()
            return news, first, later

    news, first, later = asyncio.run(scenario())
    assert news and first["silent"] == []
    assert later["silent"] == ["dead", "quiet"]
    q, d, lim = (later["sources"][k] for k in ("quiet", "dead", "limited"))
    assert q["silences"] == 1 and q["not_modified"] == 1
    assert q["last_ok_ns"] > first["sources"]["quiet"]["last_ok_ns"]  # it answers: alive
    assert d["last_ok_ns"] == 0 and d["error_reasons"] == {"timeout": 2}
    assert lim["requests"] == 1 and lim["error_reasons"] == {"http_429": 1}
    assert later["heartbeat_ns"] > first["heartbeat_ns"] and later["rounds"] == 2


@network
def test_chunks_carry_news_and_stop_ends_the_stream():
    now = time.time_ns()
    routes = {"/a": Route(recorded("wire_a.xml", pub1_ns=now, pub2_ns=now))}

    async def scenario():
        async with FeedServer(routes) as server:
            p = poller(server, [{"name": "wire-a", "url": "/a", "min_interval_s": 0.05}],
                       clock=SimClock(now))
            async for chunk in p.chunks():
                assert len(chunk.ticks) == 0
                p.stop()
                return chunk

    chunk = asyncio.run(scenario())
    assert next(n.headline for n in chunk.news) == "Bitcoin slides as ETF outflows mount"
