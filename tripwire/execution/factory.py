"""One way to build the broker every driver trades through: :func:`build_broker`.

``[execution] broker`` picks it (see :mod:`tripwire.execution.config`):

=========  =====================================================  =========  =========
broker     what                                                   blocking   simulated
=========  =====================================================  =========  =========
paper      :class:`PaperBroker` on the driver's clock              no         yes
backtest   :class:`BacktestBroker` on the replayed ticks' clock    no         yes
ccxt       :class:`CcxtBroker` on ``exchange`` (sandbox default)   yes        no
=========  =====================================================  =========  =========

*blocking*: network calls; run them in a worker thread (``DecisionDeps.blocking_broker``,
``BrokerControl(blocking=True)``), never on the event loop. *simulated*: the broker fills
orders against the ticks it is fed (``on_ticks``); a real venue matches orders itself, and
its fills are polled.

The Serve app keeps the paper venue's book in PostgreSQL: it rebuilds the broker from its log
(:mod:`tripwire.store.paper_book`) and hands it in as ``paper=``. A ccxt broker re-adopts the
venue's open orders at build (:meth:`CcxtBroker.adopt`): the exchange is its book, so a
restarted driver sees the orders and balances it left. Missing credentials stop start-up
with an error naming the variable; nothing is traded on a half-configured exchange.

Every driver calls it the same way::

    built = build_broker(settings, symbols, clock)          # settings.execution.broker
    deps = DecisionDeps(broker=built.broker, backend=built.backend,
                        blocking_broker=built.blocking, ...)

(an async driver calls it through ``asyncio.to_thread``: ccxt's re-adoption is network I/O).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tripwire.config import Settings
from tripwire.execution.backtest import BacktestBroker
from tripwire.execution.base import AuthenticationFailed, Broker, Order
from tripwire.execution.config import BROKERS, ExecutionSettings
from tripwire.execution.paper import PaperBroker
from tripwire.model import Clock, SymbolTable

__all__ = ["BuiltBroker", "build_broker", "ccxt_broker"]

log = logging.getLogger("tripwire.execution")


@dataclass
class BuiltBroker:
    """A broker with what its driver must know about it."""

    broker: Broker
    kind: str  # "paper" | "backtest" | "ccxt"
    backend: str  # recorded on every order: "paper", "backtest", "ccxt:<exchange>"
    blocking: bool  # network calls: run them in a worker thread
    simulated: bool  # fills against fed ticks (on_ticks); False: the venue matches orders
    adopted: list[Order] = field(default_factory=list)  # working orders found at build

    @property
    def paper(self) -> PaperBroker | None:
        """The simulated venue (paper or backtest), or None for a real exchange."""
        return self.broker if isinstance(self.broker, PaperBroker) else None

    def close(self) -> None:
        close = getattr(self.broker, "close", None)
        if callable(close):
            close()


def build_broker(settings: Settings, symbols: SymbolTable, clock: Clock, *,
                 kind: str | None = None, paper: PaperBroker | None = None,
                 start_ns: int | None = None, env: Mapping[str, str] | None = None,
                 **ccxt_kw: Any) -> BuiltBroker:
    """The broker ``settings.execution`` configures (``kind`` overrides ``broker``; a
    driver that can only run one kind -- a backtest replays history, the decision demo is on
    market time -- passes it, and then ``settings`` needs only ``decisions``, as a
    backtest shard's config has).

    ``paper``: an already built paper venue (the Serve app's, rebuilt from its book) to use
    when the kind is paper. ``start_ns``: where a backtest broker's own clock starts
    (default ``clock.now_ns()``). ``env``: where the ccxt credentials are read (default
    ``os.environ``). ``ccxt_kw`` go to :class:`CcxtBroker` (tests: ``sleep``).
    """
    kind = kind or settings.execution.broker
    if kind not in BROKERS:
        raise ValueError(f"execution.broker must be one of {', '.join(BROKERS)}, got {kind!r}")
    if kind == "paper":
        broker = paper if paper is not None else PaperBroker(symbols, clock,
                                                             settings.decisions.paper)
        return BuiltBroker(broker, "paper", "paper", blocking=False, simulated=True)
    if kind == "backtest":
        start = clock.now_ns() if start_ns is None else start_ns
        broker = BacktestBroker(symbols, settings.decisions.paper, start_ns=start)
        return BuiltBroker(broker, "backtest", "backtest", blocking=False, simulated=True)
    ex = settings.execution
    if kind == "ccxt" and not ex.exchange:  # kind given as an override of a paper config
        raise ValueError('execution.exchange must name a ccxt exchange id when the broker '
                         'is "ccxt"')
    broker = ccxt_broker(ex, symbols, clock, env=env, **ccxt_kw)
    if not ex.sandbox:  # said once, loudly, at every start: this is real money
        log.warning("execution: broker ccxt on %s with sandbox = false: orders go to the "
                    "LIVE venue", ex.exchange)
    try:
        adopted = broker.adopt()  # restart and re-adopt: what is open on the venue is ours
    except BaseException:
        broker.close()
        raise
    return BuiltBroker(broker, "ccxt", f"ccxt:{ex.exchange}", blocking=True, simulated=False,
                       adopted=adopted)


def ccxt_broker(ex: ExecutionSettings, symbols: SymbolTable, clock: Clock, *,
                env: Mapping[str, str] | None = None, **kw: Any) -> Any:
    """A :class:`CcxtBroker` from ``[execution]`` (no network call yet).

    Configuration errors name the key: an unknown exchange id, a missing credential
    variable (``execution.api_key_env``/``secret_env`` and the variable's name; never a
    value), a venue without a sandbox while ``sandbox = true``."""
    from tripwire.execution.exchange import CcxtBroker  # ccxt loads only when chosen

    env = os.environ if env is None else env
    for key in ("api_key_env", "secret_env"):
        var = getattr(ex, key)
        if not env.get(var):
            raise AuthenticationFailed(
                f"execution.{key}: environment variable {var} is not set (or empty); it must "
                f"hold the {ex.exchange} API credentials", venue=ex.exchange,
                operation="configure")
    try:
        return CcxtBroker(
            ex.exchange, symbols.names, sandbox=ex.sandbox, api_key_env=ex.api_key_env,
            secret_env=ex.secret_env, env=env, symbol_map=ex.symbol_map or None,
            quote=ex.quote or None, exchange_options=ex.ccxt_constructor_options(),
            urls=ex.urls or None, max_retries=ex.max_retries, clock=clock, **kw)
    except ValueError as exc:  # unknown id, no sandbox: say which key to change
        key = "execution.sandbox" if "sandbox" in str(exc) else "execution.exchange"
        raise ValueError(f"{key}: {exc}") from None
