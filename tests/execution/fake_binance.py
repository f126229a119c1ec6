"""A loopback server that speaks the Binance spot REST API the way ccxt's ``binance`` calls it.

Only what :class:`tripwire.execution.exchange.CcxtBroker` needs, but in Binance's own wire
format, so the real ccxt request signing, response parsing and error mapping run in tests:

  public   GET  /api/v3/exchangeInfo, /api/v3/time, /api/v3/ping, /api/v3/ticker/24hr,
                /api/v3/ticker/price
  signed   POST/GET/DELETE /api/v3/order, GET /api/v3/openOrders, /api/v3/allOrders,
                /api/v3/myTrades, /api/v3/account

Signed requests are checked like Binance checks them: the ``X-MBX-APIKEY`` header must name a
known key (else -2015, HTTP 401) and ``signature`` must be the HMAC-SHA256 of the rest of the
query/body under that key's secret (else -1022, HTTP 400).

Matching is deliberately tiny: a MARKET order fills at once at :attr:`FakeBinance.prices`;
a LIMIT order rests until the test calls :meth:`FakeBinance.fill`. Commission is
``commission_rate`` of the notional, charged in the quote asset. Like Binance, a
``newClientOrderId`` is refused as a duplicate only while an order with that id is *open*:
a filled order's id can be reused, which is exactly why the broker must not rely on the venue
to deduplicate.

Like Binance, an order request with a parameter the venue does not read is refused (-1104,
"Not all sent parameters were read"): a client that sends a stop the venue ignores must not
get a naked order accepted. ``attached_brackets=True`` makes the server play a venue that
does attach a stop-loss/take-profit to an order (ccxt's unified ``stopLoss``/``takeProfit``
params, as the test-only ccxt class :class:`BracketBinance` sends them): once the order
fills, :meth:`FakeBinance.move` to a price at or beyond a level closes the filled quantity at
market, as the paper venue does.

Fault injection (each consumes one matching request; faults queue per method and path):
``fail(method, path, times, status=500)`` answers with a bare HTTP error,
``stall_after_accept(seconds, times)`` lets ``POST /api/v3/order`` take effect and answers
only after ``seconds`` (longer than the client's timeout: a venue that times out),
``fail_code(method, path, times, code, msg)`` answers with a Binance JSON error, and
``drop_after_accept(times)`` lets ``POST /api/v3/order`` take effect and then closes the
connection without a response (what a timeout after acceptance looks like to the client).
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API = "/api/v3"
INSUFFICIENT = (-2010, "Account has insufficient balance for requested action.")
INVALID_QTY = (-1013, "Invalid quantity.")
# What POST /api/v3/order reads; anything else is refused with -1104, as Binance does.
ORDER_PARAMS = {"symbol", "side", "type", "quantity", "price", "timeInForce",
                "newClientOrderId", "newOrderRespType", "timestamp", "recvWindow", "signature"}
BRACKET_PARAMS = {"stopLoss", "takeProfit"}


def _symbol_info(symbol: str, base: str, quote: str) -> dict:
    """One exchangeInfo entry with the filters ccxt's parse_market reads."""
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00001000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _fmt(x: float) -> str:
    return f"{x:.8f}"


@dataclass
class _Order:
    order_id: int
    client_id: str
    symbol: str
    side: str
    type: str
    qty: float
    price: float  # 0 for market orders, as Binance reports them
    time_in_force: str | None
    time_ms: int
    stop_loss: float | None = None  # attached levels (attached_brackets venues only)
    take_profit: float | None = None
    status: str = "NEW"
    executed: float = 0.0
    quote: float = 0.0  # cummulativeQuoteQty
    update_ms: int = 0

    def wire(self) -> dict:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_id,
            "price": _fmt(self.price),
            "origQty": _fmt(self.qty),
            "executedQty": _fmt(self.executed),
            "cummulativeQuoteQty": _fmt(self.quote),
            "status": self.status,
            "timeInForce": self.time_in_force or "GTC",
            "type": self.type,
            "side": self.side,
            "stopPrice": _fmt(0.0),
            "icebergQty": _fmt(0.0),
            "time": self.time_ms,
            "updateTime": self.update_ms or self.time_ms,
            "isWorking": True,
            "workingTime": self.time_ms,
            "origQuoteOrderQty": _fmt(0.0),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        } | {k: _fmt(v) for k, v in (("stopLoss", self.stop_loss),
                                     ("takeProfit", self.take_profit)) if v is not None}


