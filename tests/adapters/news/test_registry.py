"""News as a registry source beside a market feed: one MultiFeed, ticks and headlines."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from tests.adapters.loopback import Session, Then
from tests.adapters.news.server import FeedServer, Route, recorded
from tests.adapters.polymarket.server import YES, PolymarketReplayServer, trade
from tripwire.adapters.registry import SourceSpec, build_feeds, parse_spec, probability_symbols


@pytest.mark.timeout(60)
def test_news_and_polymarket_in_one_process_with_their_heartbeats():
    now = time.time_ns()
    routes = {"/a": Route(recorded("wire_a.xml", pub1_ns=now, pub2_ns=now))}

    async def scenario():
        async with FeedServer(routes) as http, PolymarketReplayServer(
                [trade(YES, "0.42")], [Session(then=Then.HOLD)], require_subscribe=True) as ws:
            pm = parse_spec(f"polymarket=PM-X:{YES}", ws.url)
            news = SourceSpec("news", (f"wire-a@{http.url('/a')}",),
                              options={"aliases": {"BTCUSDT": ["bitcoin"]}})
            feed = build_feeds([pm, news])
            ticks, headlines = 0, []
            async with contextlib.aclosing(feed.chunks()) as stream, asyncio.timeout(20):
                async for chunk in stream:
                    ticks += len(chunk.ticks)
                    headlines += chunk.news
                    if ticks and headlines:
                        break
            await feed.aclose()
            return feed, ticks, headlines

    feed, ticks, headlines = asyncio.run(scenario())
    assert ticks == 1 and feed.symbols.names == ("PM-X",)
    btc = next(h for h in headlines if h.headline.startswith("Bitcoin"))
    assert btc.symbols == ("BTCUSDT",) and btc.source == "wire-a"
    beats = feed.heartbeats()
    assert beats["feed:news-rss"] > 0 and beats["feed:news-rss:wire-a"] > 0
    assert beats["feed:polymarket-ws"] > 0
    assert probability_symbols(feed) == ("PM-X",)


def test_a_bad_news_spec_is_refused_by_name():
    with pytest.raises(ValueError, match="source news: news source 'coindesk' is not NAME@URL"):
        build_feeds([SourceSpec("news", ("coindesk",))])
