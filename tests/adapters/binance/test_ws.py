"""BinanceWebSocketFeed against a real loopback WebSocket server: delivery, faults, bounds."""

import asyncio
import contextlib
import json
import random
from collections import Counter

import pytest

from tests.adapters.binance.server import (
    BinanceReplayServer,
    Session,
    Then,
    combined,
    trade_frames,
    trade_payload,
)
from tripwire.adapters.binance.websocket import BinanceFeedError, BinanceWebSocketFeed
from tripwire.adapters.live import Backoff, backoff_delay
from tripwire.feeds.base import Feed, FeedChunk
from tripwire.feeds.validate import Gap
from tripwire.model import DeadReason

network = pytest.mark.timeout(60)


class CountingClock:
    """A clock that moves 1 µs per reading: recorded times are traceable to it."""

    def __init__(self, start_ns: int = 2_000_000_000_000_000_000) -> None:
        self.start_ns = start_ns
        self.now = start_ns

    def now_ns(self) -> int:
        self.now += 1_000
        return self.now


def make_feed(server, streams=("btcusdt@trade",), **kw) -> BinanceWebSocketFeed:
    options = {
        "base_url": server.url,
        "proxy": None,  # loopback: never through an environment proxy
        "ping_interval": 0.2,
        "ping_timeout": 2.0,  # generous: a loaded CI machine must not fake a dead server
        "idle_timeout": 5.0,
        "close_timeout": 0.5,
        "max_delay_ms": 10,
        "backoff": Backoff(base_s=0.01, cap_s=0.05, max_attempts=20),
        "rng": random.Random(1),
    }
    return BinanceWebSocketFeed(list(streams), **(options | kw))


async def collect(feed, until, timeout=30.0) -> list[FeedChunk]:
    """Chunks until ``until(chunks)`` holds; the feed is closed on the way out."""
    chunks: list[FeedChunk] = []
    async with contextlib.aclosing(feed.chunks()) as stream, asyncio.timeout(timeout):
        async for chunk in stream:
            chunks.append(chunk)
            if until(chunks):
                break
    return chunks


