"""The real Serve app on 127.0.0.1 for the whole session (deploying it costs seconds).

``serve_app`` runs every deployment (ingress, data plane with shard actors and the chdb
tick sink, triage, sign-off with the paper venue) on the session's Ray and a migrated
database of the session's private PostgreSQL, with the offline rules analyst and TWO_PHASE
mode: every decision that would trade waits for an operator.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.graphs.harness import PRICE, SYMBOL, news_incident
from tripwire.config import Settings, load_settings
from tripwire.model import SymbolTable
from tripwire.store.migrate import migrate

SYMBOLS = SymbolTable([SYMBOL, "BTCUSDT", "SOLUSDT"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveApp:
    url: str
    token: str
    dsn: str
    settings: Settings
    app: Any  # serve_apps.app.ServeApp

    def client(self, auth: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60.0)

    def post(self, path: str, body: Any) -> httpx.Response:
        with self.client() as c:
            return c.post(path, json=body)

    def push_ticks(self, symbol: str = SYMBOL, price: float = PRICE, n: int = 5) -> dict:
        """``n`` ticks of ``symbol`` at about ``price``, stamped now (fresh for the checks)."""
        now = time.time_ns()
        ticks = [{"symbol": symbol, "ts_ns": now - (n - i) * 1_000_000, "price": price,
                  "qty": 1.0, "side": 1, "trade_id": 0} for i in range(n)]
        r = self.post("/v1/ticks", {"ticks": ticks})
        r.raise_for_status()
        return r.json()

    def push_incident(self) -> str:
        """A confident bad-news drop of ETHUSDT (the rules analyst sells it), with fresh
        prices first; the incident's id."""
        self.push_ticks()
        incident = news_incident().model_copy(update={"ts_ns": time.time_ns()})
        r = self.post("/v1/incidents", {"incidents": [incident.model_dump(mode="json")]})
        r.raise_for_status()
        return r.json()["items"][0]["id"]

    def wait_for(self, path: str, check, timeout_s: float = 60.0) -> Any:
        """GET ``path`` until ``check(json)`` is truthy; that value."""
        deadline = time.monotonic() + timeout_s
        with self.client(auth=False) as c:
            while True:
                body = c.get(path).json()
                found = check(body)
                if found:
                    return found
                if time.monotonic() > deadline:
                    raise AssertionError(f"{path}: condition not met in {timeout_s} s; last "
                                         f"body {str(body)[:500]}")
                time.sleep(0.2)


@pytest.fixture(scope="session")
def serve_app(ray_local, pg_cluster) -> Iterator[LiveApp]:
    from ray import serve

    from serve_apps.app import start
    from serve_apps.config import ServeConfig
    from tests.pgfixtures import _create_database

    async def make_db() -> str:
        dsn = await _create_database(pg_cluster.dsn)
        await migrate(dsn)
        return dsn

    dsn = asyncio.run(make_db())
    data = Path(tempfile.mkdtemp(prefix="tripwire-serve-test-"))
    settings = load_settings(env={"TRIPWIRE_DATA__DIR": str(data),
                                  "TRIPWIRE_RISK__MODE": "TWO_PHASE",
                                  # every pushed incident is its own decision (no coalescing)
                                  "TRIPWIRE_SIGNOFF__INCIDENT_COOLDOWN_S": "0.001"})
    token = secrets.token_hex(16)
    config = ServeConfig(port=free_port(), shards=2, heartbeat_s=0.2, triage_max_replicas=1)
    app = start(settings, dsn, SYMBOLS, config=config, token=token)
    try:
        yield LiveApp(app.url, token, dsn, settings, app)
    finally:
        try:
            app.shutdown()
        finally:
            serve.shutdown()
            shutil.rmtree(data, ignore_errors=True)
