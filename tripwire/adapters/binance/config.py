"""Binance endpoints and limits: the settings its feed and loader are built with.

The live feed's options (batch size, delays, timeouts, backoff) are the constructor
arguments of :class:`~tripwire.adapters.binance.websocket.BinanceWebSocketFeed`; what is a
fact about Binance itself lives here.
"""

from __future__ import annotations

DEFAULT_BASE_URL = "wss://stream.binance.com:9443"  # spot; USD-M futures: wss://fstream.binance.com
MAX_STREAMS = 1024  # Binance's limit of streams per connection

# Plausible trade times, shared by the WebSocket parser and the dump loader. Binance opened in
# July 2017; the upper bound keeps nanoseconds inside int64. The window also catches a
# time-unit mix-up: microseconds read as milliseconds land thousands of years ahead,
# milliseconds read as microseconds land in January 1970.
MIN_TS_NS = 1_483_228_800 * 1_000_000_000  # 2017-01-01
MAX_TS_NS = 7_258_118_400 * 1_000_000_000  # 2200-01-01
