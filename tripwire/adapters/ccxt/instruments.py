"""ccxt markets -> tripwire symbol names.

A tripwire symbol is ccxt's unified symbol with separators removed, upper case
(``BTC/USDT`` -> ``BTCUSDT``, ``BTC/USDT:USDT`` -> ``BTCUSDTUSDT``): known before any market
is loaded, and the same spelling as Binance's, so per-symbol settings read alike across
venues. Several sources in
one process are told apart by their source name; a name two sources share is refused where
the sources are combined (:mod:`tripwire.adapters.multi`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_SEP = re.compile(r"[^A-Za-z0-9]")


def symbol_name(unified: str) -> str:
    """The tripwire name of a unified symbol.

    >>> symbol_name("BTC/USDT:USDT")
    'BTCUSDTUSDT'
    """
    return _SEP.sub("", unified).upper()


def spot_market(unified: str, market_id: str | None = None) -> dict[str, Any]:
    """A minimal ccxt spot market dict (for ``markets=`` when REST is not wanted)."""
    base, quote = unified.split("/", 1)
    return {
        "id": market_id or f"{base}-{quote}",
        "symbol": unified,
        "base": base,
        "quote": quote,
        "baseId": base,
        "quoteId": quote,
        "type": "spot",
        "spot": True,
        "active": True,
        "precision": {},
        "limits": {},
    }


def check_markets(exchange: Any, symbols: Sequence[str]) -> None:
    """ValueError naming the symbols the exchange's loaded markets do not have."""
    missing = [s for s in symbols if s not in exchange.markets]
    if missing:
        raise ValueError(f"{exchange.id} has no market {', '.join(missing)}")