async def wait_until(predicate, timeout=10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def delivered(chunks, symbol_id=None) -> list[int]:
    out = []
    for c in chunks:
        tids = c.ticks.trade_id
        if symbol_id is not None:
            tids = tids[c.ticks.symbol_id == symbol_id]
        out.extend(tids.tolist())
    return out


def rows(chunks) -> list[tuple[int, int]]:
    return [
        (s, t)
        for c in chunks
        for s, t in zip(c.ticks.symbol_id.tolist(), c.ticks.trade_id.tolist(), strict=True)
    ]


def dead(chunks, reason=None):
    return [d for c in chunks for d in c.dead if reason is None or d.reason is reason]


def dead_tid(letter) -> int:
    data = json.loads(letter.raw)["data"]
    return data.get("t", data.get("a"))


def has(ids):
    wanted = set(ids)
    return lambda chunks: wanted <= set(delivered(chunks))


# ----------------------------------------------------------------------------- delivery


@network
def test_all_frames_delivered_in_order_with_values_and_arrival_times():
    btc = trade_frames("btcusdt", range(100))
    eth = trade_frames("ethusdt", range(500, 600), kind="aggTrade")
    frames = [f for pair in zip(btc, eth, strict=True) for f in pair]
    clock = CountingClock()

    async def scenario():
        async with BinanceReplayServer(frames) as server:
            feed = make_feed(
                server, ["btcusdt@trade", "ethusdt@aggTrade"], max_batch=16, clock=clock
            )
            connected_seen = []

            def until(chunks):
                connected_seen.append(feed.stats()["connected"])
                return len(delivered(chunks)) >= 200

            chunks = await collect(feed, until)
            return feed, chunks, server, connected_seen

    feed, chunks, server, connected_seen = asyncio.run(scenario())
    assert connected_seen[0] is True
    assert rows(chunks) == [(s, t) for t in range(100) for s, t in ((0, t), (1, 500 + t))]
    assert all(len(c) <= 16 for c in chunks)
    assert dead(chunks) == [] and all(c.gaps == [] for c in chunks)
    first = chunks[0].ticks
    assert (first.price[0], first.qty[0], first.side[0], first.ts_ns[0]) == (
        100.0,
        1.0,
        1,
        1_700_000_000_000_000_000,
    )
    assert (first.trade_id[1], first.side[1], first.price[1]) == (500, 1, 105.0)
    recv = [r for c in chunks for r in c.ticks.recv_ns.tolist()]
    assert recv == sorted(recv) and clock.start_ns < recv[0] and recv[-1] <= clock.now
    stats = feed.stats()
    assert (stats["messages"], stats["ticks"], stats["reconnects"], stats["dead"]) == (
        200,
        200,
        0,
        {},
    )
    assert set(stats["last_message_ns_by_symbol"]) == {"BTCUSDT", "ETHUSDT"}
    assert stats["connection"]["messages"] == 200 and stats["last_message_ns"] > clock.start_ns
    assert stats["connected"] is False  # closed with the stream
    assert server.connections[0].path == "/stream?streams=btcusdt@trade/ethusdt@aggTrade"


@network
def test_microsecond_time_unit_is_requested_and_applied():
    frames = [combined(trade_payload("btcusdt", i, ts=1_700_000_000_000_123 + i)) for i in range(3)]

    async def scenario():
        async with BinanceReplayServer(frames) as server:
            feed = make_feed(server, time_unit="us")
            return await collect(feed, has(range(3))), server

    chunks, server = asyncio.run(scenario())
    assert server.connections[0].path.endswith("&timeUnit=MICROSECOND")
    ts = [t for c in chunks for t in c.ticks.ts_ns.tolist()]
    assert ts == [1_700_000_000_000_123_000 + 1_000 * i for i in range(3)]


# ----------------------------------------------------------------------------- reconnects


@network
@pytest.mark.parametrize(
    ("then", "reason"), [(Then.DROP, "connection_lost"), (Then.CLOSE, "closed_by_server")]
)
def test_overlapping_resume_loses_and_doubles_nothing(then, reason):
    frames = trade_frames("btcusdt", range(100))

    async def scenario():
        sessions = [Session(end=60, then=then), Session(start=40)]
        async with BinanceReplayServer(frames, sessions) as server:
            feed = make_feed(server)
            return feed, await collect(feed, has(range(100)))

    feed, chunks = asyncio.run(scenario())
    assert delivered(chunks) == list(range(100))
    dups = dead(chunks, DeadReason.DUPLICATE)
    assert [dead_tid(d) for d in dups] == list(range(40, 60))
    assert all(d.symbol == "BTCUSDT" and "trade_id=" in d.detail for d in dups)
    assert dead(chunks) == dups and all(c.gaps == [] for c in chunks)
    stats = feed.stats()
    assert stats["reconnects"] == 1 and stats["disconnects"] == {reason: 1}
    assert stats["dead"] == {"duplicate": 20} and stats["ticks"] == 100
    assert [c["close_reason"] for c in stats["history"]] == [reason, "stopped"]


@network
def test_resume_after_a_gap_reports_the_missing_trade_ids():
    frames = trade_frames("btcusdt", range(100))

    async def scenario():
        sessions = [Session(end=50, then=Then.DROP), Session(start=57)]
        async with BinanceReplayServer(frames, sessions) as server:
            feed = make_feed(server)
            return feed, await collect(feed, has([99]))

    feed, chunks = asyncio.run(scenario())
    assert delivered(chunks) == [*range(50), *range(57, 100)]
    gaps = [g for c in chunks for g in c.gaps]
    assert [(g.symbol_id, g.after_trade_id, g.before_trade_id, g.missing) for g in gaps] == [
        (0, 49, 57, 7)
    ]
    assert isinstance(gaps[0], Gap) and gaps[0].source == "binance-ws"
    stats = feed.stats()
    assert (stats["gaps"], stats["missing_trade_ids"], stats["reconnects"]) == (1, 7, 1)


@network
def test_server_that_stops_answering_pings_is_dropped_and_reconnected():
    frames = trade_frames("btcusdt", range(40))

    async def scenario():
        sessions = [Session(end=20, then=Then.STALL), Session(start=20)]
        async with BinanceReplayServer(frames, sessions) as server:
            # No idle timeout: only the client's own pings can notice the stalled server.
            feed = make_feed(server, idle_timeout=None, ping_timeout=0.3)
            return feed, await collect(feed, has(range(40))), server

    feed, chunks, server = asyncio.run(scenario())
    assert delivered(chunks) == list(range(40))
    stats = feed.stats()
    # Only ping timeouts ended connections (a loaded machine may add one more).
    assert set(stats["disconnects"]) == {"ping_timeout"} and stats["reconnects"] >= 1
    assert [c.ended for c in server.connections][:1] == ["stall"]
    assert len(server.connections) == 2


@network
def test_silent_connection_hits_the_idle_timeout_and_reconnects():
    frames = trade_frames("btcusdt", range(30))

    async def scenario():
        sessions = [Session(end=10, then=Then.SILENT), Session()]
        async with BinanceReplayServer(frames, sessions) as server:
            # Pings are answered on a silent connection: the idle timeout must catch it.
            feed = make_feed(server, idle_timeout=0.3)
            return feed, await collect(feed, has(range(30)))

    feed, chunks = asyncio.run(scenario())
    assert delivered(chunks) == list(range(30))
    assert set(feed.stats()["disconnects"]) == {"idle_timeout"}


@network
def test_subscribe_mode_resubscribes_after_reconnect():
    btc, eth = trade_frames("btcusdt", range(30)), trade_frames("ethusdt", range(30))
    sol = trade_frames("solusdt", range(30))  # not subscribed: the server filters it out
    frames = [f for triple in zip(btc, eth, sol, strict=True) for f in triple]
    streams = ["btcusdt@trade", "ethusdt@trade"]

    async def scenario():
        sessions = [Session(end=45, then=Then.DROP), Session()]
        async with BinanceReplayServer(frames, sessions, require_subscribe=True) as server:
            feed = make_feed(server, streams, subscribe=True)
            done = lambda ch: delivered(ch, 0)[-1:] == [29] and delivered(ch, 1)[-1:] == [29]  # noqa: E731
            return feed, await collect(feed, done), server

    feed, chunks, server = asyncio.run(scenario())
    assert [c.path for c in server.connections] == ["/stream", "/stream"]
    assert [c.requests for c in server.connections] == [
        [{"method": "SUBSCRIBE", "params": streams, "id": 1}],
        [{"method": "SUBSCRIBE", "params": streams, "id": 2}],
    ]
    assert delivered(chunks, 0) == list(range(30)) and delivered(chunks, 1) == list(range(30))
    stats = feed.stats()
    assert (stats["subscribe_requests"], stats["replies"], stats["reply_errors"]) == (2, 2, 0)
    assert stats["reconnects"] == 1 and dead(chunks, DeadReason.MALFORMED) == []


@network
def test_gives_up_after_max_attempts_with_an_error():
    async def scenario():
        async with BinanceReplayServer([]) as server:
            url = server.url
        # The server is gone: every connection attempt is refused.
        feed = BinanceWebSocketFeed(
            ["btcusdt@trade"],
            base_url=url,
            proxy=None,
            open_timeout=2,
            backoff=Backoff(base_s=0.001, cap_s=0.002, max_attempts=2),
            rng=random.Random(3),
        )
        with pytest.raises(BinanceFeedError, match="gave up after 3 failed"):
            await collect(feed, lambda chunks: False)
        return feed

    stats = asyncio.run(scenario()).stats()
    assert stats["connect_failures"] == 3 and stats["connections"] == 0
    assert stats["disconnects"] == {"connect_failed": 3}


# ----------------------------------------------------------------------------- bad input


@network
def test_garbage_frames_become_dead_letters_and_the_feed_goes_on():
    good = trade_frames("btcusdt", range(10))
    bad = {
        "{not json": (DeadReason.MALFORMED, "not JSON"),
        "[]": (DeadReason.MALFORMED, "expected a JSON object"),
        combined(trade_payload("btcusdt", 100, price="abc")): (
            DeadReason.MALFORMED,
            "price 'abc' is not a number",
        ),
        combined({k: v for k, v in trade_payload("btcusdt", 101).items() if k != "q"}): (
            DeadReason.MALFORMED,
            "no 'q'",
        ),
        combined(trade_payload("btcusdt", 102, price="NaN")): (DeadReason.BAD_PRICE, "nan"),
        combined(trade_payload("btcusdt", 103, price="-1")): (DeadReason.BAD_PRICE, "-1.0"),
        combined(trade_payload("btcusdt", 104, price="inf")): (DeadReason.BAD_PRICE, "inf"),
        combined(trade_payload("btcusdt", 105, qty="-2")): (DeadReason.BAD_QTY, "-2.0"),
    }
    # Replies are neither ticks nor dead letters; a refused request is counted.
    replies = ['{"result":null,"id":1}', '{"error":{"code":2,"msg":"Invalid request"},"id":2}']
    frames = [*good[:5], *bad, *replies, good[5].encode(), *good[6:]]  # one binary frame too

    async def scenario():
        async with BinanceReplayServer(frames) as server:
            feed = make_feed(server)
            return feed, await collect(feed, has(range(10)))

    feed, chunks = asyncio.run(scenario())
    assert delivered(chunks) == list(range(10))
    letters = dead(chunks)
    assert {d.raw: (d.reason, d.detail) for d in letters}.keys() == bad.keys()
    for d in letters:
        reason, detail = bad[d.raw]
        assert d.reason is reason and detail in d.detail and d.source == "binance-ws"
        if reason in (DeadReason.BAD_PRICE, DeadReason.BAD_QTY):
            assert d.detail.startswith(("price=", "qty=")) and d.symbol == "BTCUSDT"
    stats = feed.stats()
    assert stats["dead"] == {"malformed": 4, "bad_price": 3, "bad_qty": 1}
    assert (stats["replies"], stats["reply_errors"]) == (2, 1)
    assert stats["messages"] == len(frames) and stats["gaps"] == 0


@network
def test_frame_for_an_unknown_symbol_is_dead_lettered():
    frames = trade_frames("btcusdt", range(3))
    stranger = combined(trade_payload("xrpusdt", 7))
    frames = [*frames, stranger, *trade_frames("btcusdt", range(3, 5))]

    async def scenario():
        async with BinanceReplayServer(frames) as server:
            feed = make_feed(server)
            return feed, await collect(feed, has(range(5)))

    feed, chunks = asyncio.run(scenario())
    assert delivered(chunks) == list(range(5))
    [letter] = dead(chunks)
    assert (letter.reason, letter.symbol, letter.raw) == (
        DeadReason.UNKNOWN_SYMBOL,
        "XRPUSDT",
        stranger,
    )
    assert "XRPUSDT" in letter.detail
    stats = feed.stats()
    assert stats["dead"] == {"unknown_symbol": 1}
    assert list(stats["last_message_ns_by_symbol"]) == ["BTCUSDT"]


@network
def test_oversized_frame_drops_the_connection_and_its_trade_becomes_a_gap():
    frames = trade_frames("btcusdt", range(10))
    big = trade_payload("btcusdt", 5) | {"pad": "x" * 4000}
    frames[5] = combined(big)

    async def scenario():
        sessions = [Session(end=6), Session(start=6)]
        async with BinanceReplayServer(frames, sessions) as server:
            feed = make_feed(server, max_frame_bytes=1024)
            return feed, await collect(feed, has([9]))

    feed, chunks = asyncio.run(scenario())
    assert delivered(chunks) == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert [g.missing for c in chunks for g in c.gaps] == [1]
    assert feed.stats()["disconnects"] == {"frame_too_big": 1}


# ----------------------------------------------------------------------------- batching and bounds


@network
def test_rows_are_released_after_max_delay_without_a_full_batch():
    frames = trade_frames("btcusdt", range(10))

    async def scenario():
        async with BinanceReplayServer(frames) as server:
            server.gate(3)  # never opened: only the delay can release frames 0..2
            feed = make_feed(server, max_batch=1000, max_buffered_rows=1000, max_delay_ms=20)
            return await collect(feed, has(range(3)))

    chunks = asyncio.run(scenario())
    assert delivered(chunks) == [0, 1, 2]


@network
def test_full_batches_are_released_and_stop_flushes_the_rest():
    frames = trade_frames("btcusdt", range(100))

    async def scenario():
        async with BinanceReplayServer(frames) as server:
            # A delay far beyond the test's timeout: only full batches can be released.
            feed = make_feed(server, max_batch=7, max_delay_ms=600_000)
            chunks = []
            async with contextlib.aclosing(feed.chunks()) as stream, asyncio.timeout(30):
                async for chunk in stream:
                    chunks.append(chunk)
                    if len(chunks) == 14:
                        await wait_until(lambda: feed.stats()["buffered_rows"] == 2)
                        feed.stop()
            return feed, chunks

    feed, chunks = asyncio.run(scenario())
    assert [len(c) for c in chunks] == [7] * 14 + [2]
    assert delivered(chunks) == list(range(100))
    assert feed.stats()["connected"] is False


@network
def test_slow_consumer_sheds_counted_rows_and_reports_them_as_gaps():
    frames = trade_frames("btcusdt", range(51))

    async def scenario():
        async with BinanceReplayServer(frames) as server:
            release_last = server.gate(50)
            feed = make_feed(server, max_batch=5, max_buffered_rows=5, max_delay_ms=20)
            chunks = []
            async with contextlib.aclosing(feed.chunks()) as stream, asyncio.timeout(30):
                chunks.append(await anext(stream))
                # The consumer stalls while 50 frames arrive: at most 5 rows fit.
                await wait_until(lambda: feed.stats()["messages"] >= 50)
                while feed.stats()["buffered_rows"] or feed.stats()["buffered_dead"]:
                    chunks.append(await anext(stream))
                release_last.set()
                while 50 not in delivered(chunks):
                    chunks.append(await anext(stream))
            return feed, chunks

    feed, chunks = asyncio.run(scenario())
    got = delivered(chunks)
    shed = [dead_tid(d) for d in dead(chunks, DeadReason.SHED)]
    assert got == sorted(set(got)) and got[-1] == 50
    assert len(shed) >= 50 - 10  # two batches of 5 at most were buffered
    assert sorted(got + shed) == list(range(51))
    assert sum(g.missing for c in chunks for g in c.gaps) == len(shed)
    stats = feed.stats()
    assert stats["shed"] == len(shed) and stats["dead"] == {"shed": len(shed)}
    assert all("row buffer full" in d.detail for d in dead(chunks, DeadReason.SHED))


@network
def test_pending_dead_letters_are_bounded_and_the_overflow_counted():
    frames = [f"garbage {i}" for i in range(10)]

    async def scenario():
        async with BinanceReplayServer(frames) as server:
            feed = make_feed(server, max_buffered_dead=2, max_delay_ms=600_000)
            async with contextlib.aclosing(feed.chunks()) as stream, asyncio.timeout(30):
                first = asyncio.ensure_future(anext(stream))
                await wait_until(lambda: feed.stats()["messages"] == 10)
                feed.stop()
                chunk = await first
            return feed, chunk

    feed, chunk = asyncio.run(scenario())
    assert [d.raw for d in chunk.dead] == ["garbage 0", "garbage 1"]
    stats = feed.stats()
    assert stats["dead_dropped"] == 8 and stats["dead"] == {"malformed": 10}


# ----------------------------------------------------------------------------- configuration


def test_streams_make_the_symbol_table_and_url():
    feed = BinanceWebSocketFeed(["btcusdt@trade", "ETHUSDT@aggtrade"])
    assert isinstance(feed, Feed)
    assert feed.symbols.names == ("BTCUSDT", "ETHUSDT")
    assert feed.url == "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/ethusdt@aggTrade"
    sub = BinanceWebSocketFeed(["btcusdt@trade"], subscribe=True, base_url="ws://h:1/")
    assert sub.url == "ws://h:1/stream"


@pytest.mark.parametrize(
    ("streams", "kw", "match"),
    [
        (
            ["btcusdt@trade", "btcusdt@aggTrade"],
            {},
            "BTCUSDT is subscribed as both trade and aggTrade",
        ),
        (["btcusdt@trade", "BTCUSDT@trade"], {}, "listed twice"),
        ([], {}, "non-empty list"),
        ("btcusdt@trade", {}, "non-empty list"),
        (["btcusdt@depth"], {}, "only 'trade' and 'aggTrade'"),
        (["btcusdt@trade"], {"base_url": "http://x"}, "base_url"),
        (["btcusdt@trade"], {"max_batch": 0}, "max_batch"),
        (["btcusdt@trade"], {"max_frame_bytes": 1.5}, "max_frame_bytes must be an integer"),
        (["btcusdt@trade"], {"max_batch": 10, "max_buffered_rows": 5}, "max_buffered_rows"),
        (["btcusdt@trade"], {"ping_timeout": -1}, "ping_timeout"),
        (["btcusdt@trade"], {"time_unit": "s"}, "TimeUnit"),
    ],
)
def test_bad_configuration_is_refused_with_its_name(streams, kw, match):
    with pytest.raises(ValueError, match=match):
        BinanceWebSocketFeed(streams, **kw)


def test_chunks_can_be_iterated_once():
    async def scenario():
        feed = BinanceWebSocketFeed(["btcusdt@trade"])
        feed.stop()  # stopped before it starts: ends at once, without connecting
        assert [c async for c in feed.chunks()] == []
        with pytest.raises(RuntimeError, match="only once"):
            await anext(feed.chunks())
        return feed

    assert asyncio.run(scenario()).stats()["connections"] == 0


# ----------------------------------------------------------------------------- backoff


def test_backoff_is_capped_exponential_with_full_jitter():
    rng = random.Random(42)
    for attempt in range(1, 16):
        ceiling = min(2.0, 0.1 * 2 ** (attempt - 1))
        draws = [backoff_delay(attempt, base_s=0.1, cap_s=2.0, rng=rng) for _ in range(300)]
        assert all(0.0 <= d <= ceiling for d in draws)
        # Full jitter: spread over the whole [0, ceiling] range, not clustered at the top.
        assert min(draws) < 0.1 * ceiling and max(draws) > 0.9 * ceiling
    assert backoff_delay(10_000, base_s=0.1, cap_s=2.0, rng=rng) <= 2.0  # no overflow


def test_backoff_is_reproducible_with_a_seeded_rng():
    policy = Backoff(base_s=0.5, cap_s=8.0)

    def seq(seed):
        rng = random.Random(seed)
        return [policy.delay(a, rng) for a in range(1, 10)]

    assert seq(7) == seq(7) and seq(7) != seq(8)
    assert len(Counter(seq(7))) == 9  # jittered: no two equal


@pytest.mark.parametrize("kw", [{"base_s": 0}, {"base_s": 2, "cap_s": 1}, {"max_attempts": -1}])
def test_backoff_refuses_bad_settings(kw):
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kw)
    with pytest.raises(ValueError, match="1-based"):
        backoff_delay(0, base_s=1, cap_s=1, rng=random.Random())
