"""The feed conformance suite: what every live feed adapter must do, against its loopback server.

Each test here takes a :class:`VenueKit` (how to build the venue's loopback server, frames
and feed) and checks one behaviour a user relies on:

1. every trade delivered once, in order, with the exchange's time (``ts_ns``) and the arrival
   time from the feed's clock (``recv_ns``) both kept;
2. after a server close with an overlapping resume: the feed reconnects, subscribes again
   (venues that subscribe by message), and no trade is lost or doubled (the replayed ones
   are ``duplicate`` dead letters);
3. after a dropped connection that resumes later: the missing trade ids are a reported gap;
4. garbage frames become dead letters with a reason and a detail, and the feed goes on;
5. a silent connection is noticed (idle timeout), counted, and reconnected;
6. reconnecting uses capped exponential backoff with full jitter, and gives up after
   ``max_attempts`` with a ``ConnectionError`` naming why.

How an adapter plugs in: write ``tests/adapters/<venue>/kit.py`` defining ``KIT`` (a
:class:`VenueKit`). ``tests/adapters/test_conformance.py`` finds every such module and runs
all the tests above for it; nothing else is edited. The kit's server is a
:class:`tests.adapters.loopback.ReplayServer` subclass speaking the venue's request protocol
(see ``tests/adapters/ccxt/okx_server.py``). The feed must be a
:class:`tripwire.feeds.base.Feed` whose ``stats()`` has ``reconnects``, ``disconnects``
(reason -> count), ``gaps``, ``missing_trade_ids``, ``dead`` (reason -> count),
``connect_failures`` and ``subscribe_requests`` — subclassing
:class:`tripwire.adapters.live.LiveTradeFeed` gives all of that. Trade frames carry
consecutive integer trade ids ``ids`` with exchange time ``ts0_ms + id`` milliseconds.
A venue without integer trade ids sets ``trade_ids=False``: tests 2-3 then check counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tests.adapters.loopback import ReplayServer, Session, Then

TS0_MS = 1_700_000_000_000
CLOCK0_NS = 2_000_000_000_000_000_000


@dataclass(frozen=True)
class VenueKit:
    """What the suite needs to know of one venue.

    ``server(frames, sessions)`` -> an unstarted ReplayServer; ``trades(ids)`` -> frames of
    consecutive trades of ``symbol``; ``feed(url, **options)`` -> the feed, where options are
    ``idle_timeout``, ``backoff``, ``rng``, ``clock``, ``max_delay_ms`` (all must be honoured);
    ``url(server)`` -> what ``feed`` connects to; ``garbage``: frames that must each become at
    least one dead letter; ``subscribes``: the venue subscribes by a message on each connection.
    """

    name: str
    symbol: str  # the tripwire symbol name the feed delivers
    server: Callable[[Sequence[str | bytes], Sequence[Session]], ReplayServer]
    trades: Callable[[Sequence[int]], list[str]]
    feed: Callable[..., Any]
    url: Callable[[ReplayServer], str]
    garbage: tuple[str | bytes, ...]
    subscribes: bool = True
    trade_ids: bool = True


class CountingClock:
    """A clock that moves 1 µs per reading: recorded times are traceable to it."""

    def __init__(self, start_ns: int = CLOCK0_NS) -> None:
        self.now = start_ns

    def now_ns(self) -> int:
        self.now += 1_000
        return self.now


class RecordingRandom(random.Random):
    """Records every ``uniform(a, b)`` draw: the backoff's jitter window and its value."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.draws: list[tuple[float, float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        value = super().uniform(a, b)
        self.draws.append((a, b, value))
        return value


def options(**over: Any) -> dict[str, Any]:
    """Fast settings for loopback runs (generous where a loaded CI machine could fake a fault)."""
    from tripwire.adapters.live import Backoff

    base = {
        "idle_timeout": 5.0,
        "max_delay_ms": 10,
        "backoff": Backoff(base_s=0.01, cap_s=0.05, max_attempts=20),
        "rng": random.Random(1),
        "clock": CountingClock(),
    }
    return base | over


async def collect(feed, until, timeout: float = 30.0) -> list:
    """Chunks until ``until(chunks)`` holds; the feed is closed on the way out."""
    chunks: list = []
    try:
        async with contextlib.aclosing(feed.chunks()) as stream, asyncio.timeout(timeout):
            async for chunk in stream:
                chunks.append(chunk)
                if until(chunks):
                    break
    finally:
        await feed.aclose()
    return chunks


def delivered(chunks) -> list[int]:
    return [t for c in chunks for t in c.ticks.trade_id.tolist()]


def n_ticks(chunks) -> int:
    return sum(len(c.ticks) for c in chunks)


def dead(chunks, reason=None) -> list:
    return [d for c in chunks for d in c.dead if reason is None or d.reason == reason]


def has(kit: VenueKit, ids: Sequence[int]):
    wanted = set(ids)
    if kit.trade_ids:
        return lambda chunks: wanted <= set(delivered(chunks))
    return lambda chunks: n_ticks(chunks) >= len(wanted)


def refused_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- the checks


