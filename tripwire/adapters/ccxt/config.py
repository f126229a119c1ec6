"""What a ccxt trades feed is built from: an exchange id, its symbols, optional overrides.

``source = "ccxt:okx"`` on the command line becomes ``CcxtFeedConfig("okx", ["BTC/USDT"])``.
``ws_url`` replaces ``exchange.urls["api"]["ws"]`` (for exchanges whose WebSocket URL is one
string, like OKX: the feed appends ``/public``); ``urls`` is deep-merged into the exchange's
``urls`` for the others (Bybit, Coinbase keep per-market dicts). ``markets`` (ccxt market
dicts) skips the REST ``load_markets`` call: tests and air-gapped replays use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SOURCE_PREFIX = "ccxt:"


@dataclass(frozen=True)
class CcxtFeedConfig:
    exchange: str
    symbols: tuple[str, ...]
    ws_url: str | None = None
    urls: dict[str, Any] = field(default_factory=dict)
    markets: tuple[dict[str, Any], ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # ccxt exchange constructor extras

    def __post_init__(self) -> None:
        import ccxt.pro

        if not isinstance(self.exchange, str) or self.exchange not in ccxt.pro.exchanges:
            raise ValueError(
                f"ccxt exchange {self.exchange!r} has no WebSocket (ccxt.pro) support; "
                f"known: {', '.join(ccxt.pro.exchanges[:12])}, ..."
            )
        if isinstance(self.symbols, str) or not self.symbols:
            raise ValueError(
                f"ccxt:{self.exchange} needs symbols, e.g. BTC/USDT; got {self.symbols!r}"
            )
        bad = [s for s in self.symbols if not isinstance(s, str) or "/" not in s]
        if bad:
            raise ValueError(f"ccxt symbols are unified 'BASE/QUOTE' names; not {bad[0]!r}")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"a symbol is listed twice in {list(self.symbols)}")
        if self.ws_url is not None and not self.ws_url.startswith(("ws://", "wss://")):
            raise ValueError(f"ws_url must start with ws:// or wss://, got {self.ws_url!r}")
        object.__setattr__(self, "symbols", tuple(self.symbols))

    @property
    def source(self) -> str:
        return SOURCE_PREFIX + self.exchange


def parse_source(source: str, symbols: Sequence[str]) -> CcxtFeedConfig:
    """``"ccxt:okx"`` and its symbols -> a config; ValueError naming what is wrong.

    >>> parse_source("ccxt:okx", ["BTC/USDT"]).exchange
    'okx'
    """
    if not source.startswith(SOURCE_PREFIX) or not source[len(SOURCE_PREFIX) :]:
        raise ValueError(f"a ccxt source is 'ccxt:<exchange id>', e.g. ccxt:okx; got {source!r}")
    return CcxtFeedConfig(source[len(SOURCE_PREFIX) :], tuple(symbols))
