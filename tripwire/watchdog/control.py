"""The watchdog's port to the execution side, and two adapters.

:class:`BrokerControl` drives a :class:`tripwire.execution.base.Broker` directly (paper, ccxt);
:class:`HttpControl` drives the orchestrator's HTTP routes (``GET /v1/account``,
``POST /v1/orders/cancel-all``, ``POST /v1/positions/flatten``). Any error reading the account
propagates: the watchdog turns it into an ``account_unreadable`` breach (fail closed).

When is a position protected? On paper, when the live brackets (stops armed by filled orders)
on the position's side guard at least its whole quantity. A backend without ``brackets()``
(ccxt) attaches the stop to the order on the venue, so there the filled quantity of orders
on the position's side that carry a ``stop_loss`` counts as guarded.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from tripwire.decisions.portfolio import EquityTracker
from tripwire.execution.base import (
    Broker,
    ExecutionError,
    OrderNotOpen,
    OrderRequest,
    OrderStatus,
    Position,
    Side,
)
from tripwire.model import Clock, SystemClock
from tripwire.watchdog.checks import AccountSnapshot, PositionView

FLATTEN_PREFIX = "wd-flat-"  # client order ids of the watchdog's own closing orders
QTY_TOLERANCE = 1e-9  # relative: a stop guarding 0.999999999 of the qty guards all of it


class ExecutionControl(Protocol):
    """What the watchdog needs from the execution side (blocking calls)."""

    def snapshot(self) -> AccountSnapshot: ...

    def cancel_open_orders(self) -> int: ...

    def flatten(self) -> int: ...


def _mark(pos: Position) -> float:
    return pos.mark_price if math.isfinite(pos.mark_price) else pos.avg_price


class BrokerControl:
    """ExecutionControl over a Broker. Peak equity starts at the account's initial cash and
    follows the highest equity seen (and ``equity_tracker``'s peak, when given)."""

    def __init__(self, broker: Broker, equity_tracker: EquityTracker | None = None,
                 clock: Clock | None = None, *, blocking: bool = False) -> None:
        self.broker = broker
        # Paper is in-memory arithmetic, called on the loop; a network broker (ccxt) blocks,
        # so the watchdog runs its calls in a thread.
        self.blocking = blocking
        self.tracker = equity_tracker
        self.clock = clock or SystemClock()
        self._peak = -math.inf

    def snapshot(self) -> AccountSnapshot:
        account = self.broker.account()
        equity = account.equity
        self._peak = max(self._peak, account.initial_cash, equity)
        if self.tracker is not None:
            self.tracker.observe(equity, self.clock.now_ns())
            self._peak = max(self._peak, self.tracker.peak)
        views, gross = [], 0.0
        # Mark times: only a backend that tracks them (paper) has marks(); others are not
        # judged on mark age (their venue marks the position itself).
        marks_fn = getattr(self.broker, "marks", None)
        marks = marks_fn() if callable(marks_fn) else {}
        for symbol, pos in self.broker.positions().items():
            if pos.qty == 0:
                continue
            price = _mark(pos)
            gross += abs(pos.qty * price) if math.isfinite(price) else math.inf
            mark = marks.get(symbol)
            views.append(PositionView(
                symbol, pos.qty, price, self._protected(symbol, pos.qty),
                mark.mark_ns if mark is not None else None,
                mark.refused if mark is not None else 0))
        opened = [o for o in self.broker.orders(working_only=True)
                  if not o.id.startswith(FLATTEN_PREFIX)]
        return AccountSnapshot(equity, self._peak, gross, len(opened), tuple(views),
                               self.clock.now_ns())

    def _protected(self, symbol: str, qty: float) -> bool:
        side = Side.BUY if qty > 0 else Side.SELL
        brackets = getattr(self.broker, "brackets", None)
        if callable(brackets):
            guarded = sum(b.qty for b in brackets(symbol)
                          if b.side is side and b.stop_loss is not None)
        else:
            guarded = sum(o.filled_qty for o in self.broker.orders(symbol)
                          if o.request.side is side and o.request.stop_loss is not None
                          and o.status in (OrderStatus.FILLED, OrderStatus.OPEN))
        return guarded >= abs(qty) * (1 - QTY_TOLERANCE)

    def cancel_open_orders(self) -> int:
        """Cancel every working order except the watchdog's own closing orders."""
        cancelled = 0
        for order in self.broker.orders(working_only=True):
            if order.id.startswith(FLATTEN_PREFIX):
                continue
            try:
                self.broker.cancel(order.id)
            except OrderNotOpen:  # filled or cancelled meanwhile: nothing left to stop
                continue
            cancelled += 1
        return cancelled

    def flatten(self) -> int:
        """A market order closing each open position; the number of orders placed."""
        placed, now = 0, self.clock.now_ns()
        for symbol, pos in self.broker.positions().items():
            if pos.qty == 0:
                continue
            side = Side.SELL if pos.qty > 0 else Side.BUY
            self.broker.place(OrderRequest(f"{FLATTEN_PREFIX}{symbol}-{now}", symbol, side,
                                           abs(pos.qty)))
            placed += 1
        return placed


class _PositionBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    symbol: str
    qty: float
    price: float
    stop_attached: bool
    mark_ns: int | None = None
    refused_ticks: int = Field(default=0, ge=0)


class _AccountBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    equity: float
    peak_equity: float
    gross_exposure: float
    open_orders: int = Field(ge=0)
    positions: list[_PositionBody]
    clock_ns: int | None = None


class HttpControl:
    """ExecutionControl over the orchestrator's HTTP API (httpx, bounded timeouts)."""

    blocking = True

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 5.0,
                 transport: Any = None) -> None:
        import httpx  # only the --api path pays for it

        if not token:
            raise ValueError("HttpControl needs the API token (cancel and flatten are "
                             "authenticated routes)")
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s,
                                    headers={"Authorization": f"Bearer {token}"},
                                    transport=transport)

    def _json(self, method: str, path: str) -> dict[str, Any]:
        response = self._client.request(method, path)
        if response.status_code != 200:
            raise ExecutionError(f"{method} {path} answered HTTP {response.status_code}")
        return response.json()

    def snapshot(self) -> AccountSnapshot:
        body = _AccountBody.model_validate(self._json("GET", "/v1/account"))
        views = tuple(PositionView(p.symbol, p.qty, p.price, p.stop_attached, p.mark_ns,
                                   p.refused_ticks) for p in body.positions)
        return AccountSnapshot(body.equity, body.peak_equity, body.gross_exposure,
                               body.open_orders, views, body.clock_ns)

    def cancel_open_orders(self) -> int:
        return int(self._json("POST", "/v1/orders/cancel-all")["cancelled"])

    def flatten(self) -> int:
        return int(self._json("POST", "/v1/positions/flatten")["orders"])

    def close(self) -> None:
        self._client.close()
