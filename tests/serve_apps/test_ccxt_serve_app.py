"""The ccxt broker trades through the real Serve app over HTTP (issue 14, "Done when").

tests/serve_apps/test_ccxt_orchestrator.py drives the sign-off service itself; here every
deployment runs (Ingress, DataPlane with its shard, Triage with the offline rules analyst,
SignOff with ``[execution] broker = "ccxt"``) and the test only speaks HTTP to it and
watches the loopback Binance (tests/execution/fake_binance.py: HMAC checked on every
private request; the test-only ccxt class ``bracketbinance`` attaches a stop and target).

The session's Serve app (paper venue) owns the session Ray's one Serve instance, so this
app runs in a process of its own with a private Ray (tests/serve_apps/ccxt_host.py); the
exchange and the database live here and reach it by environment. That process leads a new
session, and only that session's processes are stopped, also when a test fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.execution.fake_binance import API, BRACKET_EXCHANGE, FakeBinance
from tests.graphs.harness import PRICE, SYMBOL
from tests.serve_apps.ccxt_host import READY
from tests.serve_apps.conftest import LiveApp, free_port
from tests.serve_apps.test_ccxt_orchestrator import good_news
from tripwire.model import SystemClock
from tripwire.store.pg_decisions import PgDecisionStore
from tripwire.watchdog import HttpControl, Watchdog, load_watchdog_config
from tripwire.watchdog.control import FLATTEN_PREFIX

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
START_S = 170.0  # a private Ray + four deployments on a loaded 2-core machine
STOP_S = 45.0  # the app drains, then Ray stops; past this its session is killed
BACKEND = f"ccxt:{BRACKET_EXCHANGE}"


class Host:
    """The app's process, started as the leader of a new session that its Ray's processes
    join; stopping signals that session's members only."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._err = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.serve_apps.ccxt_host"], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
            start_new_session=True)
        self._ready: dict[str, Any] = {}
        self._seen = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:  # Ray may print too: only the READY line counts
            line = raw.decode(errors="replace")
            if line.startswith(READY):
                self._ready = json.loads(line[len(READY):])
                self._seen.set()
        self._seen.set()  # the process ended (or closed stdout) without READY

    def ready(self, timeout_s: float) -> dict[str, Any]:
        self._seen.wait(timeout_s)
        if not self._ready:
            raise AssertionError(f"the ccxt Serve app did not start in {timeout_s:.0f} s "
                                 f"(exit {self.proc.poll()}); its log ends:\n{self.tail()}")
        return self._ready

    def tail(self, chars: int = 4000) -> str:
        self._err.flush()
        return self.log.read_text(errors="replace")[-chars:]

    def members(self) -> list[int]:
        """The processes of the session this host leads: itself and its Ray (GCS, raylet,
        workers -- Ray gives each worker a process group of its own, not a session)."""
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp session ...
            if int(fields[3]) == self.proc.pid and fields[0] != "Z":
                out.append(int(entry.name))
        return out

    def _signal(self, sig: int) -> None:
        for pid in self.members():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Ask (stdin closes: drain, Ray shuts down); then SIGTERM, then SIGKILL, to this
        session's members only, each wait bounded."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(15.0)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the session is this host's Ray (workers outliving the raylet).
        self._signal(signal.SIGKILL)
        self.proc.wait(10.0)
        self._err.close()


def host_env(venue: FakeBinance, dsn: str, port: int, data: Path, token: str) -> dict[str, str]:
    # Not this process's Ray: no RAY_* variable crosses over; token auth off on purpose
    # (a loopback-only Ray private to the test).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TRIPWIRE_"))}
    env |= {"RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1",
            "CCXT_HOST_DSN": dsn, "CCXT_HOST_PORT": str(port), "CCXT_HOST_DATA": str(data),
            "CCXT_HOST_URLS": json.dumps(venue.ccxt_urls()), "CCXT_HOST_API_TOKEN": token,
            "TRIPWIRE_CCXT_API_KEY": venue.api_key, "TRIPWIRE_CCXT_SECRET": venue.secret}
    return env


