"""The SSE stream wakes on PostgreSQL NOTIFY (issue 15, item 4).

The API app (serve_apps.api.build_app) runs on uvicorn on 127.0.0.1 over a real private
PostgreSQL database; rows are written from another connection, as another replica would.
Bounds here are generous timeouts, never speed assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest

from serve_apps.lazy_store import LazyStore
from tripwire.model import SymbolTable, new_id
from tripwire.store.decisions import MemoryDecisionStore
from tripwire.store.pg_decisions import PgDecisionStore

WAIT_S = 30.0  # a bound for a row to reach a stream on a loaded 2-core machine


class CountingStore:
    """The app's store, counting every call the app makes of it (each is >= 1 query)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        target = getattr(self._inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return await target(*args, **kwargs)

        return call


@pytest.fixture
def stream_api(migrated_db: str) -> Iterator[SimpleNamespace]:
    import uvicorn

    from serve_apps.api import build_app
    from tests.serve_apps.conftest import free_port

    store = CountingStore(LazyStore(migrated_db))  # connects on uvicorn's loop
    app = build_app(SimpleNamespace(), store, SymbolTable(["BTCUSDT"]),
                    token=secrets.token_hex(8))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}", dsn=migrated_db, store=store,
                              hub=app.state.stream_hub)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class Stream:
    """One SSE client: its events (name, data) as they arrive."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.arrived = asyncio.Event()

    async def read(self, client: httpx.AsyncClient, url: str) -> None:
        async with client.stream("GET", f"{url}/v1/stream") as resp:
            assert resp.status_code == 200
            name = None
            async for line in resp.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name is not None:
                    self.events.append((name, json.loads(line[6:])))
                    self.arrived.set()
                    name = None

    async def wait_for(self, check: Any, timeout_s: float = WAIT_S) -> tuple[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            for event in self.events:
                if check(event):
                    return event
            left = deadline - time.monotonic()
            assert left > 0, f"not seen within {timeout_s} s: {self.events[-10:]}"
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                pass


@contextlib.asynccontextmanager
async def _streams(url: str, n: int) -> AsyncIterator[list[Stream]]:
    streams = [Stream() for _ in range(n)]
    async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=None)) as client:
        tasks = [asyncio.create_task(s.read(client, url)) for s in streams]
        try:
            # Each stream has read its first rows: the halt flag comes in every snapshot.
            for s in streams:
                await s.wait_for(lambda e: e[0] == "halt")
            yield streams
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _is(event: str, row_id: str) -> Any:
    return lambda e: e[0] == event and e[1].get("id") == row_id


def test_an_incident_reaches_every_open_stream_after_its_insert(stream_api: Any) -> None:
    async def go() -> None:
        writer = await PgDecisionStore.connect(stream_api.dsn, max_size=1)
        try:
            async with _streams(stream_api.url, 3) as streams:
                incident = new_id()
                await writer.record_incident(incident, "BTCUSDT", time.time_ns(), "open", {})
                for s in streams:
                    _, row = await s.wait_for(_is("incident", incident))
                    assert row["symbol"] == "BTCUSDT" and row["status"] == "open"
                # A status change is sent again; an unchanged row is not.
                await writer.set_incident_status(incident, "triaged")
                for s in streams:
                    await s.wait_for(lambda e: e[0] == "incident" and e[1]["id"] == incident
                                     and e[1]["status"] == "triaged")
                    assert sum(1 for e in s.events if _is("incident", incident)(e)) == 2
        finally:
            await writer.close()

    asyncio.run(go())


def test_orders_fills_decisions_and_the_halt_are_announced(stream_api: Any) -> None:
    from tripwire.execution.base import (
        Fill,
        FillKind,
        Liquidity,
        Order,
        OrderRequest,
        OrderStatus,
        OrderType,
    )
    from tripwire.model import Side

    async def go() -> None:
        writer = await PgDecisionStore.connect(stream_api.dsn, max_size=1)
        now = time.time_ns()
        incident, decision = new_id(), new_id()
        cid = f"tw-{decision}-0"
        try:
            async with _streams(stream_api.url, 1) as (s,):
                await writer.record_incident(incident, "BTCUSDT", now, "open", {})
                await writer.record_proposal(
                    decision, incident_id=incident, verdict_id=None, symbol="BTCUSDT",
                    ts_ns=now, action="BUY", proposal_hash="h", revision=0, mode="DIRECT",
                    payload={})
                await s.wait_for(lambda e: _is("decision", decision)(e)
                                 and e[1]["outcome"] is None)
                await writer.set_outcome(decision, "EXECUTED", "", now)
                await s.wait_for(lambda e: _is("decision", decision)(e)
                                 and e[1]["outcome"] == "EXECUTED")
                req = OrderRequest(cid, "BTCUSDT", Side.BUY, 1.0, OrderType.MARKET)
                await writer.record_order(decision, "paper", Order(
                    cid, req, OrderStatus.PENDING, now, now, updated_ns=now))
                _, note = await s.wait_for(_is("order", cid))
                assert note["decision_id"] == decision
                await writer.record_fill(Fill(f"f-{decision}", cid, "BTCUSDT", Side.BUY, 1.0,
                                              100.0, 0.1, Liquidity.TAKER, FillKind.ORDER,
                                              now + 1))
                _, note = await s.wait_for(_is("fill", f"f-{decision}"))
                assert note["decision_id"] == decision and note["order_id"] == cid
                await writer.set_halt("stream test", "tester", now)
                await s.wait_for(lambda e: e[0] == "halt" and e[1]["halted"]
                                 and e[1]["reason"] == "stream test")
        finally:
            await writer.close()

    asyncio.run(go())


def test_open_streams_send_no_query_while_nothing_changes(stream_api: Any) -> None:
    async def go() -> None:
        async with _streams(stream_api.url, 8) as streams:
            await asyncio.sleep(0.5)  # the snapshots' reads are done
            before = list(stream_api.store.calls)
            await asyncio.sleep(3.0)  # six rounds of the old 0.5 s poll
            assert stream_api.store.calls == before
            assert stream_api.hub.stats["listens"] == 1  # one listener for all 8 streams
            assert stream_api.hub.stats["clients"] == len(streams)

    asyncio.run(go())


def test_the_stream_listens_again_after_its_connection_is_killed(stream_api: Any) -> None:
    async def go() -> None:
        writer = await PgDecisionStore.connect(stream_api.dsn, max_size=1)
        admin = await asyncpg.connect(stream_api.dsn)
        try:
            async with _streams(stream_api.url, 1) as (s,):
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'")
                assert killed == 1  # the replica's one listener
                # Written while nobody may listen: the refresh after the reconnect has it.
                missed = new_id()
                await writer.record_incident(missed, "BTCUSDT", time.time_ns(), "open", {})
                await s.wait_for(lambda e: e[0] == "refresh")
                await s.wait_for(_is("incident", missed))
                later = new_id()
                await writer.record_incident(later, "BTCUSDT", time.time_ns(), "open", {})
                await s.wait_for(_is("incident", later))
                assert stream_api.hub.stats["listens"] == 2
        finally:
            await admin.close()
            await writer.close()

    asyncio.run(go())


def test_the_memory_store_announces_in_process() -> None:
    """The local baseline and tests without PostgreSQL stream through the same hub."""
    from serve_apps.stream import StreamHub

    async def go() -> None:
        store = MemoryDecisionStore()
        hub = StreamHub(store, _empty)
        client = hub.subscribe()
        assert await hub.ready(5.0)
        await store.record_incident("i-1", "BTCUSDT", 1, "open", {})
        await store.set_halt("why", "me", 2)
        got = [await client.next(5.0), await client.next(5.0)]
        assert got[0][0] == "incident" and got[0][1]["id"] == "i-1"
        assert got[1] == ("halt", {"id": "flag", "halted": True, "reason": "why",
                                   "set_by": "me"})
        await hub.close()

    asyncio.run(go())


async def _empty() -> list:
    return []
