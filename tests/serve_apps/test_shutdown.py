"""Graceful shutdown loses no tick and no decision (:class:`serve_apps.local.LocalServices`).

The services run in this process (shards and the tick sink are real Ray actors) on a private
migrated database and a private chdb tick store. Ticks go in through the HTTP API in several
batches, some of them bad; incidents go in between. The sink is set to flush only on close,
so the ticks are still buffered in the sink actor when ``close`` starts: afterwards the store
must hold exactly the ticks the API accepted, and every incident must be recorded with a
final status and no decision left undecided.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from serve_apps.config import ServeConfig
from serve_apps.local import LocalServices
from tests.graphs.harness import PRICE, SYMBOL, news_incident
from tests.serve_apps.conftest import SYMBOLS
from tripwire.config import load_settings
from tripwire.store.pg_decisions import PgDecisionStore
from tripwire.store.ticks import TickStore

TOKEN = "shutdown-test-token"
BATCHES = 6
GOOD_PER_SYMBOL = 100  # per batch and symbol
PRICES = {SYMBOL: PRICE, "BTCUSDT": 60_000.0, "SOLUSDT": 150.0}
UNFINISHED = ("queued", "triaging")  # incident statuses of work still in flight


def _batch(n: int, t0: int) -> list[dict]:
    """GOOD_PER_SYMBOL valid ticks of each symbol plus two the validator rejects."""
    ticks = [{"symbol": sym, "ts_ns": t0 + i * 1_000, "price": price * (1 + (i % 5) * 1e-5),
              "qty": 1.0, "side": 1 if i % 2 else -1, "trade_id": 0}
             for sym, price in PRICES.items() for i in range(GOOD_PER_SYMBOL)]
    ticks.append({"symbol": "DOGEUSDT", "ts_ns": t0, "price": 0.1, "qty": 1.0})
    ticks.append({"symbol": "SOLUSDT", "ts_ns": t0 + 1, "price": -1.0, "qty": 1.0})
    return ticks


def _incident(n: int) -> dict:
    incident = news_incident(f"shutdown-inc-{n}").model_copy(update={"ts_ns": time.time_ns()})
    return incident.model_dump(mode="json")


async def _feed(client: httpx.AsyncClient) -> tuple[int, int, list[str]]:
    """Every batch in, an incident after every other batch; (accepted, rejected, ids)."""
    accepted = rejected = 0
    submitted: list[str] = []
    t0 = time.time_ns() - BATCHES * 1_000_000_000
    for n in range(BATCHES):
        r = await client.post("/v1/ticks", json={"ticks": _batch(n, t0 + n * 1_000_000_000)})
        assert r.status_code == 200, r.text
        accepted += r.json()["accepted"]
        rejected += r.json()["rejected"]
        submitted += r.json()["incidents"]  # the detectors' own, if any tripped
        if n % 2:
            r = await client.post("/v1/incidents", json={"incidents": [_incident(n)]})
            assert r.status_code == 200, r.text
            submitted += [item["id"] for item in r.json()["items"]]
    return accepted, rejected, submitted


async def _run(settings, dsn: str) -> tuple[int, int, list[str], dict, dict]:
    config = ServeConfig(shards=2, heartbeat_s=0.2)
    svc = await LocalServices(settings, dsn, SYMBOLS, config).start()
    try:
        transport = httpx.ASGITransport(app=svc.app(TOKEN))
        async with httpx.AsyncClient(transport=transport, base_url="http://local",
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            accepted, rejected, submitted = await _feed(client)
        before = await svc.plane.stats()
    finally:
        closed = await svc.close()
    return accepted, rejected, submitted, before, closed


async def _decisions_state(dsn: str, submitted: list[str]) -> tuple[dict, list, list]:
    store = await PgDecisionStore.connect(dsn)
    try:
        incidents = {i: await store.incident(i) for i in submitted}
        undecided = await store.decisions(500, undecided_only=True)
        decided = await store.decisions(500)
    finally:
        await store.close()
    return incidents, undecided, decided


def test_close_loses_no_tick_and_no_decision(ray_local, migrated_db: str,
                                             tmp_path: Path) -> None:
    tmp_path.chmod(0o711)
    settings = load_settings(env={"TRIPWIRE_DATA__DIR": str(tmp_path),
                                  "TRIPWIRE_PIPELINE__SINK_FLUSH_ROWS": "1000000",
                                  "TRIPWIRE_PIPELINE__SINK_FLUSH_MS": "3600000"})
    accepted, rejected, submitted, before, closed = asyncio.run(_run(settings, migrated_db))

    assert accepted == BATCHES * GOOD_PER_SYMBOL * len(PRICES)
    assert rejected == BATCHES * 2
    # Still buffered in the sink when close began: close is what wrote them.
    assert before["sink"]["pending_rows"] == accepted, before["sink"]
    assert closed["dataplane"]["pending_rows"] == 0
    assert closed["signoff"]["unfinished_at_close"] == 0
    with TickStore(settings.store_url) as store:
        assert store.counts()["ticks"] == accepted
        per_symbol = {s["symbol"]: s["ticks"]
                      for s in store.symbol_stats()}
    assert per_symbol == {sym: BATCHES * GOOD_PER_SYMBOL for sym in PRICES}

    assert len(submitted) >= BATCHES // 2
    incidents, undecided, decided = asyncio.run(_decisions_state(migrated_db, submitted))
    missing = [i for i, row in incidents.items() if row is None]
    assert missing == [], f"incidents submitted but not recorded: {missing}"
    open_ = {i: row["status"] for i, row in incidents.items() if row["status"] in UNFINISHED}
    assert open_ == {}, f"incidents left unfinished by close: {open_}"
    assert undecided == [], f"decisions left undecided by close: {undecided}"
    triaged = {i for i, row in incidents.items() if row["status"] == "triaged"}
    with_decision = {d["incident_id"] for d in decided if d["outcome"] is not None}
    assert triaged and triaged <= with_decision, (triaged, decided)
