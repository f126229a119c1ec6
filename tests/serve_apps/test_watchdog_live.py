"""The watchdog against the real Serve app: a dead shard actor halts trading.

The watchdog runs here as it runs in production: outside the app, on its own PostgreSQL
pool, driving the orchestrator over HTTP (:class:`HttpControl`). First a shard actor is
killed the way a crash kills it (Ray may restart it): it comes back restored, its heartbeat
resumes saying it was restarted, the watchdog logs the restart, and an operator's resume
holds -- no full restart needed. Then a shard is killed for good: its heartbeat goes stale,
the watchdog halts with ``heartbeat_stale``, the API refuses a resume that does not name
that code, and an incident submitted while halted places no order.

This module KILLS A SHARD of the session-wide ``serve_app`` and leaves it dead, so it must
stay the last user of ``serve_app`` in ``tests/serve_apps`` (pytest runs the modules
alphabetically: after ``test_api`` and ``test_console``), and its tests run in file order.
A test module added after it that needs a healthy data plane must get its own app.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.graphs.harness import news_incident
from tests.serve_apps.conftest import LiveApp
from tripwire.model import NS_PER_SECOND, SystemClock
from tripwire.store.pg_decisions import PgDecisionStore
from tripwire.watchdog import HttpControl, Watchdog, load_watchdog_config

MAX_AGE_S = 2.0
INTERVAL_S = 0.5
SLACK_S = 30.0  # a deadline for a loaded 2-core machine, not a timing assertion
ACK = "heartbeat_stale checked: the test killed the shard on purpose"


def _config():
    return load_watchdog_config({"heartbeats": ["shard:*"], "heartbeat_max_age_s": MAX_AGE_S,
                                 "interval_s": INTERVAL_S})


async def _fresh_shards(store: PgDecisionStore, n: int, timeout_s: float = 60.0) -> None:
    """Wait until every shard has a heartbeat younger than MAX_AGE_S / 2."""
    deadline = time.monotonic() + timeout_s
    want = {f"shard:{i}" for i in range(n)}
    while True:
        beats = await store.heartbeats()
        now = time.time_ns()
        fresh = {c for c, (ts, _) in beats.items() if now - ts < MAX_AGE_S / 2 * NS_PER_SECOND}
        if want <= fresh:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"shard heartbeats not fresh after {timeout_s} s: {beats}")
        await asyncio.sleep(0.1)


async def _watch_until_halted(watchdog: Watchdog, serve_app: LiveApp) -> dict:
    """Run the watchdog loop until GET /v1/halt says halted; the halt body."""
    stop = asyncio.Event()
    loop = asyncio.create_task(watchdog.run(stop))
    try:
        return await asyncio.to_thread(
            serve_app.wait_for, "/v1/halt", lambda b: b if b["halted"] else None,
            MAX_AGE_S + INTERVAL_S + SLACK_S)
    finally:
        stop.set()
        await loop


async def _restarted_beat(store: PgDecisionStore, component: str, restarts: int,
                          timeout_s: float = 60.0) -> str:
    """Wait until ``component``'s heartbeat is fresh and reports ``restarts``; its detail."""
    deadline = time.monotonic() + timeout_s
    while True:
        ts, detail = (await store.heartbeats()).get(component, (0, ""))
        if f"restarts={restarts}" in detail and (
                time.time_ns() - ts < MAX_AGE_S / 2 * NS_PER_SECOND):
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"{component} did not come back after {timeout_s} s "
                                 f"(last heartbeat detail {detail!r})")
        await asyncio.sleep(0.1)


def _metric(serve_app: LiveApp, name: str) -> float:
    with serve_app.client(auth=False) as c:
        text = c.get("/metrics").text
    line = next(x for x in text.splitlines() if x.startswith(f"{name} "))
    return float(line.split()[1])


