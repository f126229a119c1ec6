"""The orchestrator as a Ray Serve application: four deployments, one HTTP face.

- ``Ingress`` (FastAPI, :mod:`serve_apps.api`): stateless, reads PostgreSQL itself, hands
  writes to the others; scale it with ``[serve] ingress_replicas``.
- ``DataPlane``: one replica owning the detector shard actors and the tick sink
  (:class:`actors.dataplane.DataPlane`); it hands incidents to ``SignOff`` through its
  deployment handle.
- ``Triage``: the triage graph, autoscaled between ``triage_min_replicas`` and
  ``triage_max_replicas`` on its queue, each replica bounded by ``triage_max_ongoing``.
- ``SignOff``: the sign-off runner and the execution backend
  (:class:`serve_apps.orchestrator.Orchestrator`). One replica: the paper venue's book
  lives in its memory (an exchange backend could run more).

Every replica asks for ``num_cpus=0`` (``[serve] replica_cpus``) so the app fits a 2-CPU
laptop; on a cluster, give them real CPUs and Serve spreads them over the nodes.
:func:`start` runs it on 127.0.0.1 (or ``[serve] host``) and returns a :class:`ServeApp`
whose :meth:`~ServeApp.shutdown` drains it: the data plane flushes the tick sink, the
sign-off runner finishes or checkpoints what is in flight.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from ray import serve

from actors.dataplane import DataPlane, DataPlaneConfig
from actors.ray_metrics import RayMetrics
from serve_apps.api import build_app
from serve_apps.bearer import TokenVerifier
from serve_apps.config import ServeConfig, make_clock
from serve_apps.errors import unwrap
from serve_apps.lazy_store import LazyStore
from serve_apps.orchestrator import Orchestrator, TriageService, metric_sections
from tripwire import telemetry
from tripwire.adapters.market_state import MarketGate, closed_from_heartbeats
from tripwire.config import Settings
from tripwire.llm.ledger import ledger_path
from tripwire.model import NewsItem, SimClock, SymbolTable, TickBatch

APP_NAME = "tripwire"


@dataclass(frozen=True)
class AppSpec:
    """Everything a replica needs to build its part (picklable; no secrets).

    ``verifier`` checks the API's bearer token without being it (:mod:`serve_apps.bearer`):
    the token itself never reaches Ray — no runtime env, no init argument, no replica.
    """

    settings: Settings
    dsn: str
    symbols: tuple[str, ...]
    serve: ServeConfig
    verifier: TokenVerifier
    extra: dict[str, Any] = field(default_factory=dict)
    # Symbols whose prices are probabilities (a prediction market's tokens, as the feeds'
    # instrument providers say): the detector shards score them on log-odds changes.
    probability_symbols: tuple[str, ...] = ()

    def table(self) -> SymbolTable:
        return SymbolTable(list(self.symbols))


class _Lazy:
    """Start the wrapped service once, on the replica's own event loop."""

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self._started = False

    async def ensure(self) -> None:
        if self._started:
            return
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if not self._started:
                await self._start()
                self._started = True

    async def _start(self) -> None:
        raise NotImplementedError


