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


def test_the_settings_news_aliases_reach_the_poller_of_a_news_source(tmp_path):
    """``[news] aliases`` in the config file tag RSS headlines in ``tripwire ingest`` and the
    live job (feed_factory), not only aliases given in a spec's options."""
    from types import SimpleNamespace

    from actors.ingest import feed_factory
    from tripwire.config import load_settings

    conf = tmp_path / "tripwire.toml"
    conf.write_text('[news]\ntrusted_sources = ["wire-a"]\nmax_seen = 500\n'
                    '[news.aliases]\nBTCUSDT = ["bitcoin", "BTC"]\n')
    settings = load_settings(conf, env={})
    assert settings.table("news")["aliases"] == {"BTCUSDT": ["bitcoin", "BTC"]}
    args = SimpleNamespace(source=["news=wire-a@http://127.0.0.1:9/a"], url=None, streams=None,
                           files=[], spot_markets=False)
    make_feed, _ = feed_factory(args, settings)
    poller = make_feed()
    assert poller.tagger.tag("Bitcoin slides as ETF outflows mount") == ("BTCUSDT",)
    assert poller.config.max_seen == 500
    # a spec's own aliases win over the file's
    from tripwire.adapters.news.factory import settings_options

    opts = settings_options(settings.table("news"), {"aliases": {"ETHUSDT": ["ether"]}})
    assert opts["aliases"] == {"ETHUSDT": ["ether"]}
    with pytest.raises(ValueError, match="news.aliases.BTCUSDT"):
        settings_options({"aliases": {"BTCUSDT": []}}, {})


def test_a_bare_news_source_polls_the_settings_news_sources_each_with_its_own_limits(tmp_path):
    """``[news] sources`` in the config were validated and then ignored: ``--source news``
    refused to start without ``news=NAME@URL`` items. A bare ``news`` now polls them."""
    from types import SimpleNamespace

    from actors.ingest import feed_factory
    from tripwire.commands.common import UsageError
    from tripwire.config import load_settings

    conf = tmp_path / "tripwire.toml"
    conf.write_text('[news]\ntrusted_sources = ["wire-a"]\n'
                    '[[news.sources]]\nname = "wire-a"\nurl = "http://127.0.0.1:9/a"\n'
                    'min_interval_s = 300\n'
                    '[[news.sources]]\nname = "wire-b"\nurl = "http://127.0.0.1:9/b"\n'
                    '[news.aliases]\nBTCUSDT = ["bitcoin"]\n')
    settings = load_settings(conf, env={})
    args = SimpleNamespace(source=["news"], url=None, streams=None, files=[],
                           spot_markets=False)
    poller = feed_factory(args, settings)[0]()
    assert [(s.name, s.min_interval_s) for s in poller.config.sources] == [
        ("wire-a", 300.0), ("wire-b", 60.0)]
    assert poller.tagger.tag("bitcoin up") == ("BTCUSDT",)
    # items on the command line win over the file's sources
    args = SimpleNamespace(source=["news=wire-c@http://127.0.0.1:9/c"], url=None, streams=None,
                           files=[], spot_markets=False)
    assert [s.name for s in feed_factory(args, settings)[0]().config.sources] == ["wire-c"]
    # no sources anywhere: a usage error that says where they go
    args = SimpleNamespace(source=["news"], url=None, streams=None, files=[],
                           spot_markets=False)
    with pytest.raises(UsageError, match=r"\[news\] sources"):
        feed_factory(args, load_settings(None, env={}))
