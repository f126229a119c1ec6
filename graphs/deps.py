"""What the decision graphs need from the outside world, in one object.

The graphs are built around a :class:`DecisionDeps`: the decision store, the execution
backend, the LLM router and skills, the settings, the latest prices, the clock, the metrics,
the breakers and where journal files go. Tests and benchmarks build one with in-memory
parts; the CLI and the Serve app with PostgreSQL and the configured backend.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tripwire.decisions.config import DecisionConfig
from tripwire.decisions.portfolio import EquityTracker
from tripwire.execution.base import Broker
from tripwire.llm.router import Router
from tripwire.llm.skills import SkillLoader
from tripwire.metrics import DecisionMetrics, InstrumentedBroker
from tripwire.model import Clock, new_id
from tripwire.risk.gates import HaltStatus, PnLBreaker, RejectionBreaker
from tripwire.store.decisions import DecisionStore


class PriceSource(Protocol):
    def get(self, symbol: str) -> tuple[float, int] | None: ...


@dataclass
class DecisionDeps:
    store: DecisionStore
    broker: Broker
    backend: str  # "paper", "backtest", "ccxt:<exchange>": recorded on every order
    router: Router
    skills: SkillLoader
    config: DecisionConfig
    prices: PriceSource
    clock: Clock
    metrics: DecisionMetrics = field(default_factory=DecisionMetrics)
    journal_root: Path | None = None
    blocking_broker: bool = False  # a network backend: call it in a worker thread
    rejections: RejectionBreaker | None = None
    pnl: PnLBreaker | None = None
    equity: EquityTracker = field(default_factory=EquityTracker)
    # Test hook: called with the node's name before each node runs (fault injection).
    before_node: Callable[[str, dict[str, Any]], Any] | None = None
    # Awaited after every backend call: the paper venue writes the changes of its book to
    # PostgreSQL here (tripwire.store.paper_book), before the graph records the order.
    after_broker_call: Callable[[], Awaitable[Any]] | None = None
    # A replay (the backtest): ids the graphs draw (verdicts) are derived from what they
    # name and the market clock, so the same stream gives the same ids, proposal hashes and
    # signatures in every run and fan-out. Live: random (UUIDv7 from os.urandom).
    seeded_ids: bool = False

    def __post_init__(self) -> None:
        s = self.config.signoff
        if self.rejections is None:
            self.rejections = RejectionBreaker(
                self.clock, threshold=s.rejection_threshold,
                window_ns=self.config.ns("rejection_window_s"),
                cooldown_ns=self.config.ns("rejection_cooldown_s"))
        if self.pnl is None:
            self.pnl = PnLBreaker(self.clock, daily_loss_limit=s.daily_loss_limit)

    def derived_id(self, purpose: str, key: str) -> str:
        """A new id for ``purpose`` (e.g. "verdict") of ``key`` (e.g. the incident id) at the
        clock's time: reproducible with :attr:`seeded_ids`, random otherwise."""
        rng = (random.Random(f"{purpose}|{key}|{self.clock.now_ns()}") if self.seeded_ids
               else None)
        return new_id(self.clock, rng)

    async def broker_call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Call the backend: directly for in-memory ones, in a thread for network ones."""
        if self.blocking_broker:
            result = await asyncio.to_thread(fn, *args, **kw)
        else:
            result = fn(*args, **kw)
        if self.after_broker_call is not None:
            await self.after_broker_call()
        return result

    async def read_halt(self) -> HaltStatus | None:
        """The halt flag, or None when it cannot be read (callers treat None as halted)."""
        try:
            status = await self.store.read_halt()
        except Exception:  # unreadable counts as halted: the caller fails closed
            return None
        return status if isinstance(status, HaltStatus) else None

    async def position_qty(self, symbol: str) -> float | None:
        try:
            positions = await self.broker_call(self.broker.positions)
        except Exception:  # unreadable: the fact-checker fails closed on None
            return None
        pos = positions.get(symbol)
        qty = 0.0 if pos is None else float(pos.qty)
        return qty if math.isfinite(qty) else None


def build_deps(broker: Broker, backend: str, *, store: DecisionStore, router: Router,
               skills: SkillLoader, config: DecisionConfig, prices: PriceSource, clock: Clock,
               metrics: DecisionMetrics | None = None, journal_root: Path | None = None,
               blocking_broker: bool = False, seeded_ids: bool = False) -> DecisionDeps:
    """The one way every driver assembles :class:`DecisionDeps` (backtest, ``tripwire
    decide``, the Serve app). ``broker`` is whatever the driver's configuration chose
    (``tripwire.execution.build_broker``), ``backend`` its name, recorded on every order.
    With ``metrics`` the broker is wrapped to count what it does (orders, cancels,
    failures by backend); without, it is used as is (a backtest counts nothing)."""
    if metrics is not None:
        broker = InstrumentedBroker(broker, metrics, backend)
    return DecisionDeps(
        store=store, broker=broker, backend=backend, router=router, skills=skills,
        config=config, prices=prices, clock=clock,
        metrics=metrics if metrics is not None else DecisionMetrics(),
        journal_root=journal_root, blocking_broker=blocking_broker, seeded_ids=seeded_ids)
