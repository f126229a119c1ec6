"""PaperBroker: simulated fills against the ticks fed to it, with slippage, fees and latency.

Fill rules (chosen to be simple and slightly pessimistic, never flattering):
  * an order is *active* from ``placed_ns + latency_ns`` on, compared with tick time;
  * a market order fills fully at the first active tick's price, worsened by ``slippage_bps``
    (a buy pays ``price * (1 + bps/1e4)``, a sell gets ``price * (1 - bps/1e4)``), taker fee;
  * a limit order fills fully at its limit price (never better) on the first active tick that
    touches or crosses it (buy: tick <= limit, sell: tick >= limit), maker fee;
  * no partial fills: the tick's own quantity is not a cap;
  * an attached stop-loss/take-profit arms when its order fills and triggers on a *later* tick
    at or beyond its level, closing at that tick's price with slippage and taker fee, at most
    the quantity still held on that side; the other leg of the bracket is then dropped;
  * ticks with a non-finite or non-positive price are skipped (the feeds dead-letter them).
  * a tick older than the last tick the venue took *of its symbol* is late: it is skipped and
    counted (``refused_rows``, and per position in :meth:`marks` until the next good tick
    marks it), and the rest of its batch is processed, so one late row never stalls stops.
    The clock is per symbol because separate streams interleave with jitter; each symbol's
    own ticks must still go forward, or fills would be matched against a rewound market.
Prices and PnL are plain float64 with no rounding to a tick size; a position whose quantity
comes within ``QTY_EPSILON`` (relative) of zero is flat. One broker serves one thread.

Accounting: ``cash`` moves by the fill notional and the fee; a position keeps its average
entry price on reduces and re-bases it on flips; ``realised_pnl`` excludes fees, so
``equity = initial_cash + realised + unrealised - fees``.

>>> from tripwire.model import SimClock, SymbolTable, TickBatch
>>> broker = PaperBroker(SymbolTable(["BTCUSDT"]), SimClock(0), PaperConfig(taker_fee_bps=10))
>>> broker.place(OrderRequest("tw-a", "BTCUSDT", Side.BUY, 2.0)).status.value
'open'
>>> [(f.price, f.fee) for f in broker.on_ticks(TickBatch.from_columns([0], [5], [100.0], [1.0]))]
[(100.0, 0.2)]
>>> broker.positions()["BTCUSDT"].qty, broker.account().equity
(2.0, 99999.8)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tripwire.execution.base import (
    Account,
    BackendUnavailable,
    Bracket,
    DuplicateClientOrderId,
    EquityPoint,
    ExecutionError,
    Fill,
    FillKind,
    Liquidity,
    Order,
    OrderNotOpen,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
    UnknownOrder,
    amend_request,
    validate_request,
)
from tripwire.model import Clock, SymbolTable, TickBatch, last_rows

BPS = 1e-4
QTY_EPSILON = 1e-12  # relative: quantities closer to zero than this are flat


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """Costs and delays of the simulated venue; all must be finite and >= 0."""

    slippage_bps: float = 0.0
    maker_fee_bps: float = 0.0
    taker_fee_bps: float = 0.0
    latency_ns: int = 0
    initial_cash: float = 100_000.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"PaperConfig.{f.name} must be a finite number >= 0, got {value!r}"
                )


@dataclass(slots=True)
class _Book:
    """Mutable position state of one symbol."""

    qty: float = 0.0
    avg_price: float = math.nan
    realised: float = 0.0
    mark: float = math.nan
    mark_ns: int | None = None  # time of the tick that set ``mark``
    refused: int = 0  # late ticks of the symbol refused since that mark


@dataclass(frozen=True, slots=True)
class MarkState:
    """How current a position's mark is: its tick's time and the late ticks refused since."""

    mark_ns: int | None
    refused: int


class PaperBroker:
    """The paper backend (implements :class:`tripwire.execution.base.Broker`).

    Feed it ticks with :meth:`on_ticks` in time order; it returns the fills they caused.
    """

    def __init__(
        self, symbols: SymbolTable, clock: Clock, config: PaperConfig | None = None
    ) -> None:
        self._symbols = symbols
        self.clock = clock
        self.config = config or PaperConfig()
        self._orders: dict[str, Order] = {}  # insertion order = placement order
        # Working order id -> symbol, so matching never rescans finished orders.
        self._working_ids: dict[str, str] = {}
        self._original: dict[str, OrderRequest] = {}  # as first placed, for idempotency
        self._brackets: dict[str, Bracket] = {}
        self._books: dict[str, _Book] = {}
        self._fills: list[Fill] = []
        self._cash = float(self.config.initial_cash)
        self._fees = 0.0
        self._curve: list[EquityPoint] = []
        self._last_ts = np.iinfo(np.int64).min  # the venue's clock: latest tick taken
        self._symbol_ts: dict[int, int] = {}  # symbol id -> time of its latest tick taken
        self._refused_rows = 0
        # Persistence hook (tripwire.store.paper_book): called with (kind, data) in the same
        # step as every change of the book, so a log of them replays into this book again.
        self.on_event: Callable[[str, dict[str, Any]], None] | None = None
        # Why the venue takes no new or amended order now ("" when it does): a book that
        # could not be rebuilt or persisted must not trade (cancels stay allowed).
        self.refusal: Callable[[], str] | None = None
        # Symbols whose market closed (a resolved/halted prediction market -> why): new
        # orders on them are refused (tripwire.adapters.market_state fills it).
        self.closed_markets: dict[str, str] = {}

    # ------------------------------------------------------------------ orders

    def place(self, request: OrderRequest) -> Order:
        existing = self._orders.get(request.client_order_id)
        if existing is not None:
            if self._original[request.client_order_id] != request:
                raise DuplicateClientOrderId(request.client_order_id)
            return self.get_order(existing.id)
        self._check_open("place")
        request = validate_request(request, self._symbols, self.closed_markets)
        now = self.clock.now_ns()
        order = Order(
            id=request.client_order_id,
            request=request,
            status=self._pending_or_open(now + self.config.latency_ns),
            placed_ns=now,
            active_ns=now + self.config.latency_ns,
            updated_ns=now,
        )
        self._orders[order.id] = order
        self._working_ids[order.id] = request.symbol
        self._original[order.id] = request
        self._emit("place", {"request": request_dict(request), "now_ns": now})
        return order

    def cancel(self, order_id: str) -> Order:
        order = self._working(order_id)
        now = self.clock.now_ns()
        cancelled = self._store(order, status=OrderStatus.CANCELLED, updated_ns=now)
        self._emit("cancel", {"order_id": order_id, "now_ns": now})
        return cancelled

    def replace(
        self,
        order_id: str,
        *,
        qty: float | None = None,
        limit_price: float | None = None,
        stop_loss: float | None = None,
        take_profit: float | None = None,
    ) -> Order:
        order = self._working(order_id)
        self._check_open("replace")
        request = amend_request(order.request, self._symbols, qty=qty, limit_price=limit_price,
                                stop_loss=stop_loss, take_profit=take_profit)
        now = self.clock.now_ns()
        # An amended order goes through the venue's latency again, as a new one would.
        active = now + self.config.latency_ns
        replaced = self._store(
            order,
            request=request,
            status=self._pending_or_open(active),
            active_ns=active,
            updated_ns=now,
        )
        self._emit("replace", {"order_id": order_id, "now_ns": now, "qty": qty,
                               "limit_price": limit_price, "stop_loss": stop_loss,
                               "take_profit": take_profit})
        return replaced

    def get_order(self, order_id: str) -> Order:
        try:
            order = self._orders[order_id]
        except KeyError:
            raise UnknownOrder(order_id) from None
        if order.status is OrderStatus.PENDING and order.active_ns <= self.clock.now_ns():
            return dataclasses.replace(order, status=OrderStatus.OPEN)
        return order

    def orders(self, symbol: str | None = None, *, working_only: bool = False) -> list[Order]:
        return [
            self.get_order(o.id)
            for o in self._orders.values()
            if (symbol is None or o.request.symbol == symbol)
            and (not working_only or o.status.working)
        ]

    # ------------------------------------------------------------------ state

    def positions(self) -> dict[str, Position]:
        """Every symbol ever traded (flat ones too, for their realised PnL)."""
        return {s: self._position(s, b) for s, b in self._books.items()}

    def fills(self, order_id: str | None = None) -> list[Fill]:
        return [f for f in self._fills if order_id is None or f.order_id == order_id]

    def brackets(self, symbol: str | None = None) -> list[Bracket]:
        return [b for b in self._brackets.values() if symbol is None or b.symbol == symbol]

    def account(self) -> Account:
        realised = sum(b.realised for b in self._books.values())
        unrealised = sum(self._unrealised(b) for b in self._books.values())
        return Account(
            initial_cash=float(self.config.initial_cash),
            cash=self._cash,
            equity=self._equity(),
            realised_pnl=realised,
            unrealised_pnl=unrealised,
            fees=self._fees,
        )

    def marks(self) -> dict[str, MarkState]:
        """Per symbol with a book: when its mark was set and the late ticks refused since."""
        return {s: MarkState(b.mark_ns, b.refused) for s, b in self._books.items()}

    @property
    def refused_rows(self) -> int:
        """Ticks refused as late (older than their symbol's latest tick taken), ever."""
        return self._refused_rows

    @property
    def last_tick_ns(self) -> int | None:
        """The time of the latest tick the venue took (or replayed); None before any."""
        return None if self._last_ts == np.iinfo(np.int64).min else int(self._last_ts)

    def equity_curve(self) -> list[EquityPoint]:
        """One point per :meth:`on_ticks` call that saw a valid tick (at its last tick time)."""
        return list(self._curve)

    # ------------------------------------------------------------------ ticks

    def on_ticks(self, batch: TickBatch) -> list[Fill]:
        """Match working orders and brackets against ``batch``; return the new fills.

        Late rows (older than their symbol's latest tick taken) are skipped and counted;
        the others are processed in order.
        """
        if len(batch) == 0:
            return []
        late = self._late_rows(batch)
        if late is not None:
            self._refuse(batch, late)
            batch = batch.take(np.flatnonzero(~late))
            if len(batch) == 0:
                return []
        start = len(self._fills)
        valid = np.isfinite(batch.price) & (batch.price > 0)
        interesting = valid & self._symbols_with_work(batch.symbol_id)
        rows = np.flatnonzero(interesting)
        while len(rows):
            # Only a tick that can fill an order or trigger a bracket changes anything but
            # marks: jump to the next one (vectorised), marking the ticks skipped as the
            # tick-by-tick walk would have, then re-plan (the event changed the work).
            k = self._next_event(batch, rows)
            if k is None:
                break
            self._mark_last_prices(batch, interesting, rows[k])
            i = rows[k]
            self._on_tick(int(batch.symbol_id[i]), int(batch.ts_ns[i]), float(batch.price[i]))
            rows = rows[k + 1:]
        self._mark_last_prices(batch, valid)
        self._advance_clocks(batch)
        if valid.any():
            self._curve.append(EquityPoint(self._last_ts, self._cash, self._equity()))
            self._emit_marks(filled=len(self._fills) > start)
        return self._fills[start:]

    def _late_rows(self, batch: TickBatch) -> np.ndarray | None:
        """Rows older than their symbol's latest tick taken before them; None when none are."""
        sid, ts = batch.symbol_id, batch.ts_ns
        if ts[0] >= self._last_ts and (len(ts) == 1 or bool(np.all(np.diff(ts) >= 0))):
            return None  # in time order and not behind the venue: the common case
        late = np.zeros(len(batch), dtype=bool)
        for s in np.unique(sid).tolist():
            rows = np.flatnonzero(sid == s)
            t = ts[rows]
            prev = np.int64(self._symbol_ts.get(s, np.iinfo(np.int64).min))
            # The latest time before each row; a late row is below it, so cannot raise it.
            before = np.maximum.accumulate(np.concatenate(([prev], t[:-1])))
            late[rows] = t < before
        return late if late.any() else None

    def _refuse(self, batch: TickBatch, late: np.ndarray) -> None:
        self._refused_rows += int(late.sum())
        uniq, counts = np.unique(batch.symbol_id[late], return_counts=True)
        for s, n in zip(uniq.tolist(), counts.tolist(), strict=True):
            book = self._books.get(self._symbols.name(s)) if 0 <= s < len(self._symbols) else None
            if book is not None:
                book.refused += n

    def _advance_clocks(self, batch: TickBatch) -> None:
        # Each symbol's rows are in time order now: its last row is its latest.
        uniq, rows = last_rows(batch.symbol_id)
        ts = batch.ts_ns
        for s, j in zip(uniq.tolist(), rows.tolist(), strict=True):
            self._symbol_ts[s] = int(ts[j])
        self._last_ts = max(int(self._last_ts), int(batch.ts_ns.max()))

    def _symbols_with_work(self, symbol_id: np.ndarray) -> np.ndarray:
        """Rows whose symbol has a working order or a bracket (the rest only move marks)."""
        names = set(self._working_ids.values())
        names |= {b.symbol for b in self._brackets.values()}
        ids = [self._symbols.id(n) for n in names]
        return np.isin(symbol_id, np.asarray(ids, dtype=np.int32))

    def _next_event(self, batch: TickBatch, rows: np.ndarray) -> int | None:
        """The first of ``rows`` (ascending) at which a working order could fill or an
        armed bracket trigger -- the conditions of :meth:`_maybe_fill` and
        :meth:`_maybe_trigger`, over arrays; None when no row can."""
        sid, ts, px = batch.symbol_id[rows], batch.ts_ns[rows], batch.price[rows]
        hit = np.zeros(len(rows), dtype=bool)
        for b in self._brackets.values():
            on = sid == self._symbols.id(b.symbol)
            long = b.side is Side.BUY
            if b.stop_loss is not None:
                hit |= on & ((px <= b.stop_loss) if long else (px >= b.stop_loss))
            if b.take_profit is not None:
                hit |= on & ((px >= b.take_profit) if long else (px <= b.take_profit))
        for oid, symbol in self._working_ids.items():
            order = self._orders[oid]
            if not order.status.working:
                continue
            req = order.request
            can = (sid == self._symbols.id(symbol)) & (ts >= order.active_ns)
            if req.order_type is not OrderType.MARKET:
                assert req.limit_price is not None  # validated at placement
                can &= (px <= req.limit_price) if req.side is Side.BUY else (
                    px >= req.limit_price)
            hit |= can
        first = np.flatnonzero(hit)
        return int(first[0]) if len(first) else None

    def _mark_last_prices(self, batch: TickBatch, valid: np.ndarray,
                          before: int | None = None) -> None:
        """Mark each traded symbol at its last ``valid`` row (before row ``before``)."""
        if before is not None:
            valid = valid.copy()
            valid[before:] = False
        sid, price, ts = batch.symbol_id[valid], batch.price[valid], batch.ts_ns[valid]
        if len(sid) == 0:
            return
        uniq, rows = last_rows(sid)  # the last occurrence of each symbol
        for s, j in zip(uniq.tolist(), rows.tolist(), strict=True):
            book = self._books.get(self._symbols.name(s)) if 0 <= s < len(self._symbols) else None
            if book is not None:  # only symbols ever traded have a book to mark
                _set_mark(book, float(price[j]), int(ts[j]))

    def _on_tick(self, symbol_id: int, ts: int, price: float) -> None:
        symbol = self._symbols.name(symbol_id)
        if symbol in self._books:  # stops and PnL see the price as it was at this tick
            _set_mark(self._books[symbol], price, ts)
        # Brackets first: only those armed by fills on earlier ticks may trigger here.
        # (a fill on this tick arms its bracket below, after this loop has run).
        for bracket in [b for b in self._brackets.values() if b.symbol == symbol]:
            self._maybe_trigger(bracket, ts, price)
        for order in [self._orders[i] for i, s in self._working_ids.items() if s == symbol]:
            if order.status.working and order.active_ns <= ts:
                self._maybe_fill(order, ts, price)

    # ------------------------------------------------------------------ fills

    def _maybe_fill(self, order: Order, ts: int, price: float) -> None:
        req = order.request
        if req.order_type is OrderType.MARKET:
            fill_price, liquidity = self._slipped(req.side, price), Liquidity.TAKER
        else:
            assert req.limit_price is not None  # validated at placement
            touched = price <= req.limit_price if req.side is Side.BUY else price >= req.limit_price
            if not touched:
                return
            fill_price, liquidity = req.limit_price, Liquidity.MAKER
        fill = self._execute(
            order.id, req.symbol, req.side, req.qty, fill_price, liquidity, FillKind.ORDER, ts
        )
        self._store(
            order,
            status=OrderStatus.FILLED,
            filled_qty=req.qty,
            avg_fill_price=fill.price,
            updated_ns=ts,
        )
        if req.stop_loss is not None or req.take_profit is not None:
            self._brackets[order.id] = Bracket(
                order.id, req.symbol, req.side, req.qty, req.stop_loss, req.take_profit, ts
            )
        self._emit("tick", {"via": "order", "order_id": order.id, "ts": ts, "price": price,
                            "fill": fill_dict(fill)})

    def _maybe_trigger(self, bracket: Bracket, ts: int, price: float) -> None:
        long = bracket.side is Side.BUY
        hit_stop = bracket.stop_loss is not None and (
            price <= bracket.stop_loss if long else price >= bracket.stop_loss
        )
        hit_take = bracket.take_profit is not None and (
            price >= bracket.take_profit if long else price <= bracket.take_profit
        )
        if not (hit_stop or hit_take):
            return
        del self._brackets[bracket.order_id]
        held = self._books[bracket.symbol].qty * (1 if long else -1)
        qty = min(bracket.qty, held)
        event = {"via": "bracket", "order_id": bracket.order_id, "ts": ts, "price": price}
        if qty <= 0:  # the position was closed or flipped by other orders meanwhile
            self._emit("tick", {**event, "fill": None})  # dropped: a change of the book too
            return
        side = Side.SELL if long else Side.BUY
        kind = FillKind.STOP_LOSS if hit_stop else FillKind.TAKE_PROFIT
        fill = self._execute(
            bracket.order_id,
            bracket.symbol,
            side,
            qty,
            self._slipped(side, price),
            Liquidity.TAKER,
            kind,
            ts,
        )
        self._emit("tick", {**event, "fill": fill_dict(fill)})

    def _slipped(self, side: Side, price: float) -> float:
        return price * (1.0 + int(side) * self.config.slippage_bps * BPS)

    def _execute(
        self,
        order_id: str,
        symbol: str,
        side: Side,
        qty: float,
        price: float,
        liquidity: Liquidity,
        kind: FillKind,
        ts: int,
    ) -> Fill:
        cfg = self.config
        fee = (
            qty * price * (cfg.maker_fee_bps if liquidity is Liquidity.MAKER else cfg.taker_fee_bps)
        )
        fee *= BPS
        fill = Fill(
            f"{order_id}:{len(self._fills)}",
            order_id,
            symbol,
            side,
            qty,
            price,
            fee,
            liquidity,
            kind,
            ts,
        )
        self._fills.append(fill)
        self._cash -= int(side) * qty * price + fee
        self._fees += fee
        apply_fill(self._books.setdefault(symbol, _Book()), int(side) * qty, price)
        return fill

    # ------------------------------------------------------------------ persistence

    def _check_open(self, operation: str) -> None:
        reason = self.refusal() if self.refusal is not None else ""
        if reason:
            raise BackendUnavailable(f"paper venue refuses orders: {reason}", venue="paper",
                                     operation=operation)

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(kind, data)

    def _emit_marks(self, *, filled: bool) -> None:
        if self.on_event is None:
            return
        marked = {s: b for s, b in self._books.items() if math.isfinite(b.mark)}
        self.on_event("marks", {"ts": int(self._last_ts),
                                "marks": {s: b.mark for s, b in marked.items()},
                                "mark_ns": {s: b.mark_ns for s, b in marked.items()},
                                "filled": filled, "equity": self._equity(),
                                "held": self._holds()})

    def _holds(self) -> bool:
        return any(b.qty != 0 for b in self._books.values())

    def apply_event(self, kind: str, data: dict[str, Any]) -> None:
        """Replay one logged change (see :attr:`on_event`) through this broker's own code.

        Placing, replacing and cancelling run at the logged time; a logged tick re-runs the
        matching of that one order or bracket at the logged price, and the fill it makes must
        equal the logged one. Raises :class:`ReplayMismatch` when the log does not fit this
        book (a gap, an unknown order, a different fill), so a caller never trades on a book
        that differs from the one that was.
        """
        hook, self.on_event = self.on_event, None  # replaying records nothing new
        clock = self.clock
        try:
            if kind in ("place", "cancel", "replace"):
                self.clock = _FixedClock(int(data["now_ns"]))
                if kind == "place":
                    self.place(request_from_dict(data["request"]))
                elif kind == "cancel":
                    self.cancel(data["order_id"])
                else:
                    fields = ("qty", "limit_price", "stop_loss", "take_profit")
                    self.replace(data["order_id"], **{f: data.get(f) for f in fields})
            elif kind == "tick":
                self._replay_tick(data)
            elif kind == "marks":
                self._replay_marks(data)
            else:
                raise ReplayMismatch(f"unknown event kind {kind!r}")
        except ReplayMismatch:
            raise
        except (KeyError, TypeError, ValueError, ExecutionError) as exc:
            raise ReplayMismatch(f"{kind} event does not apply: {exc!r}") from exc
        finally:
            self.clock, self.on_event = clock, hook

    def _replay_tick(self, data: dict[str, Any]) -> None:
        ts, price, order_id = int(data["ts"]), float(data["price"]), data["order_id"]
        before = len(self._fills)
        if data["via"] == "order":
            order = self._orders[order_id]
            if not (order.status.working and order.active_ns <= ts):
                raise ReplayMismatch(f"order {order_id!r} cannot fill at {ts}: {order.status}")
            symbol = order.request.symbol
            if symbol in self._books:
                _set_mark(self._books[symbol], price, ts)
            self._maybe_fill(order, ts, price)
        elif data["via"] == "bracket":
            bracket = self._brackets[order_id]
            symbol = bracket.symbol
            _set_mark(self._books[symbol], price, ts)
            self._maybe_trigger(bracket, ts, price)
            if order_id in self._brackets:
                raise ReplayMismatch(f"the bracket of {order_id!r} did not trigger at {price}")
        else:
            raise ReplayMismatch(f"unknown tick source {data['via']!r}")
        made = [fill_dict(f) for f in self._fills[before:]]
        want = [] if data.get("fill") is None else [data["fill"]]
        if not _same_fills(made, want):
            raise ReplayMismatch(f"replayed fill of {order_id!r} is {made}, logged {want}")
        self._replayed_time(symbol, ts)

    def _replayed_time(self, symbol: str, ts: int) -> None:
        """A replayed tick of ``symbol`` at ``ts``: later ticks older than it are late."""
        sid = self._symbols.id(symbol)
        self._symbol_ts[sid] = max(self._symbol_ts.get(sid, ts), ts)
        self._last_ts = max(int(self._last_ts), ts)

    def _replay_marks(self, data: dict[str, Any]) -> None:
        mark_ns = data.get("mark_ns", {})
        for symbol, mark in data["marks"].items():
            if symbol in self._books:
                at = mark_ns.get(symbol)
                at = int(data["ts"]) if at is None else int(at)
                _set_mark(self._books[symbol], float(mark), at)
                self._replayed_time(symbol, at)
        self._last_ts = max(int(self._last_ts), int(data["ts"]))
        self._curve.append(EquityPoint(int(data["ts"]), self._cash, self._equity()))

    # ------------------------------------------------------------------ helpers

    def _working(self, order_id: str) -> Order:
        order = self.get_order(order_id)
        if not order.status.working:
            raise OrderNotOpen(order_id, order.status)
        return order

    def _pending_or_open(self, active_ns: int) -> OrderStatus:
        return OrderStatus.OPEN if active_ns <= self.clock.now_ns() else OrderStatus.PENDING

    def _store(self, order: Order, **changes: object) -> Order:
        updated = dataclasses.replace(order, **changes)
        self._orders[order.id] = updated
        if not updated.status.working:
            self._working_ids.pop(order.id, None)
        return updated

    def _position(self, symbol: str, book: _Book) -> Position:
        return Position(
            symbol, book.qty, book.avg_price, book.realised, book.mark, self._unrealised(book)
        )

    @staticmethod
    def _unrealised(book: _Book) -> float:
        if book.qty == 0 or math.isnan(book.mark):
            return 0.0
        return book.qty * (book.mark - book.avg_price)

    def _equity(self) -> float:
        held = sum(b.qty * b.mark for b in self._books.values() if b.qty != 0)
        return self._cash + held


class ReplayMismatch(ValueError):
    """A logged event does not fit the book being rebuilt (see PaperBroker.apply_event)."""


class _FixedClock:
    """The time a logged event happened at, while it is replayed."""

    def __init__(self, now_ns: int) -> None:
        self._now = now_ns

    def now_ns(self) -> int:
        return self._now


def request_dict(r: OrderRequest) -> dict[str, Any]:
    """An order request as plain JSON (enums by name/value), for the book's event log."""
    return {"client_order_id": r.client_order_id, "symbol": r.symbol, "side": Side(r.side).name,
            "qty": r.qty, "order_type": OrderType(r.order_type).value,
            "limit_price": r.limit_price, "stop_loss": r.stop_loss,
            "take_profit": r.take_profit}


def request_from_dict(d: dict[str, Any]) -> OrderRequest:
    return OrderRequest(d["client_order_id"], d["symbol"], Side[d["side"]], d["qty"],
                        OrderType(d["order_type"]), d.get("limit_price"), d.get("stop_loss"),
                        d.get("take_profit"))


def fill_dict(f: Fill) -> dict[str, Any]:
    return {"fill_id": f.fill_id, "order_id": f.order_id, "symbol": f.symbol,
            "side": f.side.name, "qty": f.qty, "price": f.price, "fee": f.fee,
            "liquidity": f.liquidity.value, "kind": f.kind.value, "ts_ns": f.ts_ns}


def _same_fills(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    def same(x: dict[str, Any], y: dict[str, Any]) -> bool:
        return x.keys() == y.keys() and all(
            math.isclose(x[k], y[k], rel_tol=1e-12, abs_tol=1e-12)
            if isinstance(x[k], float) else x[k] == y[k] for k in x)
    return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))