@pytest.fixture
def ccxt_app(migrated_db, tmp_path) -> Iterator[tuple[LiveApp, FakeBinance]]:
    venue = FakeBinance(api_key=secrets.token_hex(16), secret=secrets.token_hex(16),
                        prices={SYMBOL: PRICE, "BTCUSDT": 50_000.0},
                        balances={"USDT": 100_000.0, "ETH": 0.0, "BTC": 0.0},
                        attached_brackets=True).start()
    token = secrets.token_hex(16)
    (tmp_path / "data").mkdir()
    host = Host(host_env(venue, migrated_db, free_port(), tmp_path / "data", token),
                tmp_path / "host.log")
    try:
        ready = host.ready(START_S)
        yield LiveApp(ready["url"], token, migrated_db, None, None), venue  # type: ignore[arg-type]
    finally:
        try:
            host.stop()
        finally:
            venue.stop()
    assert host.proc.returncode == 0, f"the host did not stop cleanly:\n{host.tail()}"
    deadline = time.monotonic() + 10.0  # SIGKILLed members take a moment to go
    while host.members():
        assert time.monotonic() < deadline, f"the host's Ray outlived it: {host.members()}"
        time.sleep(0.2)
    # The exchange credentials reached the sign-off replica by environment only, the API
    # token not at all: no log of the host or its Ray (workers, replicas, GCS) and no
    # journal file holds either.
    leaked = [str(f) for f in [tmp_path / "host.log", *(tmp_path / "data").rglob("*")]
              if f.is_file() and not f.is_symlink()
              and any(x.encode() in f.read_bytes() for x in (venue.secret, venue.api_key, token))]
    assert leaked == []


def incident(n: int) -> dict[str, Any]:
    return good_news().model_copy(update={"id": f"inc-ccxt-serve-{n}"}).model_dump(mode="json")


def executed_order(app: LiveApp, incident_id: str) -> tuple[str, str]:
    """Wait for the decision on this incident (EXECUTED, one order); its id and the
    order's client id."""
    def decided(body: dict) -> Any:
        return next((d for d in body["items"] if d.get("incident_id") == incident_id
                     and d.get("outcome") is not None), None)

    decision = app.wait_for("/v1/decisions", decided, timeout_s=90.0)
    assert decision["outcome"] == "EXECUTED", decision
    chain = app.wait_for(f"/v1/decisions/{decision['id']}",
                         lambda c: c if c.get("orders") else None)
    [order] = chain["orders"]
    assert order["backend"] == BACKEND, order
    return decision["id"], order["client_order_id"]


def submit(app: LiveApp, n: int) -> str:
    app.push_ticks()  # fresh prices first (the sign-off refuses stale marks)
    body = incident(n)
    r = app.post("/v1/incidents", {"incidents": [body]})
    assert r.status_code == 200, r.text
    return body["id"]


