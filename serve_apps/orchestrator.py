"""The long-lived decision service: incidents in, decisions out, on one configured venue.

:class:`Orchestrator` hosts what must live in one place: the sign-off
:class:`~graphs.runner.DecisionRunner` with its PostgreSQL checkpointer, the execution
backend ``[execution] broker`` names (built by :func:`tripwire.execution.factory.build_broker`:
the paper venue, its book rebuilt from PostgreSQL at start by :mod:`tripwire.store.paper_book`
and refusing orders when it cannot be; or a ccxt exchange, which re-adopts its open orders
at start, is called from worker threads and whose fills are polled) and the latest
prices the fact-checker reads. Incidents are queued through the runner's intake
(coalescing, a bounded queue); ``workers`` tasks take them, get a verdict from ``triage``
(the autoscaled triage deployment in the Serve app, the local runner otherwise) and run the
sign-off graph.
Ticks move the paper venue (an exchange moves itself: its orders are polled each second);
fills are copied into the store and the journal rewritten.

It knows nothing of Serve: :mod:`serve_apps.app` wraps it in a deployment, tests and the
uvicorn baseline use it directly. ``close`` stops taking work, lets decisions in flight
finish (their checkpoints make an interrupted one resumable) and closes the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphs.deps import DecisionDeps, build_deps
from graphs.runner import (
    TRIAGE_FAILED,
    DecisionResult,
    DecisionRunner,
    postgres_checkpointer,
    triage_end,
)
from graphs.signoff import sync_order, write_journal
from tripwire.config import Settings
from tripwire.decisions.prices import LatestPrices
from tripwire.engine import Venue
from tripwire.execution.base import Order, OrderStatus, UnknownOrder
from tripwire.execution.factory import BuiltBroker, build_broker
from tripwire.execution.paper import PaperBroker
from tripwire.feeds.validate import TimeWindow
from tripwire.incident import Incident
from tripwire.llm.factory import build_llm_pg
from tripwire.llm.skills import SkillLoader
from tripwire.metrics import DecisionMetrics, families
from tripwire.model import Clock, SimClock, SymbolTable, SystemClock, TickBatch, new_id
from tripwire.store.decisions import StoreError
from tripwire.store.journal import journal_root
from tripwire.store.migrate import migrate
from tripwire.store.paper_book import PaperBookLog, rebuild
from tripwire.store.pg_decisions import PgDecisionStore
from tripwire.watchdog import BrokerControl

log = logging.getLogger("tripwire.orchestrator")
SKILLS_DIR = Path(__file__).resolve().parent.parent / "skills"
MAX_UNSETTLED = 10_000  # half-done incidents remembered for settling after a fault
Triage = Callable[[Incident, Mapping[str, str] | None], Awaitable[dict[str, Any]]]


def metric_sections(plane: dict[str, Any], orch: dict[str, Any]) -> dict[str, Any]:
    """The data plane's stats and :meth:`Orchestrator.metrics` as ``/metrics`` sections."""
    return {"dataplane": {k: v for k, v in plane.items() if isinstance(v, int | float)},
            "signoff": {**orch["counters"], "inflight": orch["inflight"],
                        "queued": orch["queued"]},
            "otel": orch["otel"]}


@dataclass
class Parts:
    """What a runner needs, built the same way for the sign-off and the triage replicas."""

    store: PgDecisionStore
    deps: DecisionDeps
    paper: PaperBroker | None  # the simulated venue fed ticks; None on an exchange
    prices: LatestPrices
    reader: Any  # the in-memory metric reader behind deps.metrics
    venue: BuiltBroker | None = None  # the broker as built, with its backend name