def _set_mark(book: _Book, price: float, ts: int) -> None:
    book.mark, book.mark_ns, book.refused = price, ts, 0


def apply_fill(book: _Book, signed_qty: float, price: float) -> None:
    """Update a position with a signed fill: adds re-average, reduces realise, flips re-base.

    >>> b = _Book(); apply_fill(b, 1.0, 100.0); apply_fill(b, 1.0, 110.0); b.avg_price
    105.0
    >>> apply_fill(b, -3.0, 120.0); (b.qty, b.avg_price, b.realised)
    (-1.0, 120.0, 30.0)
    """
    if book.qty == 0 or (book.qty > 0) == (signed_qty > 0):
        new_qty = book.qty + signed_qty
        old_cost = 0.0 if book.qty == 0 else book.qty * book.avg_price
        book.avg_price = (old_cost + signed_qty * price) / new_qty
        book.qty = new_qty
        return
    closed = min(abs(signed_qty), abs(book.qty))
    direction = 1.0 if book.qty > 0 else -1.0
    book.realised += closed * (price - book.avg_price) * direction
    remaining = book.qty + signed_qty
    if abs(remaining) <= QTY_EPSILON * max(abs(book.qty), abs(signed_qty)):
        remaining = 0.0  # float residue of e.g. 0.3 - 0.1 - 0.2 is flat, not a dust position
    if remaining == 0 or (remaining > 0) != (book.qty > 0):
        # Flat, or flipped through zero: what is left opened at this fill's price.
        book.avg_price = price if remaining != 0 else math.nan
    book.qty = remaining