@serve.deployment(name="SignOff", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64)
class SignOffDeployment(_Lazy):
    def __init__(self, spec: AppSpec, triage: Any) -> None:
        super().__init__()
        self.spec, self.triage_handle = spec, triage
        self.orch = Orchestrator(spec.settings, spec.dsn, spec.table(), triage=self._triage,
                                 workers=spec.serve.signoff_workers,
                                 clock=make_clock(spec.serve))
        self.gate = MarketGate()  # resolved/halted markets: not traded (market_state)

    async def _start(self) -> None:
        telemetry.configure(settings=self.spec.settings.table("telemetry"))
        await self.orch.start()
        # Closures recorded before a restart (heartbeats market:<symbol>) still hold.
        recorded = closed_from_heartbeats(await self.orch.parts.store.heartbeats())
        self.gate.close(recorded, self.orch.parts.venue.broker)

    async def close_markets(self, closed: dict[str, str]) -> dict[str, int]:
        """Stop trading these symbols (symbol -> why): incidents on them are refused by
        name and the venue refuses new orders on them."""
        await self.ensure()
        new = self.gate.close(closed, self.orch.parts.venue.broker)
        return {"new": new, "closed": len(self.gate.closed)}

    async def _triage(self, incident: Any, trace: Any) -> dict[str, Any]:
        return await self.triage_handle.triage.remote(incident.model_dump(mode="json"), trace,
                                                      self.orch.clock.now_ns())

    async def submit(self, incidents: list[dict], trace: dict | None = None) -> list[dict]:
        """Queue incidents; one on a closed market is answered ``market_closed`` (with why,
        after the queued ones) and never reaches triage."""
        await self.ensure()
        kept, refused = self.gate.split(incidents)
        return (await self.orch.submit(kept, trace) if kept else []) + refused

    async def on_ticks(self, batch: TickBatch, until_ns: int | None = None) -> int:
        """The engine's venue step (``until_ns``: where market time moves, see
        :meth:`serve_apps.orchestrator.Orchestrator.on_ticks`)."""
        await self.ensure()
        return await self.orch.on_ticks(batch, until_ns)

    async def approve(self, decision_id: str, by: str, note: str) -> dict:
        await self.ensure()
        return await self.orch.approve(decision_id, by, note)

    async def reject(self, decision_id: str, by: str, note: str) -> dict:
        await self.ensure()
        return await self.orch.reject(decision_id, by, note)

    async def call(self, name: str) -> Any:
        """A read or a control on the venue: account, positions, pnl, cancel_all, flatten,
        metrics."""
        await self.ensure()
        if name not in ("account", "positions", "pnl", "cancel_all", "flatten", "metrics"):
            raise ValueError(f"unknown call {name!r}")
        result = getattr(self.orch, name)()
        return await result if asyncio.iscoroutine(result) else result  # controls are async

    async def idle(self) -> bool:
        await self.ensure()
        return await self.orch.idle()

    async def results(self) -> list[dict]:
        import dataclasses

        return [dataclasses.asdict(r) for r in self.orch.results]

    async def drain(self, timeout_s: float = 30.0) -> dict:
        if not self._started:
            return {}
        return await self.orch.close(timeout_s)


@serve.deployment(name="Triage", ray_actor_options={"num_cpus": 0})
class TriageDeployment(_Lazy):
    def __init__(self, spec: AppSpec) -> None:
        super().__init__()
        self.spec = spec
        self.clock = make_clock(spec.serve)
        self.service = TriageService(spec.settings, spec.dsn, spec.table(), self.clock)

    async def _start(self) -> None:
        telemetry.configure(settings=self.spec.settings.table("telemetry"))
        await self.service.start()

    async def triage(self, incident: dict, trace: dict | None = None,
                     now_ns: int | None = None) -> dict:
        await self.ensure()
        if isinstance(self.clock, SimClock) and now_ns is not None:
            self.clock.set(max(self.clock.now_ns(), now_ns))  # market time only moves on
        return await self.service.triage(incident, trace)


def dataplane_config(spec: AppSpec) -> DataPlaneConfig:
    """The data plane's settings from the app's spec (probability symbols included)."""
    return plane_config(spec.settings, spec.serve, spec.probability_symbols)


def plane_config(settings: Settings, cfg: ServeConfig,
                 probability_symbols: tuple[str, ...] = ()) -> DataPlaneConfig:
    """The data plane's settings, one way for the Serve app and its in-process twin
    (:mod:`serve_apps.local`): detectors, store, clock, time window, shard restarts and
    checkpoints, the engine, probability symbols and ``[memory]``."""
    return DataPlaneConfig(
        n_shards=cfg.shards, detector=settings.detector.to_dict(),
        store_url=settings.store_url if cfg.store_ticks else None,
        sink_flush_rows=settings.pipeline.sink_flush_rows,
        sink_flush_ms=settings.pipeline.sink_flush_ms,
        sync_decisions=cfg.clock == "market", time=settings.time,
        shard_max_restarts=cfg.shard_max_restarts,
        checkpoint_every_batches=cfg.shard_checkpoint_batches,
        checkpoint_every_s=cfg.shard_checkpoint_s, engine=settings.engine,
        probability_symbols=tuple(probability_symbols),
        memory=settings.decisions.memory)


