"""`tripwire ingest --source polymarket=...` end to end against a loopback market channel."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from tests.adapters.loopback import Session, Then
from tests.adapters.polymarket.server import NO, T0_MS, YES, PolymarketReplayServer, book, trade
from tripwire.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_polymarket_ingest_from_a_loopback_channel(ray_local, capsys):
    frames = [json.dumps([json.loads(book(YES)), json.loads(book(NO))])]
    frames += [trade(YES, f"0.{40 + i % 20}", "10", "BUY" if i % 2 else "SELL", T0_MS + i,
                     f"0x{i:064x}") for i in range(150)]
    frames += [trade(NO, "0.45", "3", "SELL", T0_MS + 500 + i, f"0xa{i:063x}")
               for i in range(50)]
    frames += ["{not json", trade(YES, "1.7", ms=T0_MS + 999)]
    ready = threading.Event()
    holder: dict = {}

    async def serve() -> None:
        async with PolymarketReplayServer(frames, [Session(then=Then.HOLD)],
                                          require_subscribe=True) as server:
            holder["url"] = server.url
            holder["stop"] = asyncio.Event()
            ready.set()
            await holder["stop"].wait()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        assert main(["ingest", "--source", f"polymarket=PM-TEST-YES:{YES},PM-TEST-NO:{NO}",
                     "--url", holder["url"], "--run-for", "3", "--no-store", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
    assert out["source"] == "polymarket"
    assert out["ticks_scored"] == 200
    assert out["dead_by_reason"] == {"malformed": 1, "bad_price": 1}
