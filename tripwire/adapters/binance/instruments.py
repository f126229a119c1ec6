"""Binance instruments: the stream names a user configures -> the feed's symbols.

Binance names a trade stream ``<symbol>@trade`` or ``<symbol>@aggTrade``; the symbol (upper
case, e.g. ``BTCUSDT``) is tripwire's symbol and Binance's market id, which the ccxt broker
(:mod:`tripwire.adapters.binance.execution`) resolves to a ccxt symbol for orders.
"""

from __future__ import annotations

from collections.abc import Sequence

from tripwire.adapters.binance.config import MAX_STREAMS
from tripwire.adapters.binance.schemas import StreamName, parse_stream
from tripwire.model import SymbolTable


def check_streams(streams: Sequence[str], max_streams: int) -> tuple[StreamName, ...]:
    """Parsed streams, one kind per symbol; ValueError naming what is wrong.

    >>> [s.name for s in check_streams(["BTCUSDT@trade", "ethusdt@aggtrade"], 10)]
    ['btcusdt@trade', 'ethusdt@aggTrade']
    """
    if isinstance(streams, str) or not streams:
        raise ValueError(f"streams must be a non-empty list of stream names, got {streams!r}")
    if len(streams) > max_streams:
        raise ValueError(f"{len(streams)} streams: Binance allows {max_streams} per connection")
    parsed = [parse_stream(s) for s in streams]
    kinds: dict[str, str] = {}
    for s in parsed:
        seen = kinds.setdefault(s.symbol, s.kind)
        if seen != s.kind:
            raise ValueError(
                f"symbol {s.symbol} is subscribed as both trade and aggTrade: their id "
                "sequences differ, so gaps and duplicates could not be told apart; pick one"
            )
    if len(kinds) < len(parsed):
        raise ValueError(f"a stream is listed twice in {[s.name for s in parsed]}")
    return tuple(parsed)


def symbols_of(streams: Sequence[str]) -> SymbolTable:
    """The symbol table a feed over ``streams`` delivers (ids in stream order)."""
    return SymbolTable([s.symbol for s in check_streams(streams, MAX_STREAMS)])
