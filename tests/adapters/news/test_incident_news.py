"""An RSS headline reaches an incident's triage prompt, and never before it arrived."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.adapters.news.server import FeedServer, Route, recorded
from tests.llm.test_incident import anomaly
from tripwire.adapters.news.config import NewsConfig
from tripwire.adapters.news.poller import NewsPoller
from tripwire.engine.market import MarketState
from tripwire.llm.skills import SkillLoader
from tripwire.model import NS_PER_SECOND, RecentTicks, SimClock, SymbolTable

SKILLS = Path(__file__).resolve().parents[3] / "skills"
HEADLINE = "Bitcoin slides as ETF outflows mount"


def _later(a, dt_ns: int):
    """The same trip ``dt_ns`` later (its snapshot shifted with it)."""
    s = a.snapshot
    return replace(a, ts_ns=a.ts_ns + dt_ns,
                   snapshot=RecentTicks(s.ts_ns + dt_ns, s.price, s.qty))


@pytest.mark.timeout(60)
def test_an_rss_headline_reaches_the_triage_prompt_only_after_it_arrived():
    trip = anomaly(np.r_[np.full(30, 100.0), 93.0], symbol="BTCUSDT")
    published = trip.ts_ns - 120 * NS_PER_SECOND  # written two minutes before the trip ...
    arrival = trip.ts_ns + 60 * NS_PER_SECOND  # ... but fetched a minute after it
    routes = {"/a": Route(recorded("wire_a.xml", pub1_ns=published, pub2_ns=published))}

    async def fetch():
        async with FeedServer(routes) as server:
            table = {"sources": [{"name": "wire-a", "url": server.url("/a")}],
                     "aliases": {"BTCUSDT": ["BTC", "bitcoin"]}}
            poller = NewsPoller(NewsConfig.from_table(table), clock=SimClock(arrival))
            news, _ = await poller.poll_due(asyncio.get_running_loop().time())
            await poller.aclose()
            return news

    news = asyncio.run(fetch())
    item = next(n for n in news if n.headline == HEADLINE)
    assert item.ts_ns == arrival and item.published_ns == published
    market = MarketState(SymbolTable(["BTCUSDT"]))
    market.on_news(news)
    # At the trip the headline had not arrived: the incident must not show it.
    (early,) = market.incidents([trip])
    assert all(h.headline != HEADLINE for h in early.news)
    # Two minutes after the trip it had: it is in the incident and in the rendered prompt.
    (late,) = market.incidents([_later(trip, 120 * NS_PER_SECOND)])
    assert any(h.headline == HEADLINE and h.source == "wire-a" for h in late.news)
    _, (message,) = SkillLoader(SKILLS).render("triage-analyst", late)
    envelope = message.content.split("<untrusted_news>", 1)[1].split("</untrusted_news>", 1)[0]
    assert HEADLINE in envelope and "from wire-a" in envelope
