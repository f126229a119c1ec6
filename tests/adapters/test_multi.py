"""Several live sources in one feed (registry + MultiFeed) against loopback exchanges."""

from __future__ import annotations

import asyncio

import pytest

from tests.adapters.binance.server import BinanceReplayServer, Session, trade_frames
from tests.adapters.ccxt.okx_server import OkxReplayServer
from tests.adapters.ccxt.okx_server import trade_frames as okx_frames
from tests.adapters.conformance import collect, options
from tripwire.adapters.multi import MultiFeed
from tripwire.adapters.registry import SourceSpec, build_feeds, parse_spec, register

pytestmark = pytest.mark.timeout(60)


def _specs(okx_url: str, binance_url: str, okx_symbol: str = "ETH/USDT") -> list[SourceSpec]:
    fast = {k: v for k, v in options().items() if k != "clock"}
    return [
        SourceSpec("ccxt:okx", (okx_symbol,), okx_url, {"spot_markets": True, **fast}),
        SourceSpec("binance", ("btcusdt@trade",), binance_url, fast),
    ]


def test_two_venues_deliver_into_one_symbol_table_with_their_own_heartbeats():
    async def run():
        async with (OkxReplayServer(okx_frames("ETH-USDT", range(1, 31)), [Session()]) as okx,
                    BinanceReplayServer(trade_frames("btcusdt", range(1, 21)),
                                        [Session()]) as bn):
            feed = build_feeds(_specs(okx.url, bn.url))
            assert isinstance(feed, MultiFeed)
            chunks = await collect(feed, lambda c: sum(len(x.ticks) for x in c) >= 50)
        return feed, chunks

    feed, chunks = asyncio.run(run())
    assert list(feed.symbols.names) == ["ETHUSDT", "BTCUSDT"]
    by_symbol: dict[str, list[int]] = {}
    for c in chunks:
        for sid, tid in zip(c.ticks.symbol_id.tolist(), c.ticks.trade_id.tolist(), strict=True):
            by_symbol.setdefault(feed.symbols.name(sid), []).append(tid)
    assert by_symbol == {"ETHUSDT": list(range(1, 31)), "BTCUSDT": list(range(1, 21))}
    beats = feed.heartbeats()
    assert set(beats) == {"feed:ccxt:okx", "feed:binance-ws"} and all(beats.values())
    assert set(feed.stats()["sources"]) == {"ccxt:okx", "binance-ws"}


def test_a_symbol_two_venues_share_is_refused_naming_both():
    with pytest.raises(ValueError, match="BTCUSDT comes from both ccxt:okx and binance-ws"):
        build_feeds(_specs("ws://127.0.0.1:1/ws/v5", "ws://127.0.0.1:1", "BTC/USDT"))


def test_one_venue_failing_ends_the_feed_with_its_error():
    """Fail closed: a partial market view must not pass for a whole one."""
    from tripwire.adapters.live import Backoff, LiveFeedError

    async def run():
        async with BinanceReplayServer(trade_frames("btcusdt", range(1, 5)), [Session()]) as bn:
            specs = _specs("ws://127.0.0.1:1/ws/v5", bn.url)
            specs[0].options["backoff"] = Backoff(base_s=0.01, cap_s=0.02, max_attempts=1)
            await collect(build_feeds(specs), lambda c: False)

    with pytest.raises(LiveFeedError, match="gave up"):
        asyncio.run(run())


def test_specs_and_registry_refuse_what_they_cannot_build():
    assert parse_spec("binance=btcusdt@trade").symbols == ("btcusdt@trade",)
    with pytest.raises(ValueError, match="unknown live source 'kraken'"):
        parse_spec("kraken=BTC/USD")
    with pytest.raises(ValueError, match="already registered"):
        register("binance", lambda spec: None)
    with pytest.raises(ValueError, match="a source is listed twice"):
        build_feeds([SourceSpec("binance", ("a@trade",)), SourceSpec("binance", ("b@trade",))])
    with pytest.raises(ValueError, match="source ccxt:okx: ccxt symbols are unified"):
        build_feeds([SourceSpec("ccxt:okx", ("BTCUSDT",))])