async def build_parts(settings: Settings, dsn: str, symbols: SymbolTable,
                      clock: Clock, paper: PaperBroker | None = None,
                      venue: BuiltBroker | None = None, seeded_ids: bool = False) -> Parts:
    """``venue``: the broker to trade through (default: a paper venue, ``paper`` if given;
    the triage replicas place no orders and never open an exchange session).
    ``seeded_ids``: verdict and signature ids reproducible on market time (a replay)."""
    store = await PgDecisionStore.connect(dsn)
    cfg = settings.decisions
    prices = LatestPrices(symbols)
    if venue is None:
        venue = build_broker(settings, symbols, clock, kind="paper", paper=paper)
    metrics, reader = DecisionMetrics.in_memory()
    # Ledger and day budgets in PostgreSQL: one budget for the SignOff and every Triage
    # replica, kept across restarts (the router's aclose closes their pool).
    llm = await build_llm_pg(settings.llm, dsn)
    deps = build_deps(
        venue.broker, venue.backend, store=store, blocking_broker=venue.blocking,
        router=llm.router, skills=SkillLoader(SKILLS_DIR), config=cfg, prices=prices,
        clock=clock, metrics=metrics, journal_root=journal_root(Path(settings.data_dir)),
        seeded_ids=seeded_ids)
    return Parts(store, deps, venue.paper, prices, reader, venue)


