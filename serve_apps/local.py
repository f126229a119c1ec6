"""The same FastAPI app without Serve: every service in this process (shards still Ray actors).

:class:`LocalServices` runs the :class:`~serve_apps.orchestrator.Orchestrator` (triage on
its own runner) and the :class:`~actors.dataplane.DataPlane` on one event loop and serves
:func:`serve_apps.api.build_app` through them. ``benchmarks.serve`` runs it under plain
uvicorn as the baseline that shows what Serve's proxy and handles cost per request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI

from actors.dataplane import DataPlane
from serve_apps.api import build_app
from serve_apps.app import plane_config
from serve_apps.config import ServeConfig, make_clock
from serve_apps.orchestrator import Orchestrator, metric_sections
from tripwire.config import Settings
from tripwire.llm.ledger import ledger_path
from tripwire.model import NewsItem, SymbolTable, TickBatch
from tripwire.store.pg_decisions import PgDecisionStore


class LocalServices:
    """:class:`serve_apps.api.Backend` over in-process services."""

    def __init__(self, settings: Settings, dsn: str, symbols: SymbolTable,
                 config: ServeConfig | None = None) -> None:
        self.settings, self.dsn, self.symbols = settings, dsn, symbols
        self.config = config or ServeConfig.from_settings(settings)
        self.orch = Orchestrator(settings, dsn, symbols, workers=self.config.signoff_workers,
                                 clock=make_clock(self.config))
        self.store: PgDecisionStore | None = None
        self.plane: DataPlane | None = None
        self._beat: asyncio.Task | None = None

    async def start(self) -> LocalServices:
        await self.orch.start()
        self.store = await PgDecisionStore.connect(self.dsn)
        self.plane = DataPlane(self.symbols, plane_config(self.settings, self.config),
                               self.store, self._hand_over, on_clean=self.orch.on_ticks,
                               idle=self.orch.idle)
        await asyncio.to_thread(self.plane.start)
        self._beat = asyncio.create_task(self.plane.heartbeats(self.config.heartbeat_s))
        return self

    async def _hand_over(self, incidents: list, trace: dict | None) -> None:
        await self.orch.submit([i.model_dump(mode="json") for i in incidents], trace)

    def app(self, token: str) -> FastAPI:
        return build_app(self, self.store, self.symbols, token=token,
                         ledger_path=ledger_path(self.settings),
                         news_table=self.settings.table("news"), replay_dsn=self.dsn)

    async def close(self) -> dict[str, Any]:
        if self._beat is not None:
            self._beat.cancel()
        out = {"dataplane": await self.plane.close() if self.plane else {},
               "signoff": await self.orch.close()}
        if self.store is not None:
            await self.store.close()
        return out

    # -- Backend -----------------------------------------------------------------------------

    async def ingest(self, batch: TickBatch, *, batch_id: str | None = None,
                     digest: str = "", dead: list | None = None) -> tuple[dict, bool]:
        return await self.plane.ingest_once(batch, time.time_ns(), batch_id=batch_id,
                                            digest=digest, dead=dead or ())

    async def news(self, items: list[NewsItem]) -> dict[str, int]:
        return await self.plane.on_news(items)  # {"accepted": n, "rejected": m}

    async def submit(self, incidents: list[dict]) -> list[dict]:
        return await self.orch.submit(incidents)

    async def approve(self, decision_id: str, by: str, note: str) -> dict:
        return await self.orch.approve(decision_id, by, note)

    async def reject(self, decision_id: str, by: str, note: str) -> dict:
        return await self.orch.reject(decision_id, by, note)

    async def account(self) -> dict:
        return await self.orch.account()

    async def positions(self) -> dict:
        return await self.orch.positions()

    async def pnl(self) -> dict:
        return await self.orch.pnl()

    async def cancel_all(self) -> int:
        return await self.orch.cancel_all()

    async def flatten(self) -> int:
        return await self.orch.flatten()

    async def metrics(self) -> dict:
        return metric_sections(await self.plane.stats(), self.orch.metrics())

    async def ready(self) -> dict[str, str]:
        return {"data_plane": "ok", "signoff": "ok"}
