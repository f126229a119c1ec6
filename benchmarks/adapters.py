"""What parsing one exchange message costs, per venue adapter.

Run from the project root::

    python -m benchmarks.adapters            # a table
    python -m benchmarks.adapters --json     # one JSON object on stdout
    python -m benchmarks.adapters --quick    # 20,000 messages instead of 200,000

No network: recorded-shape frames (one trade each) are handed to each adapter's per-message
path, best of ``repeats`` runs. Figures (JSON keys, ns per message):

  binance_parse_ns_per_message   ``tripwire.adapters.binance.schemas.parse_frame`` on a
                        combined-stream trade frame (JSON decode + checks -> TradeRow).
  binance_ns_per_message  the feed's whole per-frame path (``_on_message``: clock, counters,
                        parse, symbol lookup, column append); batching/validation excluded
                        (they are per chunk, vectorised).
  ccxt_okx_ns_per_message  an OKX trades push through the ccxt feed: JSON decode, ccxt.pro's
                        ``okx.handle_message`` (its trade parser and cache), the feed's tap,
                        and ``tripwire.adapters.ccxt.schemas.parse_trade`` -> buffered row.
  polymarket_parse_ns_per_message  ``tripwire.adapters.polymarket.schemas.parse_frame`` on a
                        ``last_trade_price`` frame (JSON decode, field checks, price in
                        [0, 1], content digest).
  polymarket_ns_per_message  the Polymarket feed's whole per-frame path (``_on_message``:
                        clock, counters, parse, asset lookup, resolution check, id assignment
                        and de-duplication, column append).
  ns_per_message        the feed-path figures by venue: ``{"binance": ..., "polymarket": ...,
                        "ccxt:okx": ...}``.

A venue adds its parser here (``<venue>_ns_per_message`` and an ``ns_per_message`` entry).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from collections.abc import Callable
from typing import Any


def _best(fn: Callable[[int], None], n: int, repeats: int) -> float:
    """Best ns per message over ``repeats`` runs of ``fn(n)``."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def _binance(n: int, repeats: int) -> dict[str, float]:
    from tripwire.adapters.binance.schemas import parse_frame
    from tripwire.adapters.binance.websocket import BinanceWebSocketFeed

    frames = [
        json.dumps({"stream": "btcusdt@trade", "data": {
            "e": "trade", "E": 1_700_000_000_001 + i, "s": "BTCUSDT", "t": i,
            "p": f"{37000 + i % 100}.{i % 97:02d}", "q": "0.01234", "T": 1_700_000_000_000 + i,
            "m": i % 2 == 0, "M": True}}, separators=(",", ":"))
        for i in range(n)
    ]

    def parse(k: int) -> None:
        for f in frames[:k]:
            parse_frame(f, now_ns=1)

    def feed_path(k: int) -> None:
        feed = BinanceWebSocketFeed(["btcusdt@trade"], max_batch=k, max_buffered_rows=k)
        on = feed._on_message
        for f in frames[:k]:
            on(f)

    return {"binance_parse_ns_per_message": _best(parse, n, repeats),
            "binance_ns_per_message": _best(feed_path, n, repeats)}


async def _ccxt_okx(n: int, repeats: int) -> dict[str, float]:
    from tripwire.adapters.ccxt.config import CcxtFeedConfig
    from tripwire.adapters.ccxt.instruments import spot_market
    from tripwire.adapters.ccxt.websocket import CcxtTradeFeed

    frames = [
        json.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [{
            "instId": "BTC-USDT", "tradeId": str(i), "px": f"{37000 + i % 100}.{i % 97:02d}",
            "sz": "0.01234", "side": "buy" if i % 2 else "sell",
            "ts": str(1_700_000_000_000 + i)}]}, separators=(",", ":"))
        for i in range(n)
    ]

    config = CcxtFeedConfig("okx", ("BTC/USDT",), ws_url="ws://127.0.0.1:9/ws/v5",
                                markets=(spot_market("BTC/USDT"),))

    opened: list[Any] = []

    def path(k: int) -> None:
        feed = CcxtTradeFeed(config, max_batch=k, max_buffered_rows=k)
        ex = feed._build_exchange()
        opened.append(ex)
        client = ex.client(ex.get_url("trades", "public"))
        handle, on_trade = ex.handle_message, feed._on_ccxt_trade
        loads = json.loads
        for f in frames[:k]:
            handle(client, loads(f))
            on_trade(ex.trades["BTC/USDT"][-1])  # what watch_trades hands the feed

    try:
        return {"ccxt_okx_ns_per_message": _best(path, n, repeats)}
    finally:
        for ex in opened:
            await ex.close()


PM_ASSET = "71321045679252212594626385532706912750332728571942532289631379312455583992563"


def _polymarket(n: int, repeats: int) -> dict[str, float]:
    from tripwire.adapters.polymarket.config import PolymarketConfig
    from tripwire.adapters.polymarket.schemas import parse_frame
    from tripwire.adapters.polymarket.websocket import PolymarketWebSocketFeed

    frames = [json.dumps({"asset_id": PM_ASSET, "event_type": "last_trade_price",
                          "fee_rate_bps": "0", "market": "0xbd31dc8a",
                          "price": f"0.{10 + i % 89:02d}", "side": "BUY" if i % 2 else "SELL",
                          "size": f"{1 + i % 500}.25", "timestamp": str(1_750_428_146_000 + i),
                          "transaction_hash": f"0x{i:064x}"}, separators=(",", ":"))
              for i in range(n)]
    config = PolymarketConfig.from_table({"markets": [{"asset_id": PM_ASSET,
                                                       "symbol": "PM-X"}]})

    def parse(k: int) -> None:
        for f in frames[:k]:
            parse_frame(f, now_ns=1)

    def feed_path(k: int) -> None:
        feed = PolymarketWebSocketFeed(config, max_batch=k, max_buffered_rows=k)
        on = feed._on_message
        for f in frames[:k]:
            on(f)

    return {"polymarket_parse_ns_per_message": _best(parse, n, repeats),
            "polymarket_ns_per_message": _best(feed_path, n, repeats)}


def measure(n: int, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {"messages": n, "repeats": repeats,
                           "python": platform.python_version()}

    async def on_a_loop() -> None:  # the feeds stamp batching deadlines on the loop's timer
        nonlocal out
        out |= _binance(n, repeats)
        out |= _polymarket(n, repeats)
        out |= await _ccxt_okx(n, repeats)

    asyncio.run(on_a_loop())
    out = {k: round(v) if isinstance(v, float) else v for k, v in out.items()}
    out["ns_per_message"] = {"binance": out["binance_ns_per_message"],
                             "polymarket": out["polymarket_ns_per_message"],
                             "ccxt:okx": out["ccxt_okx_ns_per_message"]}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--quick", action="store_true", help="20,000 messages")
    p.add_argument("--messages", type=int, help="messages per run (overrides --quick)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    n = args.messages or (20_000 if args.quick else 200_000)
    if n < 1 or args.repeats < 1:
        p.error("--messages and --repeats must be >= 1")
    figures = measure(n, args.repeats)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:34s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