@serve.deployment(name="DataPlane", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=32)
class DataPlaneDeployment(_Lazy):
    def __init__(self, spec: AppSpec, signoff: Any) -> None:
        super().__init__()
        self.spec, self.signoff = spec, signoff
        self.store = LazyStore(spec.dsn)
        self.plane = DataPlane(spec.table(), dataplane_config(spec), self.store,
                               self._hand_over, on_clean=self._to_venue,
                               idle=self._signoff_idle, ray_metrics=RayMetrics())
        self._beat: asyncio.Task | None = None

    async def _start(self) -> None:
        telemetry.configure(settings=self.spec.settings.table("telemetry"))
        await asyncio.to_thread(self.plane.start)
        self._beat = asyncio.create_task(self.plane.heartbeats(self.spec.serve.heartbeat_s))

    async def _hand_over(self, incidents: list, trace: dict | None) -> None:
        await self.signoff.submit.remote([i.model_dump(mode="json") for i in incidents], trace)

    async def _signoff_idle(self) -> bool:
        return await self.signoff.idle.remote()

    async def _to_venue(self, batch: TickBatch, until_ns: int | None) -> None:
        await self.signoff.on_ticks.remote(batch, until_ns)  # the engine's venue port

    async def ingest(self, batch: TickBatch, batch_id: str | None = None, digest: str = "",
                     dead: list | None = None) -> tuple[dict, bool]:
        await self.ensure()
        return await self.plane.ingest_once(batch, time.time_ns(), batch_id=batch_id,
                                            digest=digest, dead=dead or ())

    async def news(self, items: list[NewsItem]) -> dict[str, int]:
        await self.ensure()
        return await self.plane.on_news(items)  # {"accepted": n, "rejected": m}

    async def stats(self) -> dict:
        await self.ensure()
        return await self.plane.stats()

    async def shard_handles(self) -> list:
        """The detector shard actors (operations and tests: a dead one stops its heartbeat)."""
        await self.ensure()
        return list(self.plane.shards)

    async def trips(self) -> Any:
        await self.ensure()
        return self.plane.trips()

    async def drain(self) -> dict:
        if not self._started:
            return {}
        if self._beat is not None:
            self._beat.cancel()
        out = await self.plane.close()
        await self.store.close()
        return out


async def _result(response: Any) -> Any:
    """A handle call's answer; a fault comes back as the replica raised it, not wrapped in
    Ray's RayTaskError (so the API maps a ValidationError to a 422, an outage to a 503)."""
    try:
        return await response
    except Exception as exc:
        cause = unwrap(exc)
        if cause is exc or not isinstance(cause, Exception):
            raise
        raise cause from exc


