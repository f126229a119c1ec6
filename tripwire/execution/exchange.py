"""CcxtBroker: the :class:`~tripwire.execution.base.Broker` protocol on a real venue via ccxt.

Any ccxt exchange id works (``"binance"``, ``"bybit"``, ...); the *sync* ccxt API is used, so a
caller on an event loop runs calls in a worker thread (``DecisionDeps.blocking_broker``,
``BrokerControl(blocking=True)``). One broker serves one thread. Built from ``[execution]`` by
:func:`tripwire.execution.factory.build_broker`. The parts, by job:

* :mod:`.ccxt_session` -- the ccxt client: credentials (from named environment variables),
  sandbox and URL overrides, bounded retries with backoff, ccxt errors -> typed tripwire
  errors naming venue and operation, secrets scrubbed from every message;
* :mod:`.ccxt_mapping` -- ccxt dicts <-> tripwire values (status, sides, fills, fees, the
  client ids of replace legs), no I/O;
* this module -- the broker: what to ask the venue for, and the orders it tracks.

Rules:

* Symbols: a tripwire symbol (``"BTCUSDT"``) is the venue's market id; it resolves to the ccxt
  symbol (``"BTC/USDT"``) through the loaded markets (preferring the market of the exchange's
  ``defaultType``), or through an explicit ``symbol_map``. Every configured symbol must be
  listed, or the first call fails naming the missing ones.
* Identity: the tripwire order id *is* the client order id, sent as ccxt's unified
  ``clientOrderId``. Before creating, and after any network error during create (the venue may
  have accepted an order whose answer was lost), the broker looks the id up on the venue
  (``fetch_order`` with ``{"clientOrderId": id}``, or a scan of open + closed orders where the
  exchange lacks ``fetchOrder``) and returns the order it finds: a retry never makes a second
  order. The first request for an id is kept in memory; the same id with other parameters
  raises :class:`DuplicateClientOrderId`. A venue that still fails after the retries leaves the
  outcome unknown: :class:`BackendUnavailable` is raised (no order is assumed), and the next
  ``place`` of the same id looks it up first.
* Restart and re-adopt: the venue is the book. A new broker over the same account knows its
  orders again by their client ids (:meth:`CcxtBroker.adopt` at start, or lazily by
  ``get_order``/``orders``), a replaced order with all its legs (found by their derived ids),
  and ``place`` of an id the venue already has returns that order.
* Replace is cancel + new, never ccxt ``edit_order``: edit semantics differ per venue (binance
  spot's cancelReplace mints a new order anyway), and cancel + new keeps one rule everywhere.
  The new leg gets a derived client id; the tripwire order keeps its id, and its filled
  quantity sums over its legs. The new leg asks only for what the earlier legs did not fill.
* Fills come from ``fetch_my_trades``; fees in a third currency are priced at its last price
  (NaN and counted in ``stats["fees_unconverted"]`` when no price exists).
* Stops: ``stop_loss``/``take_profit`` go out as ccxt's unified ``stopLoss``/``takeProfit``
  params only where ``exchange.has["createOrderWithTakeProfitAndStopLoss"]``; anywhere else the
  order is refused (a stop is never dropped silently).
* Positions: derivatives (``has["fetchPositions"]`` and a non-spot ``defaultType``) come from
  ``fetch_positions``; on spot, a position is the base-asset balance of each configured symbol
  (qty = total balance, mark = last price). Its entry price and realised PnL are those of the
  account's trades in that market (``fetch_my_trades``, replayed through the paper venue's
  position arithmetic) when they add up to the balance; otherwise (a deposit, trades in
  another market of the same base, history the venue no longer returns) the entry price is
  NaN and unrealised PnL 0, and the risk checks refuse to size against an unknown entry.
  Two configured symbols with the same base report that balance once.
* Account: ``fetch_balance`` in the quote currency: ``equity = quote total + sum(base total *
  last price)`` (+ unrealised PnL on derivatives). The balance already has fees deducted, so
  ``fees`` is 0 and ``realised_pnl = equity - initial_cash - unrealised``; ``initial_cash`` is
  the constructor's value or else the equity first seen.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ccxt

from tripwire.execution.base import (
    Account,
    DuplicateClientOrderId,
    ExecutionError,
    Fill,
    Order,
    OrderNotOpen,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    Position,
    Side,
    UnknownOrder,
    amend_request,
    validate_request,
)
from tripwire.execution.ccxt_mapping import (
    avg_price,
    derived_client_id,
    map_status,
    num,
    quote_fee,
    request_from,
    to_fill,
    with_context,
)
from tripwire.execution.ccxt_session import DEFAULT_KEY_ENV, DEFAULT_SECRET_ENV, CcxtSession
from tripwire.execution.paper import QTY_EPSILON, _Book, apply_fill
from tripwire.model import Clock, SystemClock

__all__ = [
    "DEFAULT_KEY_ENV",
    "DEFAULT_SECRET_ENV",
    "CcxtBroker",
    "derived_client_id",
    "map_status",
]


MAX_LEGS = 100  # replace legs one re-adopted order is searched for (one lookup each)
_LEG = re.compile(r"\.r\d+$")  # the suffix derived_client_id gives a replace leg


@dataclass(slots=True)
class _Leg:
    """One exchange order behind a tripwire order (a replace adds a leg)."""

    client_id: str
    exchange_id: str
    filled: float = 0.0  # final figures, recorded when the leg is cancelled
    avg_price: float = math.nan


@dataclass(slots=True)
class _Tracked:
    """What the broker remembers about an order it placed or found."""

    original: OrderRequest | None  # as first placed (None: found on the venue, not placed here)
    request: OrderRequest  # in force now (after replaces)
    ccxt_symbol: str
    placed_ns: int
    legs: list[_Leg] = field(default_factory=list)


class CcxtBroker:
    """Broker on a ccxt exchange (implements :class:`tripwire.execution.base.Broker`).

    ``exchange_options`` is passed to the ccxt constructor (``options``, ``timeout``,
    ``enableRateLimit``, ...); ``urls`` overrides entries of ``exchange.urls["api"]``.
    """

    def __init__(
        self,
        exchange_id: str,
        symbols: Iterable[str],
        *,
        sandbox: bool = False,
        api_key_env: str = DEFAULT_KEY_ENV,
        secret_env: str = DEFAULT_SECRET_ENV,
        env: Mapping[str, str] | None = None,
        symbol_map: Mapping[str, str] | None = None,
        quote: str | None = None,
        exchange_options: Mapping[str, Any] | None = None,
        urls: Mapping[str, str] | None = None,
        max_retries: int = 3,
        backoff_base_s: float = 0.25,
        backoff_cap_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock | None = None,
        initial_cash: float | None = None,
    ) -> None:
        self._symbols = frozenset(symbols)
        # Symbols whose market closed (-> why): new orders refused before any network call.
        self.closed_markets: dict[str, str] = {}
        if not self._symbols:
            raise ValueError("symbols must name at least one tripwire symbol")
        self.session = CcxtSession(
            exchange_id, os.environ if env is None else env, sandbox=sandbox,
            api_key_env=api_key_env, secret_env=secret_env, exchange_options=exchange_options,
            urls=urls, max_retries=max_retries, backoff_base_s=backoff_base_s,
            backoff_cap_s=backoff_cap_s, sleep=sleep)
        self.exchange_id = exchange_id
        self.sandbox = sandbox
        self.exchange = self.session.exchange
        self.max_retries = max_retries
        self.stats = self.session.stats  # retries, failures by kind, fees not converted
        self._symbol_map = dict(symbol_map or {})
        self._quote = quote
        self.clock = clock or SystemClock()
        self._initial_cash = initial_cash
        self._markets: dict[str, dict] | None = None  # tripwire symbol -> ccxt market
        self._orders: dict[str, _Tracked] = {}
        self._by_exchange_id: dict[str, str] = {}  # exchange order id -> tripwire id

    def __repr__(self) -> str:
        # Deliberately no credentials (nor their variable values) in the repr.
        return (
            f"CcxtBroker(exchange={self.exchange_id!r}, sandbox={self.sandbox}, "
            f"symbols={sorted(self._symbols)!r})"
        )

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Release the HTTP session; further calls fail. Safe to call twice."""
        self.session.close()

    def __enter__(self) -> CcxtBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ orders

    def place(self, request: OrderRequest) -> Order:
        tracked = self._orders.get(request.client_order_id)
        if tracked is not None and tracked.original is not None:
            if tracked.original != request:
                raise DuplicateClientOrderId(request.client_order_id)
            return self.get_order(request.client_order_id)
        request = validate_request(request, self._symbols, self.closed_markets)
        if tracked is not None:  # seen on the venue (e.g. via orders()) but not placed here
            del self._orders[request.client_order_id]
        self._check_brackets(request)
        market = self._market(request.symbol)
        raw = self._create_once(request.client_order_id, market, request, request.qty)
        tracked = _Tracked(request, request, market["symbol"], self._ts_ns(raw))
        self._orders[request.client_order_id] = tracked
        self._add_leg(request.client_order_id, request.client_order_id, raw)
        return self._snapshot(request.client_order_id, raw)

    def cancel(self, order_id: str) -> Order:
        order = self.get_order(order_id)
        if not order.status.working:
            raise OrderNotOpen(order_id, order.status)
        raw = self._cancel_leg(order_id)
        order = self._snapshot(order_id, raw)
        if not order.status.working and order.status is not OrderStatus.CANCELLED:
            raise OrderNotOpen(order_id, order.status)  # it filled before the cancel landed
        return order

    def replace(
        self,
        order_id: str,
        *,
        qty: float | None = None,
        limit_price: float | None = None,
        stop_loss: float | None = None,
        take_profit: float | None = None,
    ) -> Order:
        order = self.get_order(order_id)
        if not order.status.working:
            raise OrderNotOpen(order_id, order.status)
        request = amend_request(order.request, self._symbols, qty=qty, limit_price=limit_price,
                                stop_loss=stop_loss, take_profit=take_profit)
        self._check_brackets(request)
        if request == order.request:
            return order
        # Refuse before cancelling: a replace must not leave the order cancelled and unplaced.
        remaining = request.qty - order.filled_qty
        if remaining <= 0:
            raise OrderRejected(
                "qty", f"{order.filled_qty} already filled; cannot reduce to {request.qty}"
            )
        cancelled = self._snapshot(order_id, self._cancel_leg(order_id))
        if cancelled.status is not OrderStatus.CANCELLED:
            raise OrderNotOpen(order_id, cancelled.status)
        tracked = self._orders[order_id]
        remaining = request.qty - cancelled.filled_qty  # it may have filled more meanwhile
        leg_id = derived_client_id(order_id, len(tracked.legs))
        try:
            raw = self._create_once(leg_id, self._market(request.symbol), request, remaining)
        except ExecutionError as exc:
            # Not atomic on the venue: say plainly that the old leg is gone.
            note = f"replace of {order_id!r}: old leg cancelled, new leg {leg_id!r} not confirmed"
            raise with_context(exc, note) from exc.__cause__
        tracked.request = request
        self._add_leg(order_id, leg_id, raw)
        return self._snapshot(order_id, raw)

    def get_order(self, order_id: str) -> Order:
        tracked = self._orders.get(order_id)
        if tracked is None:
            return self._adopt(order_id)
        leg = tracked.legs[-1]
        raw = self.session.call(
            "get_order",
            self.exchange.fetch_order,
            leg.exchange_id,
            tracked.ccxt_symbol,
            order_id=order_id,
        )
        return self._snapshot(order_id, raw)

    def wait(self, order_id: str, timeout_s: float, poll_interval_s: float = 0.5) -> Order:
        """Poll until the order is filled or cancelled, or ``timeout_s`` passes.

        Returns the last snapshot either way: a still-working status means it timed out.
        Sleeps with the injected ``sleep``, so a no-op sleep makes this a busy poll.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            order = self.get_order(order_id)
            left = deadline - time.monotonic()
            if not order.status.working or left <= 0:
                return order
            self.session.sleep(min(poll_interval_s, left))

    def orders(self, symbol: str | None = None, *, working_only: bool = False) -> list[Order]:
        """Orders on the venue for the configured symbols, placed here or not.

        Orders placed elsewhere keep the venue's client id as their id (the watchdog must see
        all exposure); a replaced order shows once, as its current leg.
        """
        if symbol is not None and symbol not in self._symbols:
            return []  # as the paper broker: nothing can exist for an unconfigured symbol
        symbols = sorted(self._symbols) if symbol is None else [symbol]
        found: dict[str, Order] = {}  # one entry per order, however many legs were listed
        for name in symbols:
            market = self._market(name)
            for raw in self._fetch_orders(market["symbol"], working_only):
                order_id = self._owner(raw)
                if order_id is None:
                    continue  # an earlier leg of a replaced order
                if order_id in self._orders:
                    order = self._snapshot(order_id, raw)
                else:  # placed before a restart, or elsewhere: learn all its legs
                    first = raw if raw.get("clientOrderId") == order_id else None
                    order = (self._adopt_in(order_id, name, market, first)
                             or self._foreign_order(order_id, name, raw))
                if not working_only or order.status.working:
                    found[order_id] = order
        return sorted(found.values(), key=lambda o: o.placed_ns)

    def adopt(self) -> list[Order]:
        """Re-adopt after a restart: load the markets and track again every working order
        the venue holds for the configured symbols (by client id, which is the tripwire
        order id). Raises the venue's typed error when it cannot be asked: a broker that
        does not know what is open must not start trading."""
        return self.orders(working_only=True)

    # ------------------------------------------------------------------ state

    def positions(self) -> dict[str, Position]:
        if self._is_derivatives():
            return self._derivative_positions()
        balance = self.session.call("positions", self.exchange.fetch_balance)
        out: dict[str, Position] = {}
        for name, market in self._bases().items():
            qty = num(balance.get("total", {}).get(market["base"]), 0.0)
            if not qty:
                out[name] = Position(name, 0.0, math.nan, 0.0, math.nan, 0.0)
                continue
            mark = self._last_price(market["symbol"])
            book = self._cost_basis(market)
            if abs(book.qty - qty) <= QTY_EPSILON * max(abs(qty), 1.0):
                unrealised = qty * (mark - book.avg_price)
                out[name] = Position(name, qty, book.avg_price, book.realised, mark, unrealised)
            else:  # deposits or trades elsewhere: no entry price known (the risk checks
                out[name] = Position(name, qty, math.nan, 0.0, mark, 0.0)  # refuse NaN)
        return out

    def _cost_basis(self, market: dict) -> _Book:
        """The position the account's trades in ``market`` add up to, through the paper
        venue's own arithmetic (adds re-average, reduces realise, flips re-base)."""
        book = _Book()
        trades = self.session.call("positions", self.exchange.fetch_my_trades, market["symbol"])
        for t in sorted(trades, key=lambda t: (t.get("timestamp") or 0, str(t.get("id")))):
            amount = num(t.get("amount"), 0.0)
            if amount:
                sign = 1.0 if t.get("side") == "buy" else -1.0
                apply_fill(book, sign * amount, num(t.get("price"), math.nan))
        return book

    def fills(self, order_id: str | None = None) -> list[Fill]:
        if order_id is not None:
            self.get_order(order_id)  # UnknownOrder if it does not exist; learns its legs
            symbols = [self._orders[order_id].request.symbol]
        else:
            symbols = sorted(self._symbols)
        out: list[Fill] = []
        for name in symbols:
            market = self._market(name)
            trades = self.session.call("fills", self.exchange.fetch_my_trades, market["symbol"])
            for trade in trades:
                owner = self._trade_owner(trade, market["symbol"])
                if order_id is None or owner == order_id:
                    out.append(self._to_fill(trade, owner, name, market))
        return sorted(out, key=lambda f: (f.ts_ns, f.fill_id))

    def account(self) -> Account:
        balance = self.session.call("account", self.exchange.fetch_balance)
        totals = balance.get("total", {})
        cash = num(totals.get(self._quote_currency()), 0.0)
        if self._is_derivatives():
            unrealised = sum(p.unrealised_pnl for p in self._derivative_positions().values())
            equity = cash + unrealised
        else:
            unrealised = 0.0
            equity = cash + sum(
                num(totals.get(m["base"]), 0.0) * self._last_price(m["symbol"])
                for m in self._bases().values()
                if num(totals.get(m["base"]), 0.0)
            )
        if self._initial_cash is None:
            self._initial_cash = equity  # the baseline PnL is measured from
        return Account(
            initial_cash=self._initial_cash,
            cash=cash,
            equity=equity,
            realised_pnl=equity - self._initial_cash - unrealised,
            unrealised_pnl=unrealised,
            fees=0.0,
        )

    # ------------------------------------------------------------------ placing

    def _check_brackets(self, request: OrderRequest) -> None:
        if request.stop_loss is None and request.take_profit is None:
            return
        if not self.exchange.has.get("createOrderWithTakeProfitAndStopLoss"):
            name = "stop_loss" if request.stop_loss is not None else "take_profit"
            raise OrderRejected(
                name,
                f"this exchange cannot attach a stop-loss/take-profit to an order "
                f"({self.exchange_id} via ccxt); refusing rather than trading without it",
            )

    def _create_once(self, client_id: str, market: dict, request: OrderRequest, qty: float) -> dict:
        """Create the order unless the venue already has ``client_id``; never twice."""
        params: dict[str, Any] = {"clientOrderId": client_id}
        if request.stop_loss is not None:
            params["stopLoss"] = {"triggerPrice": request.stop_loss}
        if request.take_profit is not None:
            params["takeProfit"] = {"triggerPrice": request.take_profit}
        args = (
            market["symbol"],
            request.order_type.value,
            "buy" if request.side is Side.BUY else "sell",
            qty,
            request.limit_price,
            params,
        )
        last: ccxt.BaseError | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.session.backoff_sleep(attempt - 1, "place", last)
            found = self._find(client_id, market["symbol"])
            if found is not None:
                return self._same_order(client_id, request, qty, found)
            try:
                return self.exchange.create_order(*args)
            except (ccxt.NetworkError, ccxt.DuplicateOrderId) as exc:
                # The venue may have taken it: the next round looks it up before re-sending.
                last = exc
            except ccxt.BaseError as exc:
                raise self.session.fail(self.session.translate(exc, "place", client_id)) from exc
        found = self._find(client_id, market["symbol"])
        if found is not None:
            return self._same_order(client_id, request, qty, found)
        assert last is not None
        raise self.session.fail(self.session.translate(last, "place", client_id)) from last

    def _same_order(self, client_id: str, request: OrderRequest, qty: float, raw: dict) -> dict:
        """``raw`` if the venue's order with this id is the one asked for, else refuse.

        Quantities compare after the venue's rounding (ccxt truncates to the lot size).
        """
        symbol = raw.get("symbol")
        venue_qty = num(raw.get("amount"), math.nan)
        try:
            want_qty = float(self.exchange.amount_to_precision(symbol, qty))
        except ccxt.BaseError:
            want_qty = qty
        same = (
            symbol == self._market(request.symbol)["symbol"]
            and raw.get("side") == ("buy" if request.side is Side.BUY else "sell")
            and raw.get("type") in (None, request.order_type.value)
            and math.isclose(venue_qty, want_qty, rel_tol=1e-9)
        )
        if not same:
            raise DuplicateClientOrderId(client_id)
        return raw

    def _find(self, client_id: str, ccxt_symbol: str) -> dict | None:
        """The venue's order with this client id, or None."""
        if self.exchange.has.get("fetchOrder"):
            return self.session.call(
                "place (lookup by client order id)",
                self.exchange.fetch_order,
                client_id,
                ccxt_symbol,
                {"clientOrderId": client_id},
                order_id=client_id,
                missing_ok=True,
            )
        return next(
            (
                o
                for o in self._fetch_orders(ccxt_symbol, False)
                if o.get("clientOrderId") == client_id
            ),
            None,
        )

    def _fetch_orders(self, ccxt_symbol: str, working_only: bool) -> list[dict]:
        has = self.exchange.has
        if working_only:
            return self.session.call("orders", self.exchange.fetch_open_orders, ccxt_symbol)
        if has.get("fetchOrders"):
            return self.session.call("orders", self.exchange.fetch_orders, ccxt_symbol)
        found = self.session.call("orders", self.exchange.fetch_open_orders, ccxt_symbol)
        if has.get("fetchClosedOrders"):
            found += self.session.call("orders", self.exchange.fetch_closed_orders, ccxt_symbol)
        return found

    def _cancel_leg(self, order_id: str) -> dict:
        """Cancel the current leg and return its final state as the venue reports it."""
        tracked = self._orders[order_id]
        leg = tracked.legs[-1]
        # Not found = already gone (filled, or an earlier cancel whose answer was lost).
        self.session.call(
            "cancel",
            self.exchange.cancel_order,
            leg.exchange_id,
            tracked.ccxt_symbol,
            order_id=order_id,
            missing_ok=True,
        )
        raw = self.session.call(
            "cancel",
            self.exchange.fetch_order,
            leg.exchange_id,
            tracked.ccxt_symbol,
            order_id=order_id,
        )
        leg.filled = num(raw.get("filled"), 0.0)
        leg.avg_price = avg_price(raw)
        return raw

    def _add_leg(self, order_id: str, client_id: str, raw: dict) -> None:
        exchange_id = str(raw.get("id"))
        self._orders[order_id].legs.append(_Leg(client_id, exchange_id))
        self._by_exchange_id[exchange_id] = order_id

    # ------------------------------------------------------------------ snapshots

    def _snapshot(self, order_id: str, raw: dict) -> Order:
        """Order from the venue's view of the current leg plus the finished earlier legs."""
        tracked = self._orders[order_id]
        done = tracked.legs[:-1]
        qty_now = num(raw.get("filled"), 0.0)
        filled = qty_now + sum(leg.filled for leg in done)
        notional = qty_now * avg_price(raw) if qty_now else 0.0
        notional += sum(leg.filled * leg.avg_price for leg in done if leg.filled)
        status = map_status(raw.get("status"))
        updated = raw.get("lastUpdateTimestamp") or raw.get("timestamp")
        return Order(
            id=order_id,
            request=tracked.request,
            status=status,
            placed_ns=tracked.placed_ns,
            active_ns=tracked.placed_ns,
            filled_qty=filled,
            avg_fill_price=notional / filled if filled else math.nan,
            updated_ns=int(updated) * 1_000_000 if updated else self.clock.now_ns(),
        )

    def _adopt(self, order_id: str) -> Order:
        """An order this broker did not place (or forgot in a restart): find it by client id."""
        for name in sorted(self._symbols):
            order = self._adopt_in(order_id, name, self._market(name))
            if order is not None:
                return order
        missing = with_context(UnknownOrder(order_id), self.session.where("get_order"))
        raise self.session.fail(missing)

    def _adopt_in(self, order_id: str, name: str, market: dict,
                  first: dict | None = None) -> Order | None:
        """Track ``order_id`` again from the venue, or None when it has no order by that
        client id: its first leg and the legs replaces added after it (``<id>.r1``, ...;
        a replace cancels a leg before it adds the next, so the walk stops at a leg that is
        not cancelled, or after :data:`MAX_LEGS`). The order's quantity is the current
        leg's plus what the earlier legs filled."""
        raw = first if first is not None else self._find(order_id, market["symbol"])
        if raw is None:
            return None
        legs = [(order_id, raw)]
        for n in range(1, MAX_LEGS + 1):
            if map_status(legs[-1][1].get("status")) is not OrderStatus.CANCELLED:
                break
            leg_id = derived_client_id(order_id, n)
            nxt = self._find(leg_id, market["symbol"])
            if nxt is None:
                break
            legs.append((leg_id, nxt))
        current = legs[-1][1]
        request = request_from(order_id, name, current)
        earlier = sum(num(r.get("filled"), 0.0) for _, r in legs[:-1])
        if earlier:
            request = dataclasses.replace(request, qty=request.qty + earlier)
        tracked = _Tracked(None, request, market["symbol"], self._ts_ns(raw))
        self._orders[order_id] = tracked
        for client_id, leg_raw in legs:
            self._add_leg(order_id, client_id, leg_raw)
            tracked.legs[-1].filled = num(leg_raw.get("filled"), 0.0)
            tracked.legs[-1].avg_price = avg_price(leg_raw)
        return self._snapshot(order_id, current)

    def _foreign_order(self, order_id: str, name: str, raw: dict) -> Order:
        request = request_from(order_id, name, raw)
        self._orders[order_id] = _Tracked(None, request, raw["symbol"], self._ts_ns(raw))
        self._add_leg(order_id, order_id, raw)
        return self._snapshot(order_id, raw)

    def _owner(self, raw: dict) -> str | None:
        """Tripwire id of a venue order; None for a replaced order's earlier leg."""
        order_id = self._by_exchange_id.get(str(raw.get("id")))
        tracked = self._orders.get(order_id) if order_id is not None else None
        if tracked is not None:
            return order_id if tracked.legs[-1].exchange_id == str(raw["id"]) else None
        # Known only from a trade (no order record yet) or not known at all. A replace leg's
        # client id names its order (<id>.r<n>; a hashed one cannot, and shows as itself).
        client_id = raw.get("clientOrderId")
        if order_id is None and client_id:
            order_id = _LEG.sub("", client_id)
        return order_id or f"{self.exchange_id}:{raw.get('id')}"

    def _ts_ns(self, raw: dict) -> int:
        ts = raw.get("timestamp")
        return int(ts) * 1_000_000 if ts else self.clock.now_ns()

    # ------------------------------------------------------------------ fills

    def _trade_owner(self, trade: dict, ccxt_symbol: str) -> str:
        exchange_id = str(trade.get("order"))
        owner = self._by_exchange_id.get(exchange_id)
        if owner is None:  # placed elsewhere or before a restart: ask the venue for its id
            raw = self.session.call("fills", self.exchange.fetch_order, exchange_id, ccxt_symbol)
            owner = raw.get("clientOrderId") or f"{self.exchange_id}:{exchange_id}"
            self._by_exchange_id[exchange_id] = owner
        return owner

    def _to_fill(self, trade: dict, owner: str, name: str, market: dict) -> Fill:
        return to_fill(trade, owner, name, quote_fee(trade, market, self._conversion_price))

    def _conversion_price(self, currency: str, quote: str) -> float:
        symbol = f"{currency}/{quote}"
        if symbol in (self.exchange.markets or {}):
            return self._last_price(symbol)
        self.stats["fees_unconverted"] += 1
        return math.nan

    # ------------------------------------------------------------------ balances

    def _is_derivatives(self) -> bool:
        kind = self.exchange.options.get("defaultType", "spot")
        return bool(self.exchange.has.get("fetchPositions")) and kind not in ("spot", "margin")

    def _derivative_positions(self) -> dict[str, Position]:
        markets = {m["symbol"]: name for name, m in self._all_markets().items()}
        raw = self.session.call("positions", self.exchange.fetch_positions, list(markets))
        out: dict[str, Position] = {}
        for p in raw:
            name = markets.get(p.get("symbol"))
            if name is None:
                continue
            size = num(p.get("contracts"), 0.0) * num(p.get("contractSize"), 1.0)
            qty = -size if p.get("side") == "short" else size
            out[name] = Position(
                name,
                qty,
                num(p.get("entryPrice"), math.nan),
                num(p.get("realizedPnl"), 0.0),
                num(p.get("markPrice"), math.nan),
                num(p.get("unrealizedPnl"), 0.0),
            )
        return out

    def _bases(self) -> dict[str, dict]:
        """One configured symbol per base asset, so a balance is never counted twice."""
        seen: dict[str, tuple[str, dict]] = {}
        for name, market in sorted(self._all_markets().items()):
            seen.setdefault(market["base"], (name, market))
        return dict(seen.values())

    def _quote_currency(self) -> str:
        if self._quote is None:
            quotes = {m["quote"] for m in self._all_markets().values()}
            if len(quotes) != 1:
                raise ExecutionError(
                    f"{self.exchange_id}: symbols quote in {sorted(quotes)}; pass quote= to "
                    "say which currency the account is measured in"
                )
            self._quote = quotes.pop()
        return self._quote

    def _last_price(self, ccxt_symbol: str) -> float:
        ticker = self.session.call("ticker", self.exchange.fetch_ticker, ccxt_symbol)
        price = num(ticker.get("last") or ticker.get("close"), math.nan)
        if not (math.isfinite(price) and price > 0):
            raise ExecutionError(
                f"{self.exchange_id} ticker: no usable last price for {ccxt_symbol}"
            )
        return price

    # ------------------------------------------------------------------ markets

    def _market(self, name: str) -> dict:
        market = self._all_markets().get(name)
        if market is None:
            raise OrderRejected("symbol", f"unknown symbol {name!r} (not configured)")
        return market

    def _all_markets(self) -> dict[str, dict]:
        if self._markets is None:
            self.session.call("load_markets", self.exchange.load_markets)
            self._markets = self._resolve_markets()
        return self._markets

    def _resolve_markets(self) -> dict[str, dict]:
        resolved: dict[str, dict] = {}
        kind = self.exchange.options.get("defaultType", "spot")
        for name in self._symbols:
            if name in self._symbol_map:
                market = self.exchange.markets.get(self._symbol_map[name])
            else:
                candidates = self.exchange.markets_by_id.get(name) or []
                preferred = [m for m in candidates if m.get("type") == kind]
                market = (preferred or candidates or [None])[0]
            if market is not None:
                resolved[name] = market
        missing = sorted(self._symbols - resolved.keys())
        if missing:
            raise ExecutionError(f"{self.exchange_id} load_markets: symbols not listed: {missing}")
        return resolved