@dataclass
class _Fault:
    status: int
    body: dict | None = None
    drop_after_accept: bool = False
    stall_s: float = 0.0  # answer only after this long (the request took effect)


@dataclass
class FakeBinance:
    """State of the fake venue; :meth:`start` serves it on 127.0.0.1 at a free port."""

    api_key: str = "test-key"
    secret: str = "test-secret"
    prices: dict[str, float] = field(
        default_factory=lambda: {"BTCUSDT": 50_000.0, "ETHUSDT": 3_000.0}
    )
    balances: dict[str, float] = field(
        default_factory=lambda: {"USDT": 100_000.0, "BTC": 0.0, "ETH": 0.0}
    )
    commission_rate: float = 0.001
    attached_brackets: bool = False

    def __post_init__(self) -> None:
        self.markets = {"BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT")}
        self.orders: dict[int, _Order] = {}
        self.trades: list[dict] = []
        self.locked: dict[str, float] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, params)
        self._faults: dict[tuple[str, str], deque[_Fault]] = {}
        self._ids = itertools.count(1001)
        self._trade_ids = itertools.count(5001)
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeBinance:
        handler = type("Handler", (_Handler,), {"venue": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def ccxt_urls(self) -> dict[str, str]:
        """What to put over ccxt's ``urls['api']`` so binance's spot calls come here."""
        return {"public": self.url + API, "private": self.url + API, "v1": self.url + "/api/v1"}

    # ------------------------------------------------------------------ test controls

    def fail(self, method: str, path: str, times: int, status: int = 500) -> None:
        self._push(method, path, times, _Fault(status))

    def fail_code(
        self, method: str, path: str, times: int, code: int, msg: str, status: int = 400
    ) -> None:
        self._push(method, path, times, _Fault(status, {"code": code, "msg": msg}))

    def stall_after_accept(self, seconds: float, times: int = 1) -> None:
        self._push("POST", API + "/order", times, _Fault(200, stall_s=seconds))

    def drop_after_accept(self, times: int = 1) -> None:
        self._push("POST", API + "/order", times, _Fault(200, drop_after_accept=True))

    def fill(self, client_id: str, price: float | None = None) -> None:
        """Fill the open order with this client id (at its limit price unless given)."""
        with self._lock:
            order = self._open_by_client_id(client_id)
            if order is None:
                raise KeyError(f"no open order {client_id!r}")
            self._release(order)
            self._execute(order, price if price is not None else order.price, maker=True)

    def move(self, symbol: str, price: float) -> list[str]:
        """Set the market price; attached stops/targets at or beyond it close their filled
        orders' quantity at market. The client ids of the closing orders."""
        with self._lock:
            self.prices[symbol] = price
            closed = []
            for order in list(self.orders.values()):
                if order.symbol != symbol or order.status != "FILLED":
                    continue
                long = order.side == "BUY"
                hit_stop = order.stop_loss is not None and (
                    price <= order.stop_loss if long else price >= order.stop_loss)
                hit_target = order.take_profit is not None and (
                    price >= order.take_profit if long else price <= order.take_profit)
                if not (hit_stop or hit_target):
                    continue
                order.stop_loss = order.take_profit = None  # one bracket closes once
                client_id = f"{order.client_id}.x"
                status, _ = self.new_order({"symbol": symbol, "side": "SELL" if long else "BUY",
                                            "type": "MARKET", "quantity": str(order.qty),
                                            "newClientOrderId": client_id})
                if status == 200:
                    closed.append(client_id)
            return closed

    def created(self, client_id: str | None = None) -> list[_Order]:
        """Orders the venue accepted (all, or those with this client id)."""
        with self._lock:
            return [o for o in self.orders.values() if client_id in (None, o.client_id)]

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return sum(1 for m, p, _ in self.requests if m == method and p == path)

    # ------------------------------------------------------------------ internals

    def _push(self, method: str, path: str, times: int, fault: _Fault) -> None:
        with self._lock:
            self._faults.setdefault((method, path), deque()).extend([fault] * times)

    def take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            queue = self._faults.get((method, path))
            return queue.popleft() if queue else None

    def _open_by_client_id(self, client_id: str) -> _Order | None:
        for o in self.orders.values():
            if o.client_id == client_id and o.status in ("NEW", "PARTIALLY_FILLED"):
                return o
        return None

    def _by_ref(self, params: dict[str, str]) -> _Order | None:
        """Binance looks an order up by orderId or, failing that, origClientOrderId."""
        if "orderId" in params:
            order = self.orders.get(int(params["orderId"]))
            return order if order is not None and order.symbol == params.get("symbol") else None
        client_id = params.get("origClientOrderId")
        matches = [
            o
            for o in self.orders.values()
            if o.client_id == client_id and o.symbol == params.get("symbol")
        ]
        return matches[-1] if matches else None  # the most recent order with that id

    def _release(self, order: _Order) -> None:
        base, quote = self.markets[order.symbol]
        asset, amount = (
            (quote, order.qty * order.price) if order.side == "BUY" else (base, order.qty)
        )
        self.locked[asset] = self.locked.get(asset, 0.0) - amount
        self.balances[asset] = self.balances.get(asset, 0.0) + amount

    def _free(self, asset: str) -> float:
        return self.balances.get(asset, 0.0)

    def _execute(self, order: _Order, price: float, maker: bool) -> dict:
        base, quote = self.markets[order.symbol]
        notional = order.qty * price
        fee = notional * self.commission_rate
        sign = 1 if order.side == "BUY" else -1
        self.balances[base] = self._free(base) + sign * order.qty
        self.balances[quote] = self._free(quote) - sign * notional - fee
        now = int(time.time() * 1000)
        order.status, order.executed, order.quote, order.update_ms = (
            "FILLED",
            order.qty,
            notional,
            now,
        )
        trade = {
            "symbol": order.symbol,
            "id": next(self._trade_ids),
            "orderId": order.order_id,
            "orderListId": -1,
            "price": _fmt(price),
            "qty": _fmt(order.qty),
            "quoteQty": _fmt(notional),
            "commission": _fmt(fee),
            "commissionAsset": quote,
            "time": now,
            "isBuyer": order.side == "BUY",
            "isMaker": maker,
            "isBestMatch": True,
        }
        self.trades.append(trade)
        return trade

    def new_order(self, p: dict[str, str]) -> tuple[int, dict]:
        symbol = p.get("symbol", "")
        readable = ORDER_PARAMS | (BRACKET_PARAMS if self.attached_brackets else set())
        unread = set(p) - readable
        if unread:
            return 400, {"code": -1104, "msg": f"Not all sent parameters were read; read "
                         f"'{len(set(p) - unread)}' parameter(s) but was sent '{len(p)}'."}
        if symbol not in self.markets:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        try:
            qty = float(p["quantity"])
        except (KeyError, ValueError):
            return 400, {"code": -1102, "msg": "Mandatory parameter 'quantity' was not sent."}
        if qty <= 0:
            return 400, {"code": INVALID_QTY[0], "msg": INVALID_QTY[1]}
        client_id = p.get("newClientOrderId") or f"fake-{next(self._ids)}"
        if self._open_by_client_id(client_id) is not None:
            return 400, {"code": -2010, "msg": "Duplicate order sent."}
        kind, side = p.get("type", ""), p.get("side", "")
        if kind not in ("MARKET", "LIMIT") or side not in ("BUY", "SELL"):
            return 400, {"code": -1116, "msg": "Invalid orderType."}
        price = float(p["price"]) if kind == "LIMIT" else self.prices[symbol]
        base, quote = self.markets[symbol]
        need = (quote, qty * price * (1 + self.commission_rate)) if side == "BUY" else (base, qty)
        if self._free(need[0]) < need[1]:
            return 400, {"code": INSUFFICIENT[0], "msg": INSUFFICIENT[1]}
        now = int(time.time() * 1000)
        order = _Order(
            next(self._ids),
            client_id,
            symbol,
            side,
            kind,
            qty,
            price if kind == "LIMIT" else 0.0,
            p.get("timeInForce"),
            now,
            _level(p.get("stopLoss")),
            _level(p.get("takeProfit")),
        )
        self.orders[order.order_id] = order
        fills = []
        if kind == "MARKET":
            trade = self._execute(order, price, maker=False)
            fills.append(
                {
                    "price": trade["price"],
                    "qty": trade["qty"],
                    "commission": trade["commission"],
                    "commissionAsset": trade["commissionAsset"],
                    "tradeId": trade["id"],
                }
            )
        else:  # a resting order locks what it may spend
            asset, amount = (quote, qty * price) if side == "BUY" else (base, qty)
            self.balances[asset] = self._free(asset) - amount
            self.locked[asset] = self.locked.get(asset, 0.0) + amount
        body = order.wire() | {"transactTime": now, "fills": fills}
        return 200, body

    def cancel_order(self, p: dict[str, str]) -> tuple[int, dict]:
        order = self._by_ref(p)
        if order is None or order.status not in ("NEW", "PARTIALLY_FILLED"):
            return 400, {"code": -2011, "msg": "Unknown order sent."}
        self._release(order)
        order.status, order.update_ms = "CANCELED", int(time.time() * 1000)
        return 200, order.wire() | {
            "origClientOrderId": order.client_id,
            "clientOrderId": f"cancel-{order.order_id}",
            "transactTime": order.update_ms,
        }

    def account(self) -> dict:
        assets = sorted(set(self.balances) | set(self.locked))
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "updateTime": int(time.time() * 1000),
            "accountType": "SPOT",
            "balances": [
                {
                    "asset": a,
                    "free": _fmt(self.balances.get(a, 0.0)),
                    "locked": _fmt(self.locked.get(a, 0.0)),
                }
                for a in assets
            ],
            "permissions": ["SPOT"],
            "uid": 1,
        }

    def ticker(self, symbol: str) -> dict:
        last = _fmt(self.prices[symbol])
        now = int(time.time() * 1000)
        return {
            "symbol": symbol,
            "priceChange": "0.00000000",
            "priceChangePercent": "0.000",
            "weightedAvgPrice": last,
            "prevClosePrice": last,
            "lastPrice": last,
            "lastQty": "1.00000000",
            "bidPrice": last,
            "bidQty": "1.00000000",
            "askPrice": last,
            "askQty": "1.00000000",
            "openPrice": last,
            "highPrice": last,
            "lowPrice": last,
            "volume": "0.00000000",
            "quoteVolume": "0.00000000",
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": 1,
            "lastId": 1,
            "count": 1,
        }

    def route(self, method: str, path: str, p: dict[str, str]) -> tuple[int, object]:
        """Dispatch one (already authenticated, if private) request."""
        if (method, path) == ("GET", API + "/exchangeInfo"):
            symbols = [_symbol_info(s, b, q) for s, (b, q) in self.markets.items()]
            return 200, {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        if (method, path) == ("GET", API + "/time"):
            return 200, {"serverTime": int(time.time() * 1000)}
        if (method, path) == ("GET", API + "/ping"):
            return 200, {}
        if (method, path) in (("GET", API + "/ticker/24hr"), ("GET", API + "/ticker/price")):
            if p.get("symbol") not in self.markets:
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            if path.endswith("price"):
                return 200, {"symbol": p["symbol"], "price": _fmt(self.prices[p["symbol"]])}
            return 200, self.ticker(p["symbol"])
        if (method, path) == ("POST", API + "/order"):
            return self.new_order(p)
        if (method, path) == ("GET", API + "/order"):
            order = self._by_ref(p)
            if order is None:
                return 400, {"code": -2013, "msg": "Order does not exist."}
            return 200, order.wire()
        if (method, path) == ("DELETE", API + "/order"):
            return self.cancel_order(p)
        if (method, path) == ("GET", API + "/openOrders"):
            return 200, [
                o.wire()
                for o in self.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED") and p.get("symbol") in (None, o.symbol)
            ]
        if (method, path) == ("GET", API + "/allOrders"):
            return 200, [o.wire() for o in self.orders.values() if o.symbol == p.get("symbol")]
        if (method, path) == ("GET", API + "/myTrades"):
            return 200, [t for t in self.trades if t["symbol"] == p.get("symbol")]
        if (method, path) == ("GET", API + "/account"):
            return 200, self.account()
        return 404, {"code": -1, "msg": f"no route {method} {path}"}

    def authenticate(self, raw: str, api_key: str | None) -> tuple[int, dict] | None:
        """Binance's checks of a signed request; None when it passes."""
        if api_key != self.api_key:
            return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        payload, sep, signature = raw.rpartition("&signature=")
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not sep or not hmac.compare_digest(expected, signature):
            return 400, {"code": -1022, "msg": "Signature for this request is not valid."}
        params = dict(parse_qsl(payload))
        if "timestamp" not in params:
            return 400, {"code": -1102, "msg": "Mandatory parameter 'timestamp' was not sent."}
        window = int(params.get("recvWindow", 5000))
        if abs(int(params["timestamp"]) - time.time() * 1000) > window:
            return 400, {
                "code": -1021,
                "msg": "Timestamp for this request is outside of the recvWindow.",
            }
        return None


def _level(raw: str | None) -> float | None:
    """The trigger price of an attached level as ccxt binance sends it (a dict's repr)."""
    if raw is None:
        return None
    value = ast.literal_eval(raw)
    return float(value["triggerPrice"] if isinstance(value, dict) else value)


def bracket_binance() -> type:
    """A test-only ccxt class: binance's wire protocol, on a venue that attaches a
    stop-loss/take-profit to an order (FakeBinance(attached_brackets=True)). Real binance
    spot cannot; ccxt says so, and the broker refuses bracketed orders there."""
    import ccxt

    class BracketBinance(ccxt.binance):
        def describe(self) -> dict:
            return self.deep_extend(super().describe(), {
                "id": "bracketbinance",
                "has": {"createOrderWithTakeProfitAndStopLoss": True}})

        def parse_order(self, order: dict, market: Any = None) -> dict:
            # Such venues report an order's attached levels; ccxt's unified fields carry them.
            parsed = super().parse_order(order, market)
            for wire, unified in (("stopLoss", "stopLossPrice"),
                                  ("takeProfit", "takeProfitPrice")):
                if order.get(wire) is not None:
                    parsed[unified] = float(order[wire])
            return parsed

    return BracketBinance


BRACKET_EXCHANGE = "bracketbinance"


def register_bracket_binance(monkeypatch: Any) -> str:
    """Make ccxt know the test-only ``bracketbinance`` for this test; its id."""
    import ccxt

    monkeypatch.setattr(ccxt, BRACKET_EXCHANGE, bracket_binance(), raising=False)
    monkeypatch.setattr(ccxt, "exchanges", [*ccxt.exchanges, BRACKET_EXCHANGE])
    return BRACKET_EXCHANGE


PRIVATE = {"/order", "/openOrders", "/allOrders", "/myTrades", "/account"}


class _Handler(BaseHTTPRequestHandler):
    venue: FakeBinance  # set on the subclass made in FakeBinance.start

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: pytest shows failures, not access logs

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        raw = body if method == "POST" else split.query
        params = dict(parse_qsl(raw))
        venue = self.venue
        with venue._lock:
            venue.requests.append((method, split.path, params))
            fault = venue.take_fault(method, split.path)
            if fault is not None and not (fault.drop_after_accept or fault.stall_s):
                self._reply(fault.status, fault.body)
                return
            if split.path.removeprefix(API) in PRIVATE:
                denied = venue.authenticate(raw, self.headers.get("X-MBX-APIKEY"))
                if denied is not None:
                    self._reply(*denied)
                    return
            status, answer = venue.route(method, split.path, params)
        if fault is not None and fault.drop_after_accept:  # accepted, the client never hears
            self.close_connection = True
            return
        if fault is not None:  # accepted; the answer comes after the client gave up
            time.sleep(fault.stall_s)
            self.close_connection = True
            try:
                self._reply(status, answer)
            except OSError:  # the client closed the connection on its timeout
                pass
            return
        self._reply(status, answer)

    def _reply(self, status: int, answer: object | None) -> None:
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if answer is not None else "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