class _Unwrapping:
    """A deployment handle whose ``method.remote(...)`` answers go through :func:`_result`."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._handle, name)

        class _Method:
            @staticmethod
            def remote(*args: Any, **kw: Any) -> Any:
                return _result(method.remote(*args, **kw))

        return _Method


class HandleBackend:
    """:class:`serve_apps.api.Backend` over the deployment handles."""

    def __init__(self, dataplane: Any, signoff: Any) -> None:
        self.dataplane, self.signoff = _Unwrapping(dataplane), _Unwrapping(signoff)

    async def ingest(self, batch: TickBatch, *, batch_id: str | None = None,
                     digest: str = "", dead: list | None = None) -> tuple[dict, bool]:
        result, replayed = await self.dataplane.ingest.remote(batch, batch_id, digest,
                                                              dead or [])
        return result, replayed

    async def news(self, items: list[NewsItem]) -> dict[str, int]:
        return await self.dataplane.news.remote(items)

    async def submit(self, incidents: list[dict]) -> list[dict]:
        return await self.signoff.submit.remote(incidents, None)

    async def approve(self, decision_id: str, by: str, note: str) -> dict:
        return await self.signoff.approve.remote(decision_id, by, note)

    async def reject(self, decision_id: str, by: str, note: str) -> dict:
        return await self.signoff.reject.remote(decision_id, by, note)

    async def account(self) -> dict:
        return await self.signoff.call.remote("account")

    async def positions(self) -> dict:
        return await self.signoff.call.remote("positions")

    async def pnl(self) -> dict:
        return await self.signoff.call.remote("pnl")

    async def cancel_all(self) -> int:
        return await self.signoff.call.remote("cancel_all")

    async def flatten(self) -> int:
        return await self.signoff.call.remote("flatten")

    async def metrics(self) -> dict:
        plane, orch = await asyncio.gather(self.dataplane.stats.remote(),
                                           self.signoff.call.remote("metrics"))
        return metric_sections(plane, orch)

    async def ready(self) -> dict[str, str]:
        await asyncio.gather(self.dataplane.stats.remote(), self.signoff.idle.remote())
        return {"data_plane": "ok", "signoff": "ok"}


@serve.deployment(name="Ingress", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64)
@serve.ingress()
class IngressDeployment:
    def __init__(self, spec: AppSpec, dataplane: Any, signoff: Any) -> None:
        self.spec = spec
        self.backend = HandleBackend(dataplane, signoff)
        self.store = LazyStore(spec.dsn)

    def __serve_build_asgi_app__(self):
        return build_app(self.backend, self.store, self.spec.table(), token=self.spec.verifier,
                         ledger_path=ledger_path(self.spec.settings),
                         news_table=self.spec.settings.table("news"),
                         replay_dsn=self.spec.dsn)  # replays refused across replicas


def application(spec: AppSpec) -> serve.Application:
    """The bound application (``serve.run`` it, or see :func:`start`)."""
    cfg = spec.serve
    cpus = {"num_cpus": cfg.replica_cpus}
    triage = TriageDeployment.options(
        ray_actor_options=cpus, max_ongoing_requests=cfg.triage_max_ongoing,
        autoscaling_config={"min_replicas": cfg.triage_min_replicas,
                            "max_replicas": cfg.triage_max_replicas,
                            "target_ongoing_requests": max(1, cfg.triage_max_ongoing // 2)},
    ).bind(spec)
    signoff = SignOffDeployment.options(ray_actor_options=cpus).bind(spec, triage)
    dataplane = DataPlaneDeployment.options(ray_actor_options=cpus).bind(spec, signoff)
    # No runtime_env: a secret there is readable from Ray's dashboard and its session logs.
    return IngressDeployment.options(
        num_replicas=cfg.ingress_replicas, ray_actor_options=cpus,
        max_ongoing_requests=cfg.max_ongoing_requests).bind(spec, dataplane, signoff)


@dataclass
class ServeApp:
    url: str
    spec: AppSpec
    dataplane: Any
    signoff: Any

    def shutdown(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Drain: the tick sink flushes and closes, decisions in flight finish; then the
        app is deleted (Serve itself stays up for whoever started it)."""
        out = {"dataplane": self.dataplane.drain.remote().result(timeout_s=timeout_s),
               "signoff": self.signoff.drain.remote(timeout_s / 2).result(
                   timeout_s=timeout_s)}
        serve.delete(APP_NAME)
        return out


def start(settings: Settings, dsn: str, symbols: SymbolTable | tuple[str, ...], *,
          config: ServeConfig | None = None, token: str,
          timeout_s: float = 180.0,
          probability_symbols: tuple[str, ...] = ()) -> ServeApp:
    """Deploy the app on the running Ray (start Ray first) and wait until it is ready.

    ``token`` is the bearer token of the mutating routes; only a salted verifier of it
    leaves this process (:mod:`serve_apps.bearer`). ``probability_symbols``: the feeds'
    probability-priced symbols (:func:`tripwire.adapters.registry.probability_symbols`)."""
    config = config or ServeConfig.from_settings(settings)
    names = tuple(symbols.names if isinstance(symbols, SymbolTable) else symbols)
    unknown = sorted(set(probability_symbols) - set(names))
    if unknown:
        raise ValueError(f"probability_symbols not among the app's symbols: {unknown}")
    spec = AppSpec(settings, dsn, names, config, TokenVerifier.of(token),
                   probability_symbols=tuple(probability_symbols))
    serve.start(http_options={"host": config.host, "port": config.port})
    serve.run(application(spec), name=APP_NAME, route_prefix="/", blocking=False)
    deadline = time.monotonic() + timeout_s
    while True:  # the deployments come up in the background: wait for every one
        status = serve.status().applications.get(APP_NAME)
        if status is not None and status.status == "RUNNING":
            break
        if status is not None and status.status in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise RuntimeError(f"the Serve app failed to deploy: {status.message}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Serve app was not running after {timeout_s:.0f} s")
        time.sleep(0.25)
    dataplane = serve.get_deployment_handle("DataPlane", app_name=APP_NAME)
    signoff = serve.get_deployment_handle("SignOff", app_name=APP_NAME)
    dataplane.stats.remote().result(timeout_s=timeout_s)  # starts shards, sink, heartbeats
    signoff.idle.remote().result(timeout_s=timeout_s)  # migrations, recovery, workers
    return ServeApp(f"http://{config.host}:{config.port}", spec, dataplane, signoff)