class Orchestrator:
    def __init__(self, settings: Settings, dsn: str, symbols: SymbolTable, *,
                 triage: Triage | None = None, workers: int = 2,
                 clock: Clock | None = None,
                 decision_ids: Callable[[Incident], str] | None = None) -> None:
        """``decision_ids(incident)``: the id of the decision on ``incident`` (a replay
        on market time draws them from the backtest's seeded generators, so ids compare:
        ``tripwire parity``); None: a fresh UUIDv7 on the clock. Given, the deps' verdict
        and signature ids are seeded too (:attr:`DecisionDeps.seeded_ids`)."""
        if workers < 1:
            raise ValueError(f"serve.signoff_workers must be >= 1, got {workers!r}")
        self.settings, self.dsn, self.symbols = settings, dsn, symbols
        self.clock = clock or SystemClock()
        # Incidents' times must be in this window around the clock (market time when the
        # clock is a SimClock the ticks move; the wall clock live).
        self.window = TimeWindow.from_settings(settings.time,
                                               market=isinstance(self.clock, SimClock))
        self._triage_remote = triage
        self._decision_ids = decision_ids
        self._n_workers = workers
        self._stack = contextlib.AsyncExitStack()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._inflight = 0
        self._closing = False
        self._tracked: dict[str, str] = {}  # client order id -> decision id, until flat
        self._fill_counts: dict[str, int] = {}
        self._c = {"submitted": 0, "decided": 0, "triage_failed": 0, "errors": 0,
                   "tick_batches": 0, "paper_refused_ticks": 0, "incidents_bad_time": 0,
                   "venue_polls_failed": 0, "venue_orders_adopted": 0,
                   "venue_orders_unknown": 0}
        self._next_poll = 0.0  # time.monotonic() of the next exchange poll
        self._seen: dict[str, tuple[OrderStatus, float]] = {}  # exchange order -> last synced
        # Work a fault left half-done (incident id -> its decision id or None, why), closed
        # by _settle once the database answers; bounded, overflow counted.
        self._unsettled: dict[str, tuple[str | None, str]] = {}
        self._c.update(settled_decisions=0, abandoned_incidents=0, unsettled_dropped=0)
        self._traces: dict[str, dict[str, str]] = {}  # incident id -> its trace carrier
        self.results: list[DecisionResult] = []  # bounded below
        self.max_results = 10_000
        self.parts: Parts | None = None
        self.runner: DecisionRunner | None = None
        self.book: PaperBookLog | None = None
        self.book_refusal = ""  # why the book was not rebuilt ("" when it was)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, recover: bool = True) -> Orchestrator:
        await migrate(self.dsn)
        venue, rebuilt = await self._open_venue()
        self.parts = await build_parts(self.settings, self.dsn, self.symbols, self.clock,
                                       venue=venue, seeded_ids=self._decision_ids is not None)
        self._stack.push_async_callback(self.parts.store.close)
        self._stack.push_async_callback(self.parts.deps.router.aclose)
        if self.book is not None:
            self.parts.deps.after_broker_call = self._book_flush
        if rebuilt is not None:
            await self._resume_book(rebuilt)
        saver = await self._stack.enter_async_context(postgres_checkpointer(self.dsn))
        self.runner = DecisionRunner(self.parts.deps, saver)
        if recover:  # after the book: a resumed decision sees the venue as it was
            for r in await self.runner.recover():
                self._remember(r)
        self._tasks = [asyncio.create_task(self._worker(i)) for i in range(self._n_workers)]
        self._tasks.append(asyncio.create_task(self._expiry_loop()))
        return self

    async def _open_venue(self) -> tuple[BuiltBroker, Any]:
        """The configured venue: the paper book rebuilt from PostgreSQL, or the exchange
        with its open orders re-adopted (built in a thread: that is network I/O). An
        exchange that cannot be configured or reached stops start-up (fail closed)."""
        kind = self.settings.execution.broker
        if kind == "backtest":
            raise ValueError('execution.broker = "backtest" replays history; the live '
                             'service trades on "paper" or "ccxt"')
        if kind == "ccxt":
            venue = await asyncio.to_thread(build_broker, self.settings, self.symbols,
                                            self.clock)
            self._stack.callback(venue.close)
            adopted = venue.adopted
            for order in adopted:  # watched until final, their store rows kept in step
                self._seen.setdefault(order.id, (order.status, order.filled_qty))
            self._c["venue_orders_adopted"] = len(adopted)
            log.info("exchange %s: %d open orders re-adopted", venue.backend, len(adopted))
            return venue, None
        paper, rebuilt = await self._rebuild_book()
        return build_broker(self.settings, self.symbols, self.clock, kind="paper",
                            paper=paper), rebuilt

    async def _rebuild_book(self) -> tuple[PaperBroker, Any]:
        """The paper venue rebuilt from its log, or an empty one that refuses orders."""
        cfg = self.settings.decisions.paper
        try:
            self.book = await PaperBookLog.open(self.dsn)
            self._stack.push_async_callback(self._close_book)
            rebuilt = await rebuild(self.book, self.symbols, cfg, self.clock)
            return rebuilt.broker, rebuilt
        except Exception as exc:  # fail closed: never trade from a flat book that was not
            reason = f"{type(exc).__name__}: {exc}"[:500]
            log.error("the paper book was not rebuilt; the venue refuses orders: %s", reason)
            self.book_refusal = reason
            if self.book is not None:
                self.book.fail(reason)
            paper = PaperBroker(self.symbols, self.clock, cfg)
            paper.refusal = lambda: f"the paper book could not be rebuilt: {reason}"
            return paper, None

    async def _resume_book(self, rebuilt: Any) -> None:
        """Re-track open orders, bring lagging store rows up to the book, restore the peak."""
        deps = self.parts.deps
        self._tracked.update(rebuilt.track)
        for point in rebuilt.broker.equity_curve():
            deps.equity.observe(point.equity, point.ts_ns)
        deps.equity.peak = max(deps.equity.peak, rebuilt.peak)
        await self._sync_orders(rebuilt.lagging)
        log.info("paper book rebuilt: %d events, %d orders tracked, %d store rows synced, "
                 "%d legacy orders", rebuilt.events, len(rebuilt.track), len(rebuilt.lagging),
                 rebuilt.legacy)

    async def _book_flush(self) -> None:
        """Write the venue's new events (never raises: a failure makes the venue refuse)."""
        if self.book is not None:
            await self.book.flush()

    async def _close_book(self) -> None:
        if self.book is not None:
            if self.parts is not None and self.parts.paper is not None:
                self.book.checkpoint(self.parts.paper)
            await self.book.close()

    async def close(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """Stop taking incidents; let queued and in-flight decisions finish, then close."""
        self._closing = True
        self._wake.set()
        workers, expiry = self._tasks[:-1], self._tasks[-1:]
        for t in expiry:
            t.cancel()
        _done, pending = await asyncio.wait(workers, timeout=timeout_s) if workers else ((), ())
        for t in pending:  # a decision stuck past the timeout resumes from its checkpoint
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stack.aclose()
        return {**self._c, "unfinished_at_close": len(pending)}

    # -- incidents ---------------------------------------------------------------------------

    async def submit(self, incidents: list[dict[str, Any]],
                     trace: Mapping[str, str] | None = None) -> list[dict[str, str]]:
        """Queue incidents (JSON dicts); each one's id and whether it was queued."""
        if self._closing:
            raise RuntimeError("the orchestrator is shutting down; incidents are not taken")
        out = []
        checked = [self._in_window(Incident.model_validate(raw)) for raw in incidents]
        for incident in checked:  # all or nothing: one bad time refuses the whole request
            if not incident.id:
                incident = incident.model_copy(update={"id": new_id(self.clock)})
            skipped = await self.runner.submit(incident)
            self._c["submitted"] += 1
            if skipped is None:
                self._traces[incident.id] = dict(trace or {})
            # A duplicate trip answers with the id of the incident that owns the trip.
            out.append({"id": skipped.incident_id if skipped else incident.id,
                        "status": skipped.reason if skipped else "queued"})
        self._wake.set()
        return out

    def _in_window(self, incident: Incident) -> Incident:
        """The incident, or ValueError naming ``ts_ns`` when its time is outside the window
        (a trip from the future, or from so long ago that its prices mean nothing now)."""
        now = self.clock.now_ns()
        why = self.window.refusal(incident.ts_ns, now, now)
        if why is not None:
            self._c["incidents_bad_time"] += 1
            raise ValueError(f"ts_ns: {why}")
        return incident

    async def _worker(self, n: int) -> None:
        while True:
            incident = self.runner.take()
            if incident is None:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            self._inflight += 1
            ctx: dict[str, str] = {}
            try:
                self._remember(await self._decide(incident, ctx))
            except Exception as exc:  # one bad incident never stops the service; counted
                self._c["errors"] += 1
                log.exception("worker %d: incident %s failed", n, incident.id)
                self._unsettle(incident.id, ctx.get("decision_id"),
                               f"{type(exc).__name__}: {exc}")
            finally:
                self._inflight -= 1

    def _unsettle(self, incident_id: str, decision_id: str | None, why: str) -> None:
        if len(self._unsettled) >= MAX_UNSETTLED and incident_id not in self._unsettled:
            self._c["unsettled_dropped"] += 1  # a restart's recover still closes them
            return
        self._unsettled[incident_id] = (decision_id, why[:200])

    async def _settle(self) -> None:
        """Close what a fault left half-done, once the database answers again: a decision
        whose run raised ends REJECTED (or adopts its order, if the venue has one), and an
        incident left ``triaging`` is closed ``abandoned: <why>`` (see DecisionRunner)."""
        for incident_id, (decision_id, why) in list(self._unsettled.items()):
            try:
                if decision_id is not None:
                    result = await self.runner.settle_failed(decision_id, why)
                    if result is not None:
                        self._remember(result)
                        self._c["settled_decisions"] += 1
                if await self.runner.abandon(incident_id, why):
                    self._c["abandoned_incidents"] += 1
            except Exception:  # the database is still down: the next round tries again
                return
            self._unsettled.pop(incident_id, None)

    async def _decide(self, incident: Incident,
                      ctx: dict[str, str] | None = None) -> DecisionResult:
        ctx = {} if ctx is None else ctx
        trace = self._traces.pop(incident.id, None)
        if self._triage_remote is not None:
            triaged = await self._triage_remote(incident, trace)
        else:
            triaged = await self.runner.triage(incident, trace=trace)
        ended = triage_end(incident, triaged)  # the backtest's rule (a panel's HOLD too)
        if ended is not None:
            if ended.outcome == TRIAGE_FAILED:
                self._c["triage_failed"] += 1
                # Failed because the database did? Then its final status may not have been
                # written either: _settle closes the incident if it is still 'triaging'.
                self._unsettle(ended.incident_id, None, ended.reason or "triage failed")
            return ended
        incident = incident.model_copy(update={"id": triaged["incident_id"]})
        # The id is chosen here so a run that raises can still be found and settled.
        ctx["decision_id"] = (self._decision_ids(incident) if self._decision_ids is not None
                              else new_id(self.clock))
        result = await self.runner.decide(incident, triaged, ctx["decision_id"], trace=trace)
        if self.runner.unrecorded(result):  # ended, but its outcome never reached the store
            self._unsettle(incident.id, result.decision_id, result.reason)
        return result

    def _remember(self, result: DecisionResult) -> None:
        self._c["decided"] += 1
        self.results.append(result)
        del self.results[:-self.max_results]
        if result.order_id is not None and result.decision_id is not None:
            self._tracked[result.order_id] = result.decision_id

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                for r in await self.runner.expire_due():
                    self._remember(r)
            except Exception:
                self._c["errors"] += 1
                log.exception("expiring approvals failed")
            if self._unsettled:
                await self._settle()
            if self.parts.paper is None:
                await self._poll_venue()

    async def idle(self) -> bool:
        """True when nothing is queued or being decided."""
        return self._inflight == 0 and self.runner.queued() == 0

    # -- people ------------------------------------------------------------------------------

    async def approve(self, decision_id: str, by: str, note: str = "") -> dict[str, Any]:
        return await self._answer(decision_id, True, by, note)

    async def reject(self, decision_id: str, by: str, note: str = "") -> dict[str, Any]:
        return await self._answer(decision_id, False, by, note)

    async def _answer(self, decision_id: str, approve: bool, by: str,
                      note: str) -> dict[str, Any]:
        approval = await self.parts.store.approval(decision_id)
        if approval is None:
            raise LookupError(f"decision {decision_id} is not waiting for approval")
        if approval.status != "pending":
            raise ValueError(f"decision {decision_id}'s approval is already {approval.status}")
        fn = self.runner.approve if approve else self.runner.reject
        result = await fn(decision_id, by, note)
        self._remember(result)
        if self.runner.unrecorded(result):
            self._unsettle(result.incident_id or decision_id, decision_id, result.reason)
        return {"decision_id": decision_id, "outcome": result.outcome, "reason": result.reason,
                "order_id": result.order_id}

    # -- the venue ---------------------------------------------------------------------------

    async def on_ticks(self, batch: TickBatch, until_ns: int | None = None) -> int:
        """Move prices and the paper venue; copy new fills into the store. New fills.

        ``batch`` holds validated ticks (the data plane's). The venue skips and counts rows
        late for their symbol and takes the rest, so one late row never stalls a stop; the
        market clock follows only what the venue took -- or, given ``until_ns`` (the
        engine's segment end over every symbol, :class:`tripwire.engine.Venue`), moves
        there, as in a backtest, whichever symbols this venue trades."""
        if not len(batch):
            Venue(None, None, self.clock).advance(until_ns)
            return 0
        self._c["tick_batches"] += 1
        paper = self.parts.paper
        refused = paper.refused_rows if paper is not None else 0
        # The engine's venue step: the paper venue takes the ticks, the prices follow, and
        # on market time the clock moves to the latest tick the venue took.
        fills = Venue(paper, self.parts.prices, self.clock).step(batch, until_ns)
        if paper is None:  # an exchange matches its orders itself (_poll_venue syncs them)
            return 0
        await self._book_flush()  # the book's changes reach PostgreSQL before the store's
        self._c["paper_refused_ticks"] += paper.refused_rows - refused
        if fills:
            await self._sync_fills({f.order_id for f in fills})
        return len(fills)

    async def _sync_orders(self, order_ids: Any) -> None:
        """Copy orders' venue state into the store (those it has: a watchdog's flatten
        order belongs to no decision and has no row)."""
        deps = self.parts.deps
        for order_id in order_ids:
            try:
                await sync_order(deps, order_id)
            except StoreError:
                continue
            decision_id = self._tracked.get(order_id)
            if decision_id is not None:
                await write_journal(deps, decision_id)

    async def _sync_fills(self, order_ids: set[str]) -> None:
        deps = self.parts.deps
        for order_id in order_ids:
            decision_id = self._tracked.get(order_id)
            if decision_id is None:
                continue
            await sync_order(deps, order_id)
            await write_journal(deps, decision_id)

    async def _venue(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """Call the venue: directly for the paper one, in a worker thread for an exchange
        (network I/O stays off the event loop)."""
        if self.parts.venue is not None and self.parts.venue.blocking:
            return await asyncio.to_thread(fn, *args, **kw)
        return fn(*args, **kw)

    def _control(self, *, equity: bool = False) -> BrokerControl:
        venue = self.parts.venue
        return BrokerControl(venue.broker, self.parts.deps.equity if equity else None,
                             self.clock, blocking=venue.blocking)

    async def account(self) -> dict[str, Any]:
        snap = await self._venue(self._control(equity=True).snapshot)
        # clock_ns and each mark_ns let the watchdog judge how old a mark is (mark_stale).
        return {"equity": snap.equity, "peak_equity": snap.peak_equity,
                "gross_exposure": snap.gross_exposure, "open_orders": snap.open_orders,
                "clock_ns": snap.clock_ns, "backend": self.parts.venue.backend,
                "positions": [{"symbol": p.symbol, "qty": p.qty, "price": p.price,
                               "stop_attached": p.stop_attached, "mark_ns": p.mark_ns,
                               "refused_ticks": p.refused_ticks} for p in snap.positions]}

    async def positions(self) -> dict[str, Any]:
        broker = self.parts.venue.broker

        def read() -> tuple[Any, dict[str, Any]]:  # one thread hop for both reads
            return self._control().snapshot(), broker.positions()

        snapshot, positions = await self._venue(read)
        snap = {p.symbol: p for p in snapshot.positions}
        rows = []
        for sym, p in sorted(positions.items()):
            if p.qty == 0:
                continue
            rows.append({"symbol": sym, "qty": p.qty, "avg_price": _num(p.avg_price),
                         "mark": _num(p.mark_price), "unrealised_pnl": _num(p.unrealised_pnl),
                         "realised_pnl": _num(p.realised_pnl),
                         "stop_attached": bool(snap.get(sym) and snap[sym].stop_attached),
                         "mark_ns": snap[sym].mark_ns if sym in snap else None,
                         "refused_ticks": snap[sym].refused_ticks if sym in snap else 0})
        return {"backend": self.parts.venue.backend, "positions": rows}

    async def pnl(self) -> dict[str, Any]:
        a = await self._venue(self.parts.venue.broker.account)
        day_pnl, peak = self.parts.deps.equity.observe(a.equity, self.clock.now_ns())
        drawdown = max(0.0, 1.0 - a.equity / peak) if peak > 0 else 0.0
        return {"day_pnl": day_pnl, "equity": a.equity, "cash": a.cash,
                "initial_cash": a.initial_cash,
                "realised_pnl": a.realised_pnl, "unrealised_pnl": a.unrealised_pnl,
                "fees": a.fees, "peak_equity": peak, "drawdown": drawdown}

    async def cancel_all(self) -> int:
        """Cancel every working order (the watchdog's closing ones excepted); the store's
        rows follow the venue."""
        broker = self.parts.venue.broker

        def cancel() -> tuple[int, list[str]]:
            working = [o.id for o in broker.orders(working_only=True)]
            n = self._control().cancel_open_orders()
            return n, [i for i in working
                       if broker.get_order(i).status is OrderStatus.CANCELLED]

        n, cancelled = await self._venue(cancel)
        await self._book_flush()
        await self._sync_orders(cancelled)
        return n

    async def flatten(self) -> int:
        n = await self._venue(self._control().flatten)
        await self._book_flush()
        return n

    async def _poll_venue(self) -> None:
        """An exchange fills orders on its own: copy the changes of the orders this service
        placed or re-adopted (fills, a cancel) into the store. Each round, at most every
        ``[execution] poll_s``, asks the venue about the watched orders still working, one
        lookup each (bounded by what is open, not by the symbols configured); a failed
        lookup is counted and asked again next round; an order is watched until it is
        filled or cancelled, or the venue says it has no such order (counted, logged)."""
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + self.settings.execution.poll_s
        broker = self.parts.venue.broker
        working = sorted(i for i in set(self._tracked) | set(self._seen)
                         if self._seen.get(i, (OrderStatus.OPEN, 0.0))[0].working)

        def read() -> list[Order | BaseException]:
            out: list[Order | BaseException] = []
            for order_id in working:
                try:
                    out.append(broker.get_order(order_id))
                except Exception as exc:  # one order's failure never hides the others
                    out.append(exc)
            return out

        for order_id, o in zip(working, await asyncio.to_thread(read), strict=True):
            if isinstance(o, UnknownOrder):
                self._c["venue_orders_unknown"] += 1
                log.error("exchange has no order %s; no longer watched: %s", order_id, o)
                self._seen[order_id] = (OrderStatus.CANCELLED, 0.0)
                continue
            if isinstance(o, BaseException):
                self._c["venue_polls_failed"] += 1
                log.warning("exchange order %s not read: %s", order_id, o)
                continue
            if self._seen.get(o.id) == (o.status, o.filled_qty):
                continue
            try:
                await self._sync_orders([o.id])
            except Exception as exc:  # store or venue down: synced again next round
                self._c["venue_polls_failed"] += 1
                log.warning("exchange order %s not synced: %s", o.id, exc)
                continue
            self._seen[o.id] = (o.status, o.filled_qty)

    # -- observation -------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        return {"counters": dict(self._c), "inflight": self._inflight,
                "queued": self.runner.queued(), "otel": families(self.parts.reader),
                "book": self.book_status()}

    def book_status(self) -> dict[str, Any]:
        """The paper book's log: events, pending writes, and why orders are refused."""
        if self.book is None:
            paper = self.parts.paper if self.parts else None
            refusal = paper.refusal() if paper is not None and paper.refusal else ""
            return {"refusal": refusal if self.parts else self.book_refusal}
        return self.book.status()


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None



class TriageService:
    """One triage replica: the triage graph on its own runner (store, LLM router, checkpoints).

    Replicas share nothing but PostgreSQL, so the Serve app scales them with the load; the
    paper venue its runner is given is never used (triage places no orders).
    """

    def __init__(self, settings: Settings, dsn: str, symbols: SymbolTable,
                 clock: Clock | None = None) -> None:
        self.settings, self.dsn, self.symbols = settings, dsn, symbols
        self.clock = clock or SystemClock()
        self._stack = contextlib.AsyncExitStack()
        self.runner: DecisionRunner | None = None

    async def start(self) -> TriageService:
        parts = await build_parts(self.settings, self.dsn, self.symbols, self.clock)
        self._stack.push_async_callback(parts.store.close)
        self._stack.push_async_callback(parts.deps.router.aclose)
        saver = await self._stack.enter_async_context(postgres_checkpointer(self.dsn))
        self.runner = DecisionRunner(parts.deps, saver)
        return self

    async def triage(self, incident: dict[str, Any],
                     trace: Mapping[str, str] | None = None) -> dict[str, Any]:
        return await self.runner.triage(Incident.model_validate(incident), trace=trace)

    async def close(self) -> None:
        await self._stack.aclose()