async def check_delivery_and_times(kit: VenueKit) -> None:
    ids = list(range(1, 21))
    async with kit.server(kit.trades(ids), [Session()]) as server:
        clock = CountingClock()
        feed = kit.feed(kit.url(server), **options(clock=clock))
        chunks = await collect(feed, has(kit, ids))
    ticks = [c.ticks for c in chunks if len(c.ticks)]
    tids = delivered(chunks)
    if kit.trade_ids:
        assert tids == ids, f"{kit.name}: delivered {tids}"
    ts = [t for b in ticks for t in b.ts_ns.tolist()]
    recv = [t for b in ticks for t in b.recv_ns.tolist()]
    assert ts == [(TS0_MS + i) * 1_000_000 for i in ids], f"{kit.name}: exchange times {ts[:3]}"
    assert all(CLOCK0_NS < r <= clock.now for r in recv), f"{kit.name}: arrival times {recv[:3]}"
    assert recv == sorted(recv)
    assert {feed.symbols.name(int(s)) for b in ticks for s in b.symbol_id} == {kit.symbol}
    assert dead(chunks) == []


async def check_reconnect_overlap(kit: VenueKit, then: Then) -> None:
    ids = list(range(1, 21))
    sessions = [Session(0, 10, then), Session(5, None)]  # resume 5 trades earlier
    async with kit.server(kit.trades(ids), sessions) as server:
        feed = kit.feed(kit.url(server), **options())
        chunks = await collect(feed, lambda c: has(kit, ids)(c) and len(dead(c)) >= 5)
        connections = list(server.connections)
    s = feed.stats()
    assert s["reconnects"] >= 1, s
    if kit.trade_ids:
        assert delivered(chunks) == ids, f"{kit.name}: lost or doubled: {delivered(chunks)}"
    assert len(dead(chunks, "duplicate")) == 5, [d.detail for d in dead(chunks)]
    if kit.subscribes:
        assert all(c.subscribed for c in connections), "every connection must subscribe again"
        assert s["subscribe_requests"] >= 2


async def check_gap(kit: VenueKit) -> None:
    ids = list(range(1, 21))
    sessions = [Session(0, 10, Then.DROP), Session(13, None)]  # ids 11..13 never sent
    async with kit.server(kit.trades(ids), sessions) as server:
        feed = kit.feed(kit.url(server), **options())
        chunks = await collect(feed, has(kit, [*range(1, 11), *range(14, 21)]))
    s = feed.stats()
    if kit.trade_ids:
        assert delivered(chunks) == [*range(1, 11), *range(14, 21)]
        assert s["gaps"] == 1 and s["missing_trade_ids"] == 3, s
        gaps = [g for c in chunks for g in c.gaps]
        assert len(gaps) == 1, gaps


async def check_garbage(kit: VenueKit) -> None:
    good = kit.trades(range(1, 11))
    frames: list[str | bytes] = []
    for i, frame in enumerate(good):
        frames.append(frame)
        if i < len(kit.garbage):
            frames.append(kit.garbage[i])
    async with kit.server(frames, [Session()]) as server:
        feed = kit.feed(kit.url(server), **options())
        chunks = await collect(
            feed, lambda c: has(kit, range(1, 11))(c) and len(dead(c)) >= len(kit.garbage)
        )
    letters = dead(chunks)
    assert len(letters) >= len(kit.garbage)
    for d in letters:
        assert d.reason and d.detail and d.raw and d.source == feed.source, d
    if kit.trade_ids:
        assert delivered(chunks) == list(range(1, 11))
    assert sum(feed.stats()["dead"].values()) >= len(kit.garbage)


async def check_silence(kit: VenueKit) -> None:
    ids = list(range(1, 11))
    sessions = [Session(0, 5, Then.SILENT), Session(5, None)]
    async with kit.server(kit.trades(ids), sessions) as server:
        feed = kit.feed(kit.url(server), **options(idle_timeout=0.5))
        chunks = await collect(feed, has(kit, ids))
    s = feed.stats()
    assert s["disconnects"].get("idle_timeout", 0) >= 1, s["disconnects"]
    assert s["reconnects"] >= 1
    if kit.trade_ids:
        assert delivered(chunks) == ids


async def check_backoff(kit: VenueKit) -> None:
    from tripwire.adapters.live import Backoff

    rng = RecordingRandom(5)
    backoff = Backoff(base_s=0.01, cap_s=0.03, max_attempts=4)
    feed = kit.feed(kit.url(_Refused(refused_port())), **options(backoff=backoff, rng=rng))
    try:
        async with asyncio.timeout(30):
            async for _ in feed.chunks():
                pass
    except ConnectionError as exc:
        assert "gave up after 5 failed" in str(exc), exc
    else:
        raise AssertionError(f"{kit.name}: a feed that cannot connect must give up")
    finally:
        await feed.aclose()
    assert feed.stats()["connect_failures"] == 5
    ceilings = [b for _, b, _ in rng.draws]
    assert ceilings == [0.02, 0.03, 0.03, 0.03], ceilings  # doubling from base, then capped
    values = [v for _, _, v in rng.draws]
    assert all(0 <= v <= c for v, c in zip(values, ceilings, strict=True))
    assert len(set(values)) == len(values), "full jitter: no two waits alike"


class _Refused:
    """Stands in for a server in ``kit.url``: only its port is used."""

    def __init__(self, port: int) -> None:
        self.port = port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


CHECKS = {
    "delivery_and_times": check_delivery_and_times,
    "reconnect_after_close": lambda kit: check_reconnect_overlap(kit, Then.CLOSE),
    "reconnect_after_drop": lambda kit: check_reconnect_overlap(kit, Then.DROP),
    "gap": check_gap,
    "garbage": check_garbage,
    "silence": check_silence,
    "backoff": check_backoff,
}
