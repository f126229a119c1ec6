"""What one Polymarket market-channel message costs to parse.

Run from the project root::

    python -m benchmarks.polymarket            # a table
    python -m benchmarks.polymarket --json     # one JSON object on stdout
    python -m benchmarks.polymarket --quick    # 20,000 messages instead of 200,000

No network: ``last_trade_price`` frames of the documented shape, best of ``repeats`` runs.

  polymarket_parse_ns_per_message  ``tripwire.adapters.polymarket.schemas.parse_frame``
                        (JSON decode, field checks, price in [0, 1], content digest).
  polymarket_ns_per_message  the feed's whole per-frame path (``_on_message``: clock,
                        counters, parse, asset lookup, resolution check, id assignment and
                        de-duplication, column append); batching/validation excluded (per
                        chunk, vectorised), as for the other venues in benchmarks.adapters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from collections.abc import Callable
from typing import Any

ASSET = "71321045679252212594626385532706912750332728571942532289631379312455583992563"


def _best(fn: Callable[[int], None], n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def _frames(n: int) -> list[str]:
    return [json.dumps({"asset_id": ASSET, "event_type": "last_trade_price",
                        "fee_rate_bps": "0", "market": "0xbd31dc8a",
                        "price": f"0.{10 + i % 89:02d}", "side": "BUY" if i % 2 else "SELL",
                        "size": f"{1 + i % 500}.25", "timestamp": str(1_750_428_146_000 + i),
                        "transaction_hash": f"0x{i:064x}"}, separators=(",", ":"))
            for i in range(n)]


def measure(n: int, repeats: int) -> dict[str, Any]:
    from tripwire.adapters.polymarket.config import PolymarketConfig
    from tripwire.adapters.polymarket.schemas import parse_frame
    from tripwire.adapters.polymarket.websocket import PolymarketWebSocketFeed

    frames = _frames(n)
    config = PolymarketConfig.from_table({"markets": [{"asset_id": ASSET, "symbol": "PM-X"}]})

    def parse(k: int) -> None:
        for f in frames[:k]:
            parse_frame(f, now_ns=1)

    def feed_path(k: int) -> None:
        feed = PolymarketWebSocketFeed(config, max_batch=k, max_buffered_rows=k)
        on = feed._on_message
        for f in frames[:k]:
            on(f)

    out: dict[str, Any] = {"messages": n, "repeats": repeats,
                           "python": platform.python_version()}

    async def on_a_loop() -> None:  # the feed stamps batching deadlines on the loop's timer
        out["polymarket_parse_ns_per_message"] = _best(parse, n, repeats)
        out["polymarket_ns_per_message"] = _best(feed_path, n, repeats)

    asyncio.run(on_a_loop())
    return {k: round(v) if isinstance(v, float) else v for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--quick", action="store_true", help="20,000 messages")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    figures = measure(20_000 if args.quick else 200_000, args.repeats)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:34s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