def order_rows(dsn: str, client_id: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(dsn)
        try:
            return [dict(r) for r in await conn.fetch(
                "SELECT backend, status FROM orders WHERE client_order_id = $1", client_id)]
        finally:
            await conn.close()

    return asyncio.run(read())


def held(app: LiveApp) -> float:
    with app.client(auth=False) as c:
        body = c.get("/v1/positions").json()
    assert body["backend"] == BACKEND, body
    return sum(p["qty"] for p in body["positions"] if p["symbol"] == SYMBOL)


def test_the_serve_app_trades_on_the_exchange_and_its_controls_act_there(ccxt_app) -> None:
    app, venue = ccxt_app
    with app.client(auth=False) as c:
        account = c.get("/v1/account")
    assert account.status_code == 200, account.text
    assert account.json()["backend"] == BACKEND and account.json()["open_orders"] == 0

    # 1. Good news over HTTP -> the rules analyst BUYs in DIRECT mode -> the exchange holds
    # the order under the decision's client order id, signed, its stop and target attached.
    _, cid = executed_order(app, submit(app, 1))
    [placed] = venue.created(cid)
    assert (placed.side, placed.status) == ("BUY", "NEW")
    assert placed.stop_loss is not None and placed.stop_loss < PRICE
    assert placed.take_profit is not None and placed.take_profit > PRICE
    [sent] = [p for m, path, p in venue.requests
              if (m, path) == ("POST", API + "/order") and p.get("newClientOrderId") == cid]
    assert sent.get("signature") and "stopLoss" in sent  # the venue checked the HMAC
    assert app.wait_for("/v1/account", lambda a: a["open_orders"] == 1 and a)

    # 2. cancel-all over HTTP cancels it on the exchange; the store follows.
    r = app.post("/v1/orders/cancel-all", {})
    assert r.status_code == 200 and r.json() == {"cancelled": 1}, r.text
    assert venue.created(cid)[0].status == "CANCELED"
    assert order_rows(app.dsn, cid) == [{"backend": BACKEND, "status": "cancelled"}]
    assert app.wait_for("/v1/account", lambda a: a["open_orders"] == 0 and a)

    # 3. A second decision; the exchange fills it on its own; the position is read from the
    # exchange.
    decision2, cid2 = executed_order(app, submit(app, 2))
    assert cid2 != cid
    [second] = venue.created(cid2)
    venue.fill(cid2)
    deadline = time.monotonic() + 30.0
    while held(app) != pytest.approx(second.qty):
        assert time.monotonic() < deadline, f"position never reached {second.qty}"
        time.sleep(0.2)
    # The attached stop guards it (what the watchdog's naked-position check reads) ...
    account = app.wait_for("/v1/account", lambda a: a["positions"] and a)
    assert [(p["symbol"], p["stop_attached"]) for p in account["positions"]] == [
        (SYMBOL, True)], account
    # ... and the sign-off replica's poll copies the exchange's fill into the store.
    chain = app.wait_for(f"/v1/decisions/{decision2}",
                         lambda c: c if c["orders"][0]["status"] == "filled" and c["fills"]
                         else None, timeout_s=30.0)
    assert [f["price"] for f in chain["fills"]] == [second.price]
    with app.client(auth=False) as c:  # the other reads of the venue answer too
        for path in ("/v1/pnl", "/metrics", "/readyz"):
            assert c.get(path).status_code == 200, path
        assert c.get("/v1/pnl").json()["equity"] > 0

    # 4. The watchdog, outside the app over HTTP as in production: the guarded position
    # passes its checks; over a tiny exposure limit it halts and flattens on the exchange.
    assert watchdog_round(app, max_gross_exposure=50_000.0) == []
    assert watchdog_round(app, max_gross_exposure=1.0) == ["exposure_cap"]
    with app.client(auth=False) as c:
        assert c.get("/v1/halt").json()["halted"] is True
    [closing] = [o for o in venue.created() if o.client_id.startswith(FLATTEN_PREFIX)]
    assert (closing.side, closing.status, closing.qty) == ("SELL", "FILLED", second.qty)
    assert held(app) == pytest.approx(0.0)


def watchdog_round(app: LiveApp, max_gross_exposure: float) -> list[str]:
    """One watchdog pass (stops required, shard heartbeats judged, flatten on halt); the
    breaches' codes."""
    config = load_watchdog_config({"heartbeats": ["shard:*"], "heartbeat_max_age_s": 60.0,
                                   "max_gross_exposure": max_gross_exposure,
                                   "require_stops": True, "flatten_on_halt": True})

    async def once() -> list[str]:
        store = await PgDecisionStore.connect(app.dsn)
        control = HttpControl(app.url, app.token, timeout_s=30.0)
        try:
            return [b.code for b in await Watchdog(store, control, config,
                                                   SystemClock()).check_once()]
        finally:
            control.close()
            await store.close()

    return asyncio.run(once())
