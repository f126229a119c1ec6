"""The three brokers behind one test harness, for the conformance suite.

Each harness builds its broker with :func:`tripwire.execution.factory.build_broker` (the one
way every driver builds it) and says how its venue moves, so one set of tests can run over
all three:

* ``tick()`` -- let the venue see the market: the simulated venues (paper, backtest) take a
  tick at the current price; a real exchange matched the order when it was placed.
* ``fill_limit(order_id, price)`` -- make a resting limit order fill: a tick that crosses it,
  or the loopback exchange's own fill.
* ``restart()`` -- a new broker instance over the same book or exchange: the paper venue is
  rebuilt from its PostgreSQL log (tripwire.store.paper_book, as the Serve app does), the
  backtest broker replays the events it emitted, the ccxt broker re-adopts what the
  exchange holds.
* ``fail_venue(n)`` / ``recover()`` -- make the venue fail the next placements (the paper
  book cannot be written; the exchange answers HTTP 500) and heal again.
* ``orders_on_venue(cid)`` -- how many orders the venue itself holds for a client id (the
  witness that a retry never doubles an order).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from tests.execution.fake_binance import FakeBinance
from tripwire.config import Settings, load_settings
from tripwire.execution.factory import BuiltBroker, build_broker
from tripwire.model import NS_PER_SECOND, SimClock, SymbolTable, SystemClock, TickBatch
from tripwire.store.paper_book import PaperBookLog, rebuild

SYMBOLS = SymbolTable(["BTCUSDT", "ETHUSDT"])
PRICES = {"BTCUSDT": 50_000.0, "ETHUSDT": 3_000.0}
T0 = 1_700_000_000 * NS_PER_SECOND
KEY_ENV, SECRET_ENV = "TRIPWIRE_CCXT_API_KEY", "TRIPWIRE_CCXT_SECRET"
# Spot only (no futures/margin endpoints at load_markets), no client-side throttle, and a
# short timeout: the loopback exchange answers in milliseconds or not at all.
CCXT_OPTIONS = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                "fetchMargins": False}


def settings_for(broker: str, venue: FakeBinance | None = None, **execution: Any) -> Settings:
    """Settings with paper fills at the tick's price, and ``[execution]`` aimed at
    ``venue``."""
    base = load_settings(env={"TRIPWIRE_SIGNOFF__SLIPPAGE_BPS": "0.0"})
    ex: dict[str, Any] = {"broker": broker}
    if venue is not None:
        ex |= {"exchange": "binance", "sandbox": True, "urls": venue.ccxt_urls(),
               "rate_limit": False, "timeout_s": 2.0, "ccxt_options": CCXT_OPTIONS}
    ex |= execution
    return dataclasses.replace(base, execution=base.execution.model_validate(ex))


class SimulatedVenue:
    """Paper (book in PostgreSQL) or backtest (events replayed in memory)."""

    def __init__(self, kind: str, dsn: str | None = None) -> None:
        self.kind, self.dsn = kind, dsn
        self.settings = settings_for(kind)
        self.now = T0
        self.prices = dict(PRICES)
        self.loop = asyncio.new_event_loop()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.book: PaperBookLog | None = None
        self._down = False
        self.built = self._build()

    @property
    def broker(self) -> Any:
        return self.built.broker

    def _build(self) -> BuiltBroker:
        if self.kind == "paper":  # the Serve app's way: the book rebuilt from its log
            clock = SimClock(T0)
            self.book = self.loop.run_until_complete(PaperBookLog.open(self.dsn))
            rebuilt = self.loop.run_until_complete(
                rebuild(self.book, SYMBOLS, self.settings.decisions.paper, clock))
            built = build_broker(self.settings, SYMBOLS, clock, paper=rebuilt.broker)
        else:
            built = build_broker(self.settings, SYMBOLS, SimClock(T0), start_ns=T0)
            for kind, data in self.events:  # replay through the broker's own code
                built.broker.apply_event(kind, data)
            built.broker.on_event = lambda kind, data: self.events.append((kind, data))
        hook = built.broker.refusal
        built.broker.refusal = lambda: "the venue is down" if self._down else (
            hook() if hook else "")
        return built

    def flush(self) -> None:
        if self.book is not None:
            assert self.loop.run_until_complete(self.book.flush())

    def tick(self) -> None:
        self.now += NS_PER_SECOND
        ids = [SYMBOLS.id(s) for s in self.prices]
        batch = TickBatch.from_columns(ids, [self.now] * len(ids), list(self.prices.values()),
                                       [1.0] * len(ids))
        self.broker.on_ticks(batch)
        self.flush()

    def fill_limit(self, order_id: str, price: float) -> None:
        symbol = self.broker.get_order(order_id).request.symbol
        self.prices[symbol] = price
        self.tick()

    def restart(self) -> Any:
        self.flush()
        if self.book is not None:
            self.loop.run_until_complete(self.book.close())
        self.built = self._build()
        return self.broker

    def fail_venue(self, times: int) -> None:
        self._down = True

    def recover(self) -> None:
        self._down = False

    def orders_on_venue(self, client_id: str) -> int:
        return sum(1 for o in self.broker.orders() if o.id == client_id)

    def close(self) -> None:
        if self.book is not None:
            self.loop.run_until_complete(self.book.close())
        self.loop.close()


class ExchangeVenue:
    """The ccxt broker against the loopback Binance (HMAC-checked signed requests)."""

    kind = "ccxt"

    def __init__(self) -> None:
        self.venue = FakeBinance(prices=dict(PRICES)).start()
        self.settings = settings_for("ccxt", self.venue)
        self.env = {KEY_ENV: self.venue.api_key, SECRET_ENV: self.venue.secret}
        self.built = self._build()

    @property
    def broker(self) -> Any:
        return self.built.broker

    def _build(self) -> BuiltBroker:
        return build_broker(self.settings, SYMBOLS, SystemClock(), env=self.env,
                            sleep=lambda s: None)  # backoff counted, not waited for

    def flush(self) -> None:
        pass

    def tick(self) -> None:
        pass  # the exchange matched the market order when it was placed

    def fill_limit(self, order_id: str, price: float) -> None:
        # A replaced order's current leg carries a derived client id (<id>.r<n>).
        legs = [o.client_id for o in self.venue.created() if o.status == "NEW"
                and (o.client_id == order_id or o.client_id.startswith(order_id + ".r"))]
        assert len(legs) == 1, legs
        self.venue.fill(legs[0], price)

    def restart(self) -> Any:
        self.built.close()
        self.built = self._build()
        return self.broker

    def fail_venue(self, times: int) -> None:
        self.venue.fail("POST", "/api/v3/order", times, status=500)

    def recover(self) -> None:
        self.venue._faults.clear()

    def orders_on_venue(self, client_id: str) -> int:
        return len(self.venue.created(client_id))

    def close(self) -> None:
        self.built.close()
        self.venue.stop()
