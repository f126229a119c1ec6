"""The registry factory: ``polymarket=SYMBOL:ASSET_ID,...`` -> a market-channel feed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tripwire.adapters.polymarket.factory import feed_from_spec
from tripwire.adapters.polymarket.websocket import PolymarketWebSocketFeed


def test_a_spec_builds_the_feed_with_its_tokens_and_url():
    spec = SimpleNamespace(name="polymarket", symbols=("PM-A-YES:123", "456"),
                           url="ws://127.0.0.1:9/ws/market",
                           options={"idle_timeout_s": 5.0, "max_delay_ms": 10})
    feed = feed_from_spec(spec)
    assert isinstance(feed, PolymarketWebSocketFeed)
    assert feed.symbols.names == ("PM-A-YES", "PM-456")
    assert feed.url == "ws://127.0.0.1:9/ws/market" and feed.idle_timeout == 5.0
    assert feed.probability_symbols() == ("PM-A-YES", "PM-456")


@pytest.mark.parametrize("items, match", [((), "needs tokens"), (("PM-A:abc",), "asset_id"),
                                          (("A:1", "A:2"), "listed twice")])
def test_a_bad_spec_is_refused_by_name(items, match):
    with pytest.raises(ValueError, match=match):
        feed_from_spec(SimpleNamespace(symbols=items, url=None, options={}))