def test_a_killed_shard_comes_back_and_a_resume_holds(serve_app: LiveApp) -> None:
    """Regression: a killed shard actor was never restarted, so a resume was re-halted
    within a second (the dead shard's heartbeat stayed stale) until a full restart."""
    import ray

    with serve_app.client(auth=False) as c:
        assert c.get("/v1/halt").json()["halted"] is False, "an earlier test left a halt"
    shards = serve_app.app.dataplane.shard_handles.remote().result(timeout_s=60)
    control = HttpControl(serve_app.url, serve_app.token)

    async def scenario() -> Watchdog:
        store = await PgDecisionStore.connect(serve_app.dsn)
        try:
            watchdog = Watchdog(store, control, _config(), SystemClock())
            await _fresh_shards(store, len(shards))
            assert await watchdog.check_once() == []
            ray.kill(shards[0], no_restart=False)  # a crash: Ray may restart the actor
            stop = asyncio.Event()
            loop = asyncio.create_task(watchdog.run(stop))  # watching while it is down
            try:
                detail = await _restarted_beat(store, "shard:0", 1)
            finally:
                stop.set()
                await loop
            assert detail == "ping ok restarts=1"
            await watchdog.check_once()  # sees the restart in the heartbeat (if not yet)
            # The watchdog may or may not have caught the gap; the operator halts to check
            # either way, then resumes with an acknowledgement naming the code.
            if not (await store.read_halt()).halted:
                await store.set_halt("heartbeat_stale: shard:0 was killed (test)", "ops",
                                     time.time_ns())
            return watchdog
        finally:
            await store.close()

    try:
        watchdog = asyncio.run(scenario())
        assert watchdog.stats["restarts_seen"] == 1  # logged and alerted once
        ok = serve_app.post("/v1/resume", {"by": "ops", "acknowledgement": ACK})
        assert ok.status_code == 200, ok.text

        async def after_resume() -> list[list]:
            store = await PgDecisionStore.connect(serve_app.dsn)
            try:
                dog = Watchdog(store, control, _config(), SystemClock())
                found = []
                for _ in range(int(2 * MAX_AGE_S / INTERVAL_S) + 1):  # past the max age
                    found.append(await dog.check_once())
                    await asyncio.sleep(INTERVAL_S)
                return found
            finally:
                await store.close()

        assert asyncio.run(after_resume()) == [[]] * (int(2 * MAX_AGE_S / INTERVAL_S) + 1)
    finally:
        control.close()
    with serve_app.client(auth=False) as c:
        assert c.get("/v1/halt").json()["halted"] is False  # the resume held
    assert _metric(serve_app, "tripwire_dataplane_shard_restarts_total") == 1
    # Ticks for every symbol are scored again: none is dead-lettered shard_unavailable.
    before = _metric(serve_app, "tripwire_dataplane_shard_errors_total")
    for symbol in ("ETHUSDT", "BTCUSDT", "SOLUSDT"):
        assert serve_app.push_ticks(symbol, n=3)["accepted"] == 3
    assert _metric(serve_app, "tripwire_dataplane_shard_errors_total") == before


def _submit_while_halted(serve_app: LiveApp) -> str:
    incident = news_incident().model_copy(update={"ts_ns": time.time_ns()})
    r = serve_app.post("/v1/incidents", {"incidents": [incident.model_dump(mode="json")]})
    assert r.status_code == 200, r.text
    item = r.json()["items"][0]
    assert item["status"] == "queued", item  # coalesced would prove nothing about the halt
    return item["id"]


def test_a_killed_shard_halts_trading_until_acknowledged(serve_app: LiveApp) -> None:
    import ray

    with serve_app.client(auth=False) as c:
        assert c.get("/v1/halt").json()["halted"] is False, "an earlier test left a halt"
    shards = serve_app.app.dataplane.shard_handles.remote().result(timeout_s=60)
    assert len(shards) >= 2  # one dies, one keeps beating: the breach must name the dead one
    control = HttpControl(serve_app.url, serve_app.token)

    async def scenario() -> dict:
        store = await PgDecisionStore.connect(serve_app.dsn)
        try:
            watchdog = Watchdog(store, control, _config(), SystemClock())
            await _fresh_shards(store, len(shards))
            assert await watchdog.check_once() == []  # every invariant holds: no halt
            assert (await store.read_halt()).halted is False
            ray.kill(shards[0], no_restart=True)
            return await _watch_until_halted(watchdog, serve_app)
        finally:
            await store.close()

    try:
        halt = asyncio.run(scenario())
    finally:
        control.close()
    assert halt["set_by"] == "watchdog"
    assert halt["reason"].startswith("heartbeat_stale:"), halt
    assert "shard:0 is" in halt["reason"] and "shard:1" not in halt["reason"], halt

    refused = serve_app.post("/v1/resume", {"by": "ops", "acknowledgement": "looks fine now"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "acknowledgement_required"

    incident_id = _submit_while_halted(serve_app)
    decided = serve_app.wait_for(
        "/v1/decisions?limit=500",
        lambda b: next((d for d in b["items"] if d["incident_id"] == incident_id
                        and d["outcome"] is not None), None))
    assert decided["outcome"] == "REJECTED", decided
    assert "halt" in (decided["reason"] or "").lower(), decided
    with serve_app.client(auth=False) as c:
        chain = c.get(f"/v1/decisions/{decided['id']}").json()
        assert chain["orders"] == [] and chain["fills"] == []
        assert c.get("/v1/halt").json()["halted"] is True  # still halted: nobody resumed

    ok = serve_app.post("/v1/resume", {"by": "ops", "acknowledgement": ACK})
    assert ok.status_code == 200, ok.text
    assert ok.json()["halted"] is False


@pytest.mark.parametrize("ack", ["", "   ", "operator: fine", "heartbeat checked"])
def test_resume_refuses_acknowledgements_not_naming_the_code(ack: str) -> None:
    """The rule the API applies above, on its own (no app needed)."""
    from tripwire.watchdog import acknowledgement_error

    reason = "heartbeat_stale: shard:0 is 3.1 s old (max age 2 s)"
    assert acknowledgement_error(reason, ack) is not None
    assert acknowledgement_error(reason, ACK) is None
